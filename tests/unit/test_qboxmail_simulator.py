"""The Qboxmail simulator: the Management API's paths, answer and error shapes, and its /_sim/ API."""
from __future__ import annotations

import datetime as dt
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from provisioner.simulators.qboxmail import GIB, check_password, create_app
from provisioner.simulators.server import SimulatorServer
from tests.helpers import StillClock

TOKEN = "unit-qbox-token"
HEADERS = {"X-Api-Token": TOKEN}
PASSWORD = "Postmaster-Pass-1"
START = dt.datetime(2026, 11, 21, 12, tzinfo=dt.timezone.utc).timestamp()


class Api:
    """JSON calls through the Flask test client, with the API token."""

    def __init__(self, app):
        self.client = app.test_client()
        self.sim = app.extensions["simulator"]

    def __call__(self, method: str, path: str, body: dict | None = None, **params):
        return self.client.open(path, method=method, json=body, query_string=params, headers=HEADERS)

    def ok(self, method: str, path: str, body: dict | None = None, **params) -> dict:
        r = self(method, path, body, **params)
        assert r.status_code in (200, 201, 204), r.get_json()
        return r.get_json() if r.data else {}

    def domain(self, name: str = "shop.example", **fields) -> str:
        body = {"name": name, "postmaster_password": PASSWORD, "postmaster_password_confirmation": PASSWORD,
                **fields}
        return self.ok("POST", "/api/domains", body)["resource_code"]

    def relay(self, **fields) -> dict:
        body = {"description": "shop.example (service 1)", "type": "transactional", "plan": "prepaid", **fields}
        return self.ok("POST", "/api/delivery/accounts", body)["resources"][0]

    def state(self) -> list[dict]:
        return self.client.get("/_sim/state").get_json()["accounts"]

    def mutate(self, account_id: str, **changes):
        return self.client.post("/_sim/mutate", json={"account_id": account_id, **changes})


@pytest.fixture
def clock():
    return StillClock(START)


@pytest.fixture
def make_api(clock):
    def make(**options) -> Api:
        return Api(create_app(api_token=TOKEN, clock=clock, **options))
    return make


@pytest.fixture
def api(make_api) -> Api:
    return make_api(verification_delay=0)


def errors(response) -> list[tuple[str, str]]:
    body = response.get_json()
    assert set(body) == {"message", "errors"}
    return [(e["field"], e["description"]) for e in body["errors"]]


# --- authentication and errors -----------------------------------------------------

def test_the_api_token_is_required_and_errors_have_the_real_shape(api):
    r = api.client.get("/api/domains")
    assert r.status_code == 401 and r.get_json() == {"message": "Unauthorized", "errors": []}
    r = api.client.get("/api/domains", headers={"X-Api-Token": "wrong"})
    assert r.status_code == 401
    assert api.client.get("/_sim/state").status_code == 200              # the control API needs none
    r = api("GET", "/api/no_such_thing")
    assert r.status_code == 404 and r.get_json() == {"message": "Not found", "errors": []}


def test_faults_answer_in_the_api_error_shape(api):
    api.client.post("/_sim/faults", json={"error_rate": 1.0, "only_actions": ["domains.list"]})
    r = api("GET", "/api/domains")
    assert r.status_code == 500 and r.get_json() == {"message": "Internal server error", "errors": []}
    assert api("POST", "/api/domains", {}).status_code == 422           # other actions unaffected
    calls = api.client.get("/_sim/calls").get_json()["calls"]
    assert calls == {"domains.list": 1, "domains.create": 1}


# --- hosting domains ---------------------------------------------------------------------

