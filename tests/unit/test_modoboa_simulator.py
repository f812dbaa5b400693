"""The Modoboa simulator: REST API v2 paths, bodies, statuses and error shapes as a real
Modoboa 2.12 answered them, and its /_sim/ API."""
from __future__ import annotations

import pytest

from provisioner.simulators.modoboa import check_password, create_app, size_mb

TOKEN = "0123456789abcdef0123456789abcdef01234567"
HEADERS = {"Authorization": f"Token {TOKEN}"}
PASSWORD = "Postmaster-Pass-1"


class Api:
    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        self.sim = app.extensions["simulator"]

    def __call__(self, method: str, path: str, body: dict | None = None, **params):
        return self.client.open(f"/api/v2{path}", method=method, json=body, query_string=params,
                                headers=HEADERS)

    def ok(self, method: str, path: str, body: dict | None = None, **params):
        r = self(method, path, body, **params)
        assert r.status_code in (200, 201, 204), (r.status_code, r.get_json())
        return r.get_json() if r.status_code != 204 else None


@pytest.fixture
def api() -> Api:
    return Api(create_app(token=TOKEN))


def new_domain(api: Api, name: str = "dom.example", quota: str = "500", default: str = "100") -> dict:
    return api.ok("POST", "/domains/", {"name": name, "type": "domain", "quota": quota,
                                         "default_mailbox_quota": default, "enabled": True,
                                         "enable_dns_checks": False})


def new_account(api: Api, username: str, quota: str | None = "50", password: str = PASSWORD):
    mailbox = {"use_domain_quota": quota is None, **({"quota": quota} if quota is not None else {})}
    return api("POST", "/accounts/", {"username": username, "role": "SimpleUsers", "password": password,
                                      "mailbox": mailbox})