def test_domain_create_answers_the_code_and_location(api):
    r = api("POST", "/api/domains", {"name": "Shop.Example", "postmaster_password": PASSWORD,
                                     "postmaster_password_confirmation": PASSWORD, "plan": "professional",
                                     "max_email_accounts": 3, "max_email_quota": 4 * GIB})
    assert r.status_code == 201
    code = r.get_json()["resource_code"]
    assert re.fullmatch(r"D\d{9}", code) and r.headers["Location"] == f"/api/domains/{code}"
    [domain] = api.ok("GET", f"/api/domains/{code}")["resources"]
    assert domain["name"] == "shop.example" and domain["status"] == "enabled" and domain["plan"] == "professional"
    assert domain["max_email_accounts"] == 3 and domain["max_email_quota"] == 4 * GIB
    assert "postmaster_password" not in str(domain) and PASSWORD not in str(api.state())
    assert check_password(api.sim.domains[code].postmaster_hash, PASSWORD)


@pytest.mark.parametrize("body, field", [
    ({"name": "not a domain"}, "name"),
    ({"postmaster_password": "short1", "postmaster_password_confirmation": "short1"}, "postmaster_password"),
    ({"postmaster_password": "lettersonly", "postmaster_password_confirmation": "lettersonly"},
     "postmaster_password"),
    ({"postmaster_password_confirmation": "Other-Pass-2"}, "postmaster_password_confirmation"),
    ({"plan": "gold"}, "plan"),
    ({"max_email_quota": 10 * GIB}, "max_email_quota"),
    ({"max_email_accounts": -2}, "max_email_accounts"),
])
def test_domain_create_validates(api, body, field):
    base = {"name": "shop.example", "postmaster_password": PASSWORD, "postmaster_password_confirmation": PASSWORD}
    r = api("POST", "/api/domains", {**base, **body})
    assert r.status_code == 422 and r.get_json()["message"] == "Validation failed"
    assert [f for f, _ in errors(r)] == [field]
    assert api.state() == []


def test_a_duplicate_or_foreign_domain_already_exists(make_api):
    api = make_api(verification_delay=0, taken_domains=["taken.example"])
    api.domain("shop.example")
    for name in ("shop.example", "taken.example"):
        r = api("POST", "/api/domains", {"name": name, "postmaster_password": PASSWORD,
                                         "postmaster_password_confirmation": PASSWORD})
        assert r.status_code == 422 and errors(r) == [("name", "already exists")]
    assert [d["name"] for d in api.ok("GET", "/api/domains")["resources"]] == ["shop.example"]
    assert api.ok("GET", "/api/domains", query="taken")["resources"] == []


def test_domain_lists_page_and_search(api):
    for n in range(7):
        api.domain(f"shop{n}.example")
    body = api.ok("GET", "/api/domains", page=2, per=3)
    assert [d["name"] for d in body["resources"]] == ["shop3.example", "shop4.example", "shop5.example"]
    assert {k: body["pagination"][k] for k in ("per", "page", "total_pages", "total_records")} == {
        "per": 3, "page": 2, "total_pages": 3, "total_records": 7}
    assert [d["name"] for d in api.ok("GET", "/api/domains", query="shop6")["resources"]] == ["shop6.example"]


def test_a_new_domain_waits_for_ownership_until_mutated(make_api):
    api = make_api()                                        # verification_delay None: never by itself
    code = api.domain()
    [domain] = api.ok("GET", f"/api/domains/{code}")["resources"]
    assert domain["status"] == "ownership_check" and domain["status_detail"] == "ownership_verification"
    assert domain["possession_a_record"] == code.lower()
    check = api.ok("PUT", f"/api/domains/{code}/dns_ownership_check/sync")
    assert check["verified"] is False and check["activation_queued"] is False
    assert check["expected_record"] == {"name": f"{code.lower()}.shop.example", "type": "A",
                                        "value": "185.97.217.16"}
    assert api.state()[0]["status"] == "pending"
    r = api("POST", f"/api/domains/{code}/email_accounts", {"name": "ada"})
    assert r.status_code == 422 and errors(r) == [("domain", "ownership has not been verified")]
    assert api.mutate(code, status="active").get_json()["account"]["status"] == "active"
    assert api.ok("GET", f"/api/domains/{code}")["resources"][0]["status"] == "enabled"


def test_ownership_is_verified_by_a_check_once_the_record_is_published(make_api, clock):
    api = make_api(verification_delay=60)
    code = api.domain()
    assert api.ok("PUT", f"/api/domains/{code}/dns_ownership_check/sync")["verified"] is False
    clock.now += 61
    assert api.ok("GET", f"/api/domains/{code}")["resources"][0]["status"] == "ownership_check"   # reads change nothing
    check = api.ok("PUT", f"/api/domains/{code}/dns_ownership_check/sync")
    assert check["verified"] is True and check["activation_queued"] is True
    assert check["resource"]["status"] == "enabled"
    assert api.ok("GET", f"/api/domains/{code}")["resources"][0]["status"] == "enabled"


def test_domain_status_update_and_delete(api):
    code = api.domain()
    api.ok("PUT", f"/api/domains/{code}/status", {"status": "disabled"})
    api.ok("PUT", f"/api/domains/{code}/status", {"status": "disabled"})         # again: no error
    assert api.state()[0]["status"] == "suspended"
    api.ok("PUT", f"/api/domains/{code}/status", {"status": "enabled"})
    assert api.state()[0]["status"] == "active"
    assert api("PUT", f"/api/domains/{code}/status", {"status": "paused"}).status_code == 422
    assert api("DELETE", f"/api/domains/{code}").status_code == 204
    assert api("GET", f"/api/domains/{code}").status_code == 404
    assert api("DELETE", f"/api/domains/{code}").status_code == 404
    assert api.state() == []


def test_domain_update_changes_limits_and_refuses_less_than_in_use(api):
    code = api.domain(max_email_accounts=5)
    api.ok("POST", f"/api/domains/{code}/email_accounts", {"name": "ada", "password": PASSWORD,
                                                            "password_confirmation": PASSWORD, "firstname": "Ada"})
    updated = api.ok("PUT", f"/api/domains/{code}", {"max_email_accounts": 2, "plan": "enterprise",
                                                      "max_email_quota": 2 * GIB})["resources"][0]
    assert (updated["max_email_accounts"], updated["plan"], updated["max_email_quota"]) == (2, "enterprise", 2 * GIB)
    r = api("PUT", f"/api/domains/{code}", {"max_email_accounts": 0})
    assert r.status_code == 422 and errors(r)[0][0] == "max_email_accounts"


# --- email accounts -------------------------------------------------------------------------

def test_email_accounts_with_limits_quotas_and_codes(api):
    code = api.domain(max_email_accounts=2, max_email_quota=8 * GIB)
    path = f"/api/domains/{code}/email_accounts"
    box = {"password": "Mailbox-Pass-9", "password_confirmation": "Mailbox-Pass-9"}
    r = api("POST", path, {"name": "ada", "firstname": "Ada", "lastname": "Lovelace", "quota": 5 * GIB, **box})
    assert r.status_code == 201
    ada = r.get_json()["resource_code"]
    assert re.fullmatch(r"EA\d{8}", ada) and r.headers["Location"] == f"{path}/{ada}"
    r = api("POST", path, {"name": "big", "firstname": "B", "quota": 16 * GIB, **box})
    assert r.status_code == 422 and errors(r) == [("quota", "exceeds the maximum quota of the domain")]
    r = api("POST", path, {"name": "odd", "firstname": "O", "quota": 3 * GIB + 1, **box})
    assert r.status_code == 422 and errors(r) == [("quota", "is not included in the list")]
    r = api("POST", path, {"name": "ada", "firstname": "Ada", **box})
    assert r.status_code == 422 and errors(r) == [("name", "already exists")]
    r = api("POST", path, {"name": "nofirst", **box})
    assert r.status_code == 422 and errors(r) == [("firstname", "can't be blank")]
    api.ok("POST", path, {"name": "bob", "firstname": "Bob", **box})
    r = api("POST", path, {"name": "eve", "firstname": "Eve", **box})
    assert r.status_code == 422 and "maximum number of email accounts" in errors(r)[0][1]

    [record] = api.ok("GET", f"{path}/{ada}")["resources"]
    assert record["email_address"] == "ada@shop.example" and record["quota"] == 5 * GIB
    changed = api.ok("PUT", f"{path}/{ada}", {"firstname": "Ada L.", "quota": 2 * GIB})["resources"][0]
    assert changed["firstname"] == "Ada L." and changed["quota"] == 2 * GIB
    api.ok("PUT", f"{path}/{ada}/status", {"status": "disabled"})
    assert api.ok("GET", f"{path}/{ada}")["resources"][0]["status"] == "disabled"
    assert [m["address"] for m in api.state()[0]["mailboxes"]] == ["ada@shop.example", "bob@shop.example"]
    assert api("DELETE", f"{path}/{ada}").status_code == 204
    assert api("DELETE", f"{path}/{ada}").status_code == 404
    assert [a["name"] for a in api.ok("GET", path)["resources"]] == ["bob"]
    assert "Mailbox-Pass-9" not in str(api.state())