def test_token_auth(api):
    assert api.client.get("/api/v2/domains/").status_code == 401
    assert api.client.get("/api/v2/domains/").get_json() == {
        "detail": "Authentication credentials were not provided."}
    wrong = api.client.get("/api/v2/domains/", headers={"Authorization": "Token nope"})
    assert (wrong.status_code, wrong.get_json()) == (401, {"detail": "Invalid token."})
    bearer = api.client.get("/api/v2/domains/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 401


def test_domain_create_answers_the_object_with_quotas_as_strings(api):
    d = new_domain(api)
    assert d["pk"] == 1 and d["name"] == "dom.example"
    assert (d["quota"], d["default_mailbox_quota"], d["mailbox_count"], d["mbalias_count"]) == ("500", "100", 0, 0)
    assert d["allocated_quota_in_percent"] == 0 and d["enabled"] is True
    dup = api("POST", "/domains/", {"name": "DOM.example", "quota": "1"})
    assert dup.status_code == 400 and list(dup.get_json()) == ["name"]
    assert isinstance(dup.get_json()["name"], list)
    bad = api("POST", "/domains/", {"name": "not a domain"})
    assert bad.get_json() == {"name": ["Enter a valid domain name"]}
    over = api("POST", "/domains/", {"name": "b.example", "quota": "10", "default_mailbox_quota": "20"})
    assert over.get_json() == {"default_mailbox_quota": ["Cannot be greater than domain quota"]}


def test_unreadable_quota_is_stored_as_zero_unlimited():
    assert size_mb("lots") == 0 and size_mb("2G") == 2048 and size_mb("500") == 500 and size_mb(7) == 7


def test_lists_are_paged_and_searched(api):
    for n in range(5):
        new_domain(api, f"d{n}.example")
    page = api.ok("GET", "/domains/", page_size=2, page=2)
    assert page["count"] == 5 and len(page["results"]) == 2
    assert "page=3" in page["next"] and "page=1" in page["previous"]
    assert api("GET", "/domains/", page_size=2, page=4).status_code == 404          # past the last
    assert [d["name"] for d in api.ok("GET", "/domains/", search="d3")["results"]] == ["d3.example"]


def test_domain_delete_is_a_post_and_delete_there_answers_400(api):
    d = new_domain(api)
    # as the real one: the domain serializer's complaint, and nothing deleted
    for path in (f"/domains/{d['pk']}/delete/", f"/domains/{d['pk']}/"):
        refused = api("DELETE", path)
        assert (refused.status_code, refused.get_json()) == (400, {"name": ["This field is required."]})
    assert api("GET", f"/domains/{d['pk']}/").status_code == 200
    assert api("POST", f"/domains/{d['pk']}/delete/", {"keep_folder": False}).status_code == 204
    assert api("GET", f"/domains/{d['pk']}/").status_code == 404


def test_deleting_a_domain_leaves_its_users_able_to_log_in_unless_auto_removal(api):
    d = new_domain(api)
    user = new_account(api, "alice@dom.example").get_json()
    api.ok("POST", f"/domains/{d['pk']}/delete/", {"keep_folder": False})
    left = api.ok("GET", f"/accounts/{user['pk']}/")
    assert left["is_active"] is True and left["mailbox"] is None
    params = api.ok("GET", "/parameters/global/admin/")["params"]
    assert params["auto_account_removal"] is False
    refused = api("PUT", "/parameters/global/admin/", {"auto_account_removal": True})
    assert (refused.status_code, sorted(refused.get_json())) == (400, ["custom_dns_server", "dkim_keys_storage_dir"])
    assert api("PUT", "/parameters/global/admin/", {**params, "auto_account_removal": True}).status_code == 200
    assert api.ok("GET", "/parameters/global/admin/")["params"]["auto_account_removal"] is True
    d = new_domain(api, "two.example")
    bob = new_account(api, "bob@two.example").get_json()
    api.ok("POST", f"/domains/{d['pk']}/delete/", {"keep_folder": False})
    assert api("GET", f"/accounts/{bob['pk']}/").status_code == 404


def test_accounts_quota_and_password_rules(api):
    d = new_domain(api)
    created = new_account(api, "alice@dom.example", "50")
    assert created.status_code == 201
    body = created.get_json()
    assert body["mailbox"]["quota"] == "50" and body["role"] == "SimpleUsers"
    assert "quota_usage" not in body["mailbox"]                 # only reads carry usage
    assert api.ok("GET", f"/accounts/{body['pk']}/")["mailbox"]["quota_usage"] == 0
    assert "password" not in body
    over = new_account(api, "bob@dom.example", "480")
    assert (over.status_code, over.get_json()) == (400, {"error": "dom.example: domain quota exceeded"})
    weak = new_account(api, "carol@dom.example", "10", password="alllowercase1")
    assert weak.status_code == 400 and list(weak.get_json()) == ["password"]
    dup = new_account(api, "alice@dom.example", "10")
    assert dup.status_code == 400 and "already exists" in dup.get_json()["username"][0]
    assert new_account(api, "x@nowhere.example", "10").status_code == 404
    default = new_account(api, "dave@dom.example", None).get_json()
    assert default["mailbox"]["quota"] == "100" and default["mailbox"]["use_domain_quota"] is True
    # ?domain= takes the pk; a name is a 400
    assert {u["username"] for u in api.ok("GET", "/accounts/", domain=d["pk"])["results"]} == {
        "alice@dom.example", "dave@dom.example"}
    assert api("GET", "/accounts/", domain="dom.example").status_code == 400


def test_account_updates_and_logins(api):
    new_domain(api)
    user = new_account(api, "alice@dom.example").get_json()
    assert check_password(api.app, "alice@dom.example", PASSWORD)
    api.ok("PATCH", f"/accounts/{user['pk']}/", {"mailbox": {"quota": "80"}})
    api.ok("PATCH", f"/accounts/{user['pk']}/", {"password": "Newer-Pass-22"})
    assert not check_password(api.app, "alice@dom.example", PASSWORD)
    assert check_password(api.app, "alice@dom.example", "Newer-Pass-22")
    api.ok("PATCH", f"/accounts/{user['pk']}/", {"is_active": False})
    assert not check_password(api.app, "alice@dom.example", "Newer-Pass-22")
    assert api.ok("GET", f"/accounts/{user['pk']}/")["mailbox"]["quota"] == "80"
    assert api("POST", f"/accounts/{user['pk']}/delete/", {"keepdir": False}).status_code == 204
    assert api("GET", f"/accounts/{user['pk']}/").status_code == 404


def test_a_disabled_domain_refuses_logins(api):
    d = new_domain(api)
    new_account(api, "alice@dom.example")
    api.ok("PATCH", f"/domains/{d['pk']}/", {"enabled": False})
    assert not check_password(api.app, "alice@dom.example", PASSWORD)


def test_aliases(api):
    new_domain(api)
    alias = api("POST", "/aliases/", {"address": "info@dom.example", "recipients": ["a@x.example"],
                                      "enabled": True})
    assert alias.status_code == 201
    pk = alias.get_json()["pk"]
    assert alias.get_json()["recipients"] == ["a@x.example"] and "internal" not in alias.get_json()
    assert api("POST", "/aliases/", {"address": "info@dom.example", "recipients": ["b@x.example"]}).get_json() == {
        "address": ["This alias already exists"]}
    assert api("POST", "/aliases/", {"address": "x@dom.example", "recipients": []}).get_json() == {
        "recipients": ["This list may not be empty."]}
    assert [a["pk"] for a in api.ok("GET", "/aliases/", domain="dom.example")["results"]] == [pk]
    assert api("GET", "/aliases/", domain="1").status_code == 400                 # by name here
    api.ok("PATCH", f"/aliases/{pk}/", {"recipients": ["a@x.example", "b@x.example"]})
    assert api("PATCH", f"/aliases/{pk}/", {"enabled": False}).status_code == 500   # as Modoboa's update
    assert api("DELETE", f"/aliases/{pk}/").status_code == 204
    assert api("DELETE", f"/aliases/{pk}/").status_code == 404


def test_control_api_state_mutate_faults_reset(api):
    d = new_domain(api, quota="10240", default="1024")
    new_account(api, "postmaster@dom.example", None)
    new_account(api, "alice@dom.example", "1024")
    [entry] = api.client.get("/_sim/state").get_json()["accounts"]
    assert entry["id"] == str(d["pk"]) and entry["status"] == "active"
    assert entry["limits"] == {"domain_quota_gb": 10, "mailbox_quota_mb": 1024}
    assert [m["address"] for m in entry["mailboxes"]] == ["alice@dom.example"]     # postmaster is native
    assert entry["native"]["postmaster"]["is_active"] is True
    assert PASSWORD not in str(api.client.get("/_sim/state").get_json())
    r = api.client.post("/_sim/mutate", json={"account_id": str(d["pk"]), "status": "suspended",
                                              "used_mb": {"alice@dom.example": 512}})
    assert r.status_code == 200 and r.get_json()["account"]["status"] == "suspended"
    assert api.ok("GET", "/accounts/", domain=d["pk"], search="alice")["results"][0]["mailbox"]["quota_usage"] == 50
    api.client.post("/_sim/faults", json={"error_rate": 1.0})
    failed = api("GET", "/domains/")
    assert failed.status_code == 500 and failed.mimetype == "text/html"
    api.client.post("/_sim/faults", json={"rate_limit_per_s": 0.001, "reset": True})
    api("GET", "/domains/")
    limited = api("GET", "/domains/")
    assert limited.status_code == 429 and limited.get_json() == {"detail": "Request was throttled."}
    api.client.post("/_sim/reset")
    assert api.client.get("/_sim/state").get_json()["accounts"] == []
    assert api.client.post("/_sim/mutate", json={"account_id": "1", "status": "active"}).status_code == 404


def test_a_local_recipient_must_exist(api):
    new_domain(api)
    missing = api("POST", "/aliases/", {"address": "info@dom.example", "recipients": ["nobody@dom.example"]})
    assert (missing.status_code, missing.get_json()) == (404, {"error": "Local recipient nobody@dom.example not found"})
    new_account(api, "alice@dom.example")
    assert api("POST", "/aliases/", {"address": "info@dom.example", "recipients": ["alice@dom.example"]}).status_code == 201


def test_unknown_objects_name_their_model_and_writes_answer_without_usage(api):
    """As tests/real/test_modoboa_parity.py found the real Modoboa 2.12 answering."""
    assert api("GET", "/domains/99/").get_json() == {"detail": "No Domain matches the given query."}
    assert api("PATCH", "/accounts/99/", {"is_active": True}).get_json() == \
        {"detail": "No User matches the given query."}
    assert api("DELETE", "/aliases/99/").get_json() == {"detail": "No Alias matches the given query."}
    d = new_domain(api)
    first = api.ok("POST", "/aliases/", {"address": "a@dom.example", "recipients": ["x@elsewhere.example"]})
    user = new_account(api, "alice@dom.example", "50").get_json()
    assert set(user) >= {"pk", "username", "mailbox"} and not {"aliases", "domains", "possible_actions"} & set(user)
    assert set(user["mailbox"]) == {"pk", "use_domain_quota", "quota", "message_limit", "is_send_only"}
    second = api.ok("POST", "/aliases/", {"address": "b@dom.example", "recipients": ["x@elsewhere.example"]})
    assert second["pk"] == first["pk"] + 2                 # alice's internal alias took one
    read = api.ok("GET", f"/accounts/{user['pk']}/")
    assert {"badges", "resources", "possible_actions"} <= set(read) and "quota_usage" in read["mailbox"]
    everyone = api.ok("GET", "/accounts/")["results"]
    assert [(a["username"], a["role"], a["mailbox"]) for a in everyone if a["username"] == "admin"] == \
        [("admin", "SuperAdmins", None)]
    assert d["sent_messages"] is None


def test_mailboxes_on_the_domain_quota_follow_its_default(api):
    """Modoboa's post_save handler on Domain, as the real 2.12 showed: a changed default
    mailbox quota reaches every mailbox with use_domain_quota, even past the domain quota."""
    d = new_domain(api)
    own = new_account(api, "own@dom.example", "50").get_json()
    shared = new_account(api, "shared@dom.example", None).get_json()
    assert shared["mailbox"]["use_domain_quota"] is True
    answer = api.ok("PATCH", f"/domains/{d['pk']}/", {"default_mailbox_quota": str(int(d["quota"]) + 100)})
    assert api.ok("GET", f"/accounts/{shared['pk']}/")["mailbox"]["quota"] == str(int(d["quota"]) + 100)
    assert api.ok("GET", f"/accounts/{own['pk']}/")["mailbox"]["quota"] == "50"
    assert answer["allocated_quota_in_percent"] > 100