# --- delivery (relay) accounts ------------------------------------------------------------------

def test_a_relay_password_is_in_the_create_answer_only(api):
    r = api("POST", "/api/delivery/accounts", {"description": "shop.example (service 1)", "type": "transactional",
                                               "plan": "free", "bounce_notification": "ops@shop.example"})
    assert r.status_code == 201
    [created] = r.get_json()["resources"]
    password, relay_id = created["password"], created["id"]
    assert re.fullmatch(r"[a-z0-9]{12}", created["username"]) and relay_id.isdigit()
    assert created["status"] == 1 and created["display_status"] == "enabled" and created["plan"] == "free"
    assert check_password(api.sim.relays[int(relay_id)].password_hash, password)
    [read] = api.ok("GET", f"/api/delivery/accounts/{relay_id}")["resources"]
    [listed] = api.ok("GET", "/api/delivery/accounts")["resources"]
    assert "password" not in read and "password" not in listed
    assert password not in str(api.state()) and password not in str(read)
    [entry] = api.state()
    assert entry["id"] == relay_id and entry["domain"] == "shop.example" and entry["status"] == "active"
    assert entry["limits"] == {"qboxmail_product": "relay", "relay_type": "transactional", "relay_plan": "free",
                               "relay_messages": 3000, "relay_max_domains": 1}
    new = api.ok("PUT", f"/api/delivery/accounts/{relay_id}/password")["resources"][0]["password"]
    assert new != password and check_password(api.sim.relays[int(relay_id)].password_hash, new)


def test_one_free_account_per_customer(api):
    api.relay(plan="free")
    r = api("POST", "/api/delivery/accounts", {"description": "x", "type": "newsletter", "plan": "free"})
    assert r.status_code == 422 and errors(r) == [
        ("plan", "free plan already used: only one free account per customer")]
    other = api.relay(plan="free", customer_code="C000000002")      # an admin token's other customer
    assert other["customer_code"] == "C000000002"
    assert api.relay(plan="monthly")["plan"] == "monthly"
    r = api("POST", "/api/delivery/accounts", {"description": "x", "type": "transactional", "plan": "free",
                                               "plan_num_messages": 5000, "customer_code": "C000000003"})
    assert r.status_code == 422 and errors(r)[0][0] == "plan_num_messages"


@pytest.mark.parametrize("body, field", [
    ({"type": "promotional"}, "type"), ({"plan": "yearly"}, "plan"), ({"description": ""}, "description"),
    ({"allow_nets": ["300.1.1.1"]}, "allow_nets"), ({"bounce_notification": "nope"}, "bounce_notification"),
    ({"max_domains": 0}, "max_domains"), ({"payment_method": "cash"}, "payment_method"),
])
def test_relay_create_validates(api, body, field):
    r = api("POST", "/api/delivery/accounts", {"description": "d", "type": "transactional", "plan": "prepaid", **body})
    assert r.status_code == 422 and [f for f, _ in errors(r)] == [field]


def test_paid_accounts_wait_for_payment_then_prepaid_expiry_moves_with_each_purchase(make_api, clock):
    api = make_api(activation_delay=30)
    created = api.relay(plan="prepaid", plan_num_messages=20000)
    relay_id = created["id"]
    assert created["display_status"] == "wait_pay" and created["status"] == 0
    assert created["plan_expiration_date"] == "2027-11-21"
    assert api.state()[0]["status"] == "pending"
    r = api("PUT", f"/api/delivery/accounts/{relay_id}/status", {"status": "enabled"})
    assert r.status_code == 422 and errors(r) == [("status", "payment has not been received")]
    waiting = api.ok("GET", "/api/delivery/accounts", status="wait_pay")["resources"]
    assert [a["id"] for a in waiting] == [relay_id]
    clock.now += 31
    assert api.ok("GET", f"/api/delivery/accounts/{relay_id}")["resources"][0]["display_status"] == "enabled"
    bought = api.ok("PUT", f"/api/delivery/accounts/{relay_id}", {"volume": 1})["resources"][0]
    assert bought["plan_expiration_date"] == "2028-11-21" and bought["extra_messages_total"] == 20000
    assert bought["remaining_messages"] == 40000


def test_relay_updates_status_domains_and_type(api):
    relay_id = api.relay(max_domains=1)["id"]
    path = f"/api/delivery/accounts/{relay_id}"
    dd = api.ok("POST", "/api/delivery/domains", {"name": "shop.example"})["resources"][0]["code"]
    dd2 = api.ok("POST", "/api/delivery/domains", {"name": "news.example"})["resources"][0]["code"]
    assert re.fullmatch(r"DD\d{8}", dd)
    assert api("POST", "/api/delivery/domains", {"name": "shop.example"}).status_code == 422
    updated = api.ok("PUT", path, {"domain_codes": [dd], "allow_nets": ["203.0.113.0/24"],
                                   "bounce_notification": "b@shop.example", "bounce_notification_to_sender": False})
    record = updated["resources"][0]
    assert record["domains"] == [{"code": dd, "name": "shop.example"}] and record["allow_nets"] == ["203.0.113.0/24"]
    r = api("PUT", path, {"domain_codes": [dd, dd2]})
    assert r.status_code == 422 and errors(r) == [("domain_codes", "exceeds the maximum number of associated domains")]
    api.ok("PUT", path, {"max_domains": 2, "domain_codes": [dd, dd2]})
    r = api("PUT", path, {"type": "newsletter"})
    assert r.status_code == 422 and errors(r) == [("type", "cannot be changed")]
    api.ok("PUT", f"{path}/status", {"status": "disabled"})
    assert api.state()[0]["status"] == "suspended"
    api.ok("PUT", f"{path}/status", {"status": "enabled"})
    assert api.state()[0]["status"] == "active"
    assert api("DELETE", path).status_code == 204 and api("GET", path).status_code == 404
    assert api.state() == []


# --- /_sim/ ------------------------------------------------------------------------------------

def test_mutate_status_limits_and_raw_status(make_api):
    api = make_api(verification_delay=0)
    code = api.domain()
    relay_id = api.relay()["id"]
    entry = api.mutate(code, limits={"mailboxes": 9, "mailbox_quota_gb": 16}).get_json()["account"]
    assert entry["limits"]["mailboxes"] == 9 and entry["limits"]["mailbox_quota_gb"] == 16
    entry = api.mutate(relay_id, limits={"relay_messages": 500}, messages_sent=120).get_json()["account"]
    assert entry["limits"]["relay_messages"] == 500 and entry["native"]["messages_sent"] == 120
    assert api.mutate(relay_id, qboxmail_status="error").get_json()["account"]["status"] == "pending"
    assert api.mutate(relay_id, qboxmail_status="blocked").get_json()["account"]["native"]["status"] == 4
    assert api.mutate(code, status="suspended").get_json()["account"]["native"]["status"] == "disabled"
    assert api.mutate(code, qboxmail_status="bogus").status_code == 400
    assert api.mutate("D999999999", status="active").status_code == 404
    assert api.mutate(relay_id, status="deleted").get_json()["account"]["status"] == "deleted"
    assert [a["id"] for a in api.state()] == [code]


def test_reset_forgets_everything(api):
    api.domain()
    api.relay()
    api.client.post("/_sim/reset")
    assert api.state() == [] and api.client.get("/_sim/calls").get_json()["total"] == 0


def test_concurrent_creates_get_distinct_codes():
    server = SimulatorServer(create_app(api_token=TOKEN, verification_delay=0)).start()
    try:
        def make(n: int) -> str:
            body = {"name": f"shop{n}.example", "postmaster_password": PASSWORD,
                    "postmaster_password_confirmation": PASSWORD}
            return requests.post(f"{server.url}/api/domains", json=body, headers=HEADERS,
                                 timeout=5).json()["resource_code"]
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(make, range(24)))
        assert len(set(codes)) == 24
        state = requests.get(f"{server.url}/_sim/state", timeout=5).json()["accounts"]
        assert sorted(a["id"] for a in state) == sorted(codes)
    finally:
        server.stop()


def test_qboxmails_own_domain_states_and_what_they_refuse(make_api, clock):
    api = make_api(verification_delay=0.5)
    code = api.domain()
    for state, normalised in (("suspended", "suspended"), ("rejected", "suspended"), ("deleted", "deleted")):
        api.mutate(code, qboxmail_status=state)
        assert api.ok("GET", f"/api/domains/{code}")["resources"][0]["status"] == state
        assert api.state()[0]["status"] == normalised
    api.mutate(code, qboxmail_status="rejected")
    clock.now += 1                                            # its record is published, too late
    r = api("PUT", f"/api/domains/{code}/status", {"status": "enabled"})
    assert r.status_code == 422 and errors(r) == [("status", "cannot be changed for a rejected domain")]
    r = api("PUT", f"/api/domains/{code}/dns_ownership_check/sync")
    assert r.get_json()["verified"] is False                  # a rejected domain is not activated by a check


def test_dkim_is_opt_in_and_made_once(api):
    code = api.domain()
    [domain] = api.ok("GET", f"/api/domains/{code}")["resources"]
    assert domain["dkim_selector"] is None and domain["dkim_public_key"] is None and domain["has_dkim"] == 0
    [made] = api.ok("POST", f"/api/domains/{code}/dkim")["resources"]
    assert re.fullmatch(r"qbm\d{10}", made["dkim_selector"])
    assert made["txt_record"] == f"v=DKIM1; k=rsa; p={made['dkim_public_key']}"
    assert api.ok("POST", f"/api/domains/{code}/dkim")["resources"] == [made]      # a repeat: the same key
    [domain] = api.ok("GET", f"/api/domains/{code}")["resources"]
    assert (domain["dkim_selector"], domain["dkim_public_key"], domain["has_dkim"]) == (
        made["dkim_selector"], made["dkim_public_key"], 1)
    assert api("POST", "/api/domains/D999999999/dkim").status_code == 404


def test_the_dns_check_is_queued(api):
    code = api.domain()
    assert api.ok("PUT", f"/api/domains/{code}/dns") == {"message": "DNS check queued"}
    assert api("PUT", "/api/domains/D999999999/dns").status_code == 404
