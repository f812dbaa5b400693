"""The client area's JSON API (contract section 4) on the sandbox simulator, and on
PolarisMail (Basic/Enhanced mailboxes, webmail single sign-on, no upstream limits).

Every action and every limit of the product; limits are checked before the upstream
is called; a suspended service is read-only; an upstream failure changes nothing.
The helpers here (app, make_service, sign_in) are shared by the other client tests.
"""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
import requests

from provisioner import apikeys, create_app
from provisioner.client import sso
from provisioner.devsetup import dev_products_env
from provisioner.models import Service
from provisioner.products import load_catalog
from provisioner.providers.errors import Unavailable
from provisioner.runtime import Runtime
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer
from tests.helpers import event_body, sim_state

API = "/client/api/v1"
PASSWORD = "Quiet-Harbour-2048"
SANDBOX_OPTIONS = {"Total Mailboxes": 3, "Total Enhanced Mailboxes": 1, "Mailbox Quota (GB)": 10,
                   "Total Aliases": 2, "Total Distribution Lists": 1}


# --- shared helpers (imported by test_client_authz.py and test_client_pages.py) ----------------------

def build_app(runtime):
    """The app (create_app registers the client area)."""
    return create_app(runtime=runtime)


@pytest.fixture
def app(runtime):
    return build_app(runtime)


def make_service(client, signer, worker, runtime, service_id: str, domain: str, *,
                 product_id: str = "12", options: dict | None = None) -> Service:
    body = event_body("service.create", service_id, domain=domain, product_id=product_id,
                      options=SANDBOX_OPTIONS if options is None else options)
    r = signer.post(client, body)
    assert r.status_code in (200, 202), r.get_json()
    worker.drain()
    service = load(runtime, service_id)
    assert service.upstream_id and service.observed_status == "active", service.observed_status
    return service


def load(runtime, service_id: str) -> Service:
    with runtime.db.read() as s:
        return s.get(Service, service_id)


def send_event(client, signer, worker, kind: str, service_id: str, domain: str, *, product_id: str = "12",
               options: dict | None = None, **fields) -> None:
    body = event_body(kind, service_id, domain=domain, product_id=product_id,
                      options=SANDBOX_OPTIONS if options is None else options, **fields)
    r = signer.post(client, body)
    assert r.status_code in (200, 202), r.get_json()
    worker.drain()


class Customer:
    """A browser-less customer: the Flask test client with a client-area session."""

    def __init__(self, http, csrf: str):
        self.http, self.csrf = http, csrf

    def get(self, path: str, **kw):
        return self.http.get(API + path, **kw)

    def write(self, method: str, path: str, body=None, *, csrf: str | None = "yes"):
        headers = {} if csrf is None else {"X-CSRF-Token": self.csrf if csrf == "yes" else csrf}
        return self.http.open(API + path, method=method, json=body, headers=headers)

    def post(self, path, body=None, **kw):
        return self.write("POST", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.write("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.write("DELETE", path, **kw)


def sign_in(app, runtime, service_id: str) -> Customer:
    http = app.test_client()
    url, _ = sso.issue_token(runtime, service_id)
    r = http.get(urlsplit(url).path)
    assert r.status_code == 303 and r.headers["Location"].endswith("/client/")
    session = http.get(API + "/session")
    assert session.status_code == 200
    return Customer(http, session.get_json()["csrf_token"])


def _same_session(app, customer: Customer) -> Customer:
    http = app.test_client()
    http.set_cookie("provisioner_client", customer.http.get_cookie("provisioner_client", path="/client").value,
                    path="/client")
    return Customer(http, customer.csrf)


def limit_error(r, limit: str) -> str:
    assert r.status_code == 422, (r.status_code, r.get_json())
    error = r.get_json()["error"]
    assert error["code"] == "limit_exceeded" and error["limit"] == limit, error
    return error["message"]


def sim_calls(sim) -> dict[str, int]:
    return requests.get(f"{sim.url}/_sim/calls", timeout=5).json()["calls"]


@pytest.fixture
def service(client, signer, worker, runtime) -> Service:
    return make_service(client, signer, worker, runtime, "701", "shop.example")


@pytest.fixture
def me(app, runtime, service) -> Customer:
    return sign_in(app, runtime, service.id)


# --- the admin side: issuing a link ------------------------------------------------------------

def test_admin_api_issues_a_single_sign_on_link(app, runtime, service):
    with runtime.db.transaction() as s:
        admin_key = apikeys.create_api_key(s, "billing", "admin")[1]
        read_key = apikeys.create_api_key(s, "viewer", "read")[1]
    http = app.test_client()
    auth = {"Authorization": f"Bearer {admin_key}"}
    before = dt.datetime.now(dt.timezone.utc)
    r = http.post(f"/api/v1/services/{service.id}/sso", headers=auth)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert list(body) == ["url", "expires_at"]
    assert body["url"].startswith(runtime.settings.public_url.rstrip("/") + "/client/sso/")
    expires = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert dt.timedelta(seconds=59) <= expires - before <= dt.timedelta(seconds=61)
    assert r.headers["Cache-Control"] == "no-store"

    assert http.post("/api/v1/services/nope/sso", headers=auth).status_code == 404
    assert http.post(f"/api/v1/services/{service.id}/sso").status_code == 401
    assert http.post(f"/api/v1/services/{service.id}/sso",
                     headers={"Authorization": f"Bearer {read_key}"}).status_code == 403

    # The link opens the client area once.
    browser = app.test_client()
    assert browser.get(urlsplit(body["url"]).path).status_code == 303
    assert browser.get(API + "/session").get_json()["service_id"] == service.id


def test_no_link_for_a_terminated_service(app, runtime, client, signer, worker, service):
    send_event(client, signer, worker, "service.terminate", service.id, service.domain)
    with runtime.db.transaction() as s:
        key = apikeys.create_api_key(s, "billing", "admin")[1]
    r = app.test_client().post(f"/api/v1/services/{service.id}/sso", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "service_terminated"


def test_the_sso_route_is_documented(app):
    doc = app.test_client().get("/api/openapi.json").get_json()
    op = doc["paths"]["/api/v1/services/{service_id}/sso"]["post"]
    assert {"200", "401", "403", "404", "409"} <= op["responses"].keys()
    assert set(doc["components"]["schemas"]["SsoLink"]["properties"]) == {"url", "expires_at"}


# --- session -------------------------------------------------------------------------------------

def test_session_describes_the_service(me, service):
    body = me.get("/session").get_json()
    assert list(body)[:7] == ["service_id", "domain", "status", "limits", "usage", "capabilities", "csrf_token"]
    assert body["service_id"] == service.id and body["domain"] == "shop.example"
    assert body["status"] == "active"
    assert body["limits"] == {"mailboxes": 3, "enhanced_mailboxes": 1, "mailbox_quota_gb": 10,
                              "aliases": 2, "distribution_lists": 1}
    assert body["usage"]["mailboxes"] == 0
    assert body["capabilities"] == ["mailboxes", "aliases", "lists"]
    assert body["mailbox_types"] == ["basic", "enhanced"] and body["sso"] is False
    assert body["csrf_token"] == me.csrf and len(me.csrf) >= 32
    assert me.get("/session").headers["Cache-Control"] == "private, no-store"


def test_logout_ends_the_session(me):
    assert me.post("/logout").status_code == 204
    assert me.get("/session").status_code == 401


# --- mailboxes ---------------------------------------------------------------------------------------

def test_mailbox_actions(me, runtime, service, sandbox_sim):
    r = me.post("/mailboxes", {"local_part": "Ada", "password": PASSWORD, "name": "Ada Lovelace",
                               "quota_gb": 5})
    assert r.status_code == 201, r.get_json()
    ada = r.get_json()
    assert ada["id"] and ada["address"] == "ada@shop.example" and ada["name"] == "Ada Lovelace"
    assert ada["quota_gb"] == 5 and ada["type"] == "basic" and ada["enabled"] is True
    assert load(runtime, service.id).usage["mailboxes"] == 1

    bob = me.post("/mailboxes", {"local_part": "bob", "password": PASSWORD, "type": "enhanced"}).get_json()
    assert bob["type"] == "enhanced" and bob["quota_gb"] == 10          # the plan's default quota
    assert load(runtime, service.id).usage["enhanced_mailboxes"] == 1

    listing = me.get("/mailboxes").get_json()
    assert [m["address"] for m in listing["items"]] == ["ada@shop.example", "bob@shop.example"]
    assert (listing["page"], listing["per_page"], listing["total"]) == (1, 50, 2)
    assert [m["id"] for m in me.get("/mailboxes?q=LOVELACE").get_json()["items"]] == [ada["id"]]
    page2 = me.get("/mailboxes?per_page=1&page=2").get_json()
    assert [m["id"] for m in page2["items"]] == [bob["id"]] and page2["total"] == 2
    assert me.get("/mailboxes?per_page=0").status_code == 400
    assert me.get("/mailboxes?sort=name").status_code == 400

    assert me.get(f"/mailboxes/{ada['id']}").get_json() == ada

    r = me.patch(f"/mailboxes/{ada['id']}", {"name": "Ada King", "quota_gb": 8})
    assert r.status_code == 200 and r.get_json()["name"] == "Ada King" and r.get_json()["quota_gb"] == 8
    assert me.patch(f"/mailboxes/{ada['id']}", {"password": "Another-Harbour-99"}).status_code == 200
    r = me.patch(f"/mailboxes/{ada['id']}", {"enabled": False})
    assert r.status_code == 200 and r.get_json()["enabled"] is False
    r = me.patch(f"/mailboxes/{bob['id']}", {"type": "basic"})
    assert r.status_code == 200 and r.get_json()["type"] == "basic"
    assert load(runtime, service.id).usage["enhanced_mailboxes"] == 0

    assert me.delete(f"/mailboxes/{ada['id']}").status_code == 204
    assert me.get(f"/mailboxes/{ada['id']}").status_code == 404
    assert load(runtime, service.id).usage["mailboxes"] == 1
    [account] = sim_state(sandbox_sim)
    assert [m["address"] for m in account["mailboxes"]] == ["bob@shop.example"]
    assert PASSWORD not in str(account)


def test_mailbox_limits_are_enforced_before_the_upstream(me, sandbox_sim):
    for name in ("a1", "a2"):
        assert me.post("/mailboxes", {"local_part": name, "password": PASSWORD}).status_code == 201
    enhanced = me.post("/mailboxes", {"local_part": "e1", "password": PASSWORD, "type": "enhanced"})
    assert enhanced.status_code == 201
    creates = sim_calls(sandbox_sim)["mailboxes.create"]

    message = limit_error(me.post("/mailboxes", {"local_part": "a4", "password": PASSWORD}), "mailboxes")
    assert message == "You have used all 3 mailboxes of your plan."
    assert sim_calls(sandbox_sim)["mailboxes.create"] == creates          # never asked upstream

    first = me.get("/mailboxes").get_json()["items"][0]
    assert me.delete(f"/mailboxes/{first['id']}").status_code == 204
    message = limit_error(me.post("/mailboxes", {"local_part": "e2", "password": PASSWORD, "type": "enhanced"}),
                          "enhanced_mailboxes")
    assert message == "You have used the 1 Enhanced mailbox of your plan."
    other = next(m for m in me.get("/mailboxes").get_json()["items"] if m["type"] == "basic")
    limit_error(me.patch(f"/mailboxes/{other['id']}", {"type": "enhanced"}), "enhanced_mailboxes")

    message = limit_error(me.post("/mailboxes", {"local_part": "big", "password": PASSWORD, "quota_gb": 11}),
                          "mailbox_quota_gb")
    assert message == "A mailbox can have at most 10 GB on your plan."
    limit_error(me.patch(f"/mailboxes/{other['id']}", {"quota_gb": 11}), "mailbox_quota_gb")
    assert sim_calls(sandbox_sim)["mailboxes.create"] == creates
    assert me.post("/mailboxes", {"local_part": "ok", "password": PASSWORD, "quota_gb": 10}).status_code == 201


def test_a_total_storage_limit_is_enforced(me, runtime, service):
    # No shipped product has one yet; a product whose provider knows total_quota_gb gets it.
    with runtime.db.transaction() as s:
        row = s.get(Service, service.id)
        row.limits = {**row.limits, "total_quota_gb": 15}
    assert me.post("/mailboxes", {"local_part": "a", "password": PASSWORD, "quota_gb": 10}).status_code == 201
    message = limit_error(me.post("/mailboxes", {"local_part": "b", "password": PASSWORD, "quota_gb": 6}),
                          "total_quota_gb")
    assert message == "Your plan has 15 GB of storage for all mailboxes together and 5 GB of it are still free."
    r = me.post("/mailboxes", {"local_part": "b", "password": PASSWORD, "quota_gb": 5})
    assert r.status_code == 201
    limit_error(me.patch(f"/mailboxes/{r.get_json()['id']}", {"quota_gb": 6}), "total_quota_gb")


@pytest.mark.parametrize("body, field", [
    ({"local_part": "bad name", "password": PASSWORD}, "local_part"),
    ({"local_part": "x@shop.example", "password": PASSWORD}, "local_part"),
    ({"local_part": "-dash", "password": PASSWORD}, "local_part"),
    ({"password": PASSWORD}, "local_part"),
    ({"local_part": "ada", "password": "short1"}, "password"),
    ({"local_part": "ada", "password": "onlyletterslong"}, "password"),
    ({"local_part": "ada", "password": "aaaaaaaaaa1"}, "password"),
    ({"local_part": "ada", "password": "ada-Harbour-2048"}, "password"),
    ({"local_part": "ada"}, "password"),
    ({"local_part": "ada", "password": PASSWORD, "quota_gb": 0}, "quota_gb"),
    ({"local_part": "ada", "password": PASSWORD, "quota_gb": "many"}, "quota_gb"),
    ({"local_part": "ada", "password": PASSWORD, "type": "gold"}, "type"),
    ({"local_part": "ada", "password": PASSWORD, "name": "x" * 101}, "name"),
    ({"local_part": "ada", "password": PASSWORD, "colour": "red"}, "colour"),
])
def test_mailbox_validation(me, body, field):
    r = me.post("/mailboxes", body)
    assert r.status_code == 422, r.get_json()
    error = r.get_json()["error"]
    assert error["code"] == "invalid_input" and field in error["fields"], error
    assert me.get("/mailboxes").get_json()["total"] == 0


def test_bad_bodies(me):
    r = me.http.post(API + "/mailboxes", data="{not json", headers={"X-CSRF-Token": me.csrf,
                                                                     "Content-Type": "application/json"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "malformed_json"
    assert me.post("/mailboxes", ["a list"]).status_code == 400
    me.post("/mailboxes", {"local_part": "ada", "password": PASSWORD})
    ada = me.get("/mailboxes").get_json()["items"][0]
    r = me.post("/mailboxes", {"local_part": "ada", "password": PASSWORD})
    assert r.status_code == 422 and "already exists" in r.get_json()["error"]["fields"]["local_part"]
    r = me.patch(f"/mailboxes/{ada['id']}", {})
    assert r.status_code == 422
    r = me.patch(f"/mailboxes/{ada['id']}", {"enabled": "no"})
    assert r.status_code == 422 and "enabled" in r.get_json()["error"]["fields"]


# --- aliases and lists -------------------------------------------------------------------------------

def test_alias_actions_and_limit(me, runtime, service, sandbox_sim):
    r = me.post("/aliases", {"local_part": "info", "target": "Ada@Elsewhere.example"})
    assert r.status_code == 201, r.get_json()
    info = r.get_json()
    assert info["id"] and info["address"] == "info@shop.example" and info["target"] == "ada@elsewhere.example"
    assert me.post("/aliases", {"local_part": "sales", "target": "ada@elsewhere.example"}).status_code == 201
    assert load(runtime, service.id).usage["aliases"] == 2
    creates = sim_calls(sandbox_sim)["aliases.create"]
    message = limit_error(me.post("/aliases", {"local_part": "help", "target": "ada@elsewhere.example"}), "aliases")
    assert message == "You have used all 2 aliases of your plan."
    assert sim_calls(sandbox_sim)["aliases.create"] == creates

    listing = me.get("/aliases?q=sales").get_json()
    assert [a["address"] for a in listing["items"]] == ["sales@shop.example"] and listing["total"] == 1
    for body, field in (({"local_part": "x", "target": "not-an-address"}, "target"),
                        ({"local_part": "x"}, "target"),
                        ({"local_part": "x y", "target": "a@b.example"}, "local_part"),
                        ({"local_part": "self", "target": "self@shop.example"}, "target")):
        r = me.post("/aliases", body)
        assert r.status_code == 422 and field in r.get_json()["error"]["fields"], (body, r.get_json())

    assert me.delete(f"/aliases/{info['id']}").status_code == 204
    assert me.delete(f"/aliases/{info['id']}").status_code == 404
    assert [a["address"] for a in me.get("/aliases").get_json()["items"]] == ["sales@shop.example"]
    assert load(runtime, service.id).usage["aliases"] == 1


def test_list_actions_and_limit(me, runtime, service, sandbox_sim):
    r = me.post("/lists", {"local_part": "team", "members": ["A@one.example", "b@two.example", "a@one.example"]})
    assert r.status_code == 201, r.get_json()
    team = r.get_json()
    assert team["id"] and team["address"] == "team@shop.example"
    assert team["members"] == ["a@one.example", "b@two.example"]
    assert load(runtime, service.id).usage["distribution_lists"] == 1

    creates = sim_calls(sandbox_sim)["lists.create"]
    message = limit_error(me.post("/lists", {"local_part": "all", "members": []}), "distribution_lists")
    assert message == "You have used the 1 distribution list of your plan."
    assert sim_calls(sandbox_sim)["lists.create"] == creates

    assert me.get(f"/lists/{team['id']}").get_json() == team
    r = me.patch(f"/lists/{team['id']}", {"members": ["c@three.example"]})
    assert r.status_code == 200 and r.get_json()["members"] == ["c@three.example"]
    r = me.patch(f"/lists/{team['id']}", {"members": ["nope"]})
    assert r.status_code == 422 and "members" in r.get_json()["error"]["fields"]
    r = me.patch(f"/lists/{team['id']}", {"local_part": "other", "members": []})
    assert r.status_code == 422 and "local_part" in r.get_json()["error"]["fields"]
    assert me.get("/lists?q=three").get_json()["total"] == 1

    assert me.delete(f"/lists/{team['id']}").status_code == 204
    assert me.get(f"/lists/{team['id']}").status_code == 404
    assert me.get("/lists").get_json()["items"] == []
    assert load(runtime, service.id).usage["distribution_lists"] == 0


def test_a_plan_without_aliases_says_so(app, client, signer, worker, runtime):
    make_service(client, signer, worker, runtime, "702", "no-aliases.example",
                 options={**SANDBOX_OPTIONS, "Total Aliases": 0})
    me = sign_in(app, runtime, "702")
    message = limit_error(me.post("/aliases", {"local_part": "info", "target": "a@b.example"}), "aliases")
    assert message == "Your plan does not include aliases."


# --- suspension, upstream failures -----------------------------------------------------------------

def test_a_suspended_service_is_read_only(me, client, signer, worker, runtime, service):
    box = me.post("/mailboxes", {"local_part": "ada", "password": PASSWORD}).get_json()
    send_event(client, signer, worker, "service.suspend", service.id, service.domain,
               suspend_reason="Overdue on Payment")
    assert load(runtime, service.id).desired_status == "suspended"
    session = me.get("/session").get_json()
    assert session["status"] == "suspended" and session["suspend_reason"] == "Overdue on Payment"
    assert me.get("/mailboxes").get_json()["total"] == 1                # reads still work
    for r in (me.post("/mailboxes", {"local_part": "bob", "password": PASSWORD}),
              me.patch(f"/mailboxes/{box['id']}", {"name": "x"}),
              me.delete(f"/mailboxes/{box['id']}"),
              me.post("/aliases", {"local_part": "info", "target": "a@b.example"}),
              me.post("/lists", {"local_part": "team", "members": []})):
        assert r.status_code == 409, r.get_json()
        error = r.get_json()["error"]
        assert error["code"] == "service_suspended" and error["reason"] == "Overdue on Payment"
        assert "Overdue on Payment" in error["message"]
    send_event(client, signer, worker, "service.unsuspend", service.id, service.domain)
    assert me.post("/mailboxes", {"local_part": "bob", "password": PASSWORD}).status_code == 201


def test_an_upstream_failure_changes_nothing(me, runtime, service, sandbox_sim, monkeypatch):
    provider = runtime.provider("sandbox")

    def down(*_a, **_kw):
        raise Unavailable("sandbox: connection refused to 10.0.0.1", action="create_mailbox")

    monkeypatch.setattr(provider, "create_mailbox", down)
    usage_before = load(runtime, service.id).usage
    r = me.post("/mailboxes", {"local_part": "ada", "password": PASSWORD})
    assert r.status_code == 503
    error = r.get_json()["error"]
    assert error["code"] == "upstream_unavailable"
    assert error["message"].startswith("The e-mail platform is temporarily unavailable.")
    assert "10.0.0.1" not in r.get_data(as_text=True)
    assert load(runtime, service.id).usage == usage_before
    assert sim_state(sandbox_sim)[0]["mailboxes"] == []

    monkeypatch.undo()
    requests.post(f"{sandbox_sim.url}/_sim/faults", json={"error_rate": 1.0}, timeout=5).raise_for_status()
    r = me.get("/mailboxes")
    assert r.status_code in (502, 503) and r.get_json()["error"]["code"].startswith("upstream_")
    requests.post(f"{sandbox_sim.url}/_sim/faults", json={"error_rate": 0.0}, timeout=5).raise_for_status()
    assert me.get("/mailboxes").status_code == 200


def test_webmail_is_not_offered_without_sso(me):
    r = me.post("/webmail", {})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_supported"


# --- PolarisMail: Basic and Enhanced types, SSO, limits only we enforce ---------------------------------

POLARIS_OPTIONS = {"Total Mailboxes": 2, "Total Enhanced Mailboxes": 1, "Mailbox Quota (GB)": 5,
                   "Total Aliases": 1, "Total Distribution Lists": 1}


@pytest.fixture
def polaris_runtime(settings, sandbox_sim):
    with SimulatorServer(create_simulator_app("polarismail")) as polaris:
        env = dev_products_env({"sandbox": sandbox_sim.url, "polarismail": polaris.url})
        rt = Runtime(settings, catalog=load_catalog(settings.products_dir, environ=env))
        rt.polaris_url = polaris.url
        yield rt
        rt.close()


def test_polarismail_service(polaris_runtime, signer):
    from provisioner.worker import Worker
    runtime = polaris_runtime
    app = build_app(runtime)
    hooks = app.test_client()
    worker = Worker(runtime, concurrency=1, name="test-worker")
    make_service(hooks, signer, worker, runtime, "801", "polaris-shop.example", product_id="30",
                 options=POLARIS_OPTIONS)
    me = sign_in(app, runtime, "801")
    session = me.get("/session").get_json()
    assert session["capabilities"] == ["mailboxes", "aliases", "lists", "sso", "dns"]
    assert session["mailbox_types"] == ["basic", "enhanced"] and session["sso"] is True
    assert session["sign_ons"] == [{"target": "webmail", "label": "Webmail"},
                                   {"target": "control_panel", "label": "Mailbox control panel"}]

    r = me.post("/mailboxes", {"local_part": "ada", "password": PASSWORD, "type": "enhanced", "quota_gb": 5})
    assert r.status_code == 201, r.get_json()
    ada = r.get_json()
    assert ada["id"] == "ada" and ada["type"] == "enhanced" and ada["quota_gb"] == 5
    limit_error(me.post("/mailboxes", {"local_part": "eve", "password": PASSWORD, "type": "enhanced"}),
                "enhanced_mailboxes")
    limit_error(me.post("/mailboxes", {"local_part": "big", "password": PASSWORD, "quota_gb": 6}),
                "mailbox_quota_gb")
    assert me.post("/mailboxes", {"local_part": "bob", "password": PASSWORD}).status_code == 201
    limit_error(me.post("/mailboxes", {"local_part": "cat", "password": PASSWORD}), "mailboxes")
    assert [m["id"] for m in me.get("/mailboxes").get_json()["items"]] == ["ada", "bob"]

    r = me.patch("/mailboxes/bob", {"name": "Bob B.", "quota_gb": 4})
    assert r.status_code == 200 and r.get_json()["name"] == "Bob B." and r.get_json()["quota_gb"] == 4
    assert me.patch("/mailboxes/bob", {"enabled": False}).get_json()["enabled"] is False

    assert me.post("/aliases", {"local_part": "info", "target": "ada@polaris-shop.example"}).status_code == 201
    limit_error(me.post("/aliases", {"local_part": "sales", "target": "ada@polaris-shop.example"}), "aliases")
    r = me.post("/lists", {"local_part": "team", "members": ["ada@polaris-shop.example"]})
    assert r.status_code == 201 and r.get_json()["id"] == "team"
    limit_error(me.post("/lists", {"local_part": "all", "members": []}), "distribution_lists")

    r = me.post("/webmail", {"mailbox": "ada"})
    assert r.status_code == 200 and r.get_json()["url"].startswith(f"{runtime.polaris_url}/webmail/?otp=")
    r = me.post("/webmail", {"mailbox": "ada", "target": "control_panel"})
    assert r.status_code == 200 and r.get_json()["url"].startswith(f"{runtime.polaris_url}/processlogin.php?u=")
    r = me.post("/webmail", {"mailbox": "ada", "target": "root"})
    assert r.status_code == 422 and "target" in r.get_json()["error"]["fields"]
    assert me.post("/webmail", {"mailbox": "ada", "target": 3}).status_code == 422
    assert me.post("/webmail", {"mailbox": "nobody"}).status_code == 404

    assert me.delete("/mailboxes/bob").status_code == 204
    assert load(runtime, "801").usage["mailboxes"] == 1


# --- mailbox.org: plan tiers as mailbox types, no lists, no aliases ---------------------------------

MBO_OPTIONS = {"Light Mailboxes": 1, "Standard Mailboxes": 1, "Premium Mailboxes": 0, "Mailing Lists": 1,
               "Account Plan": "reseller"}


@pytest.fixture
def mbo_runtime(settings, sandbox_sim):
    with SimulatorServer(create_simulator_app("mailboxorg")) as mbo:
        env = dev_products_env({"sandbox": sandbox_sim.url, "mailboxorg": mbo.url})
        rt = Runtime(settings, catalog=load_catalog(settings.products_dir, environ=env))
        yield rt
        rt.close()


def test_mailboxorg_service(mbo_runtime, signer):
    from provisioner.worker import Worker
    runtime = mbo_runtime
    app = build_app(runtime)
    make_service(app.test_client(), signer, Worker(runtime, concurrency=1, name="w"), runtime, "811",
                 "mbo-shop.example", product_id="40", options=MBO_OPTIONS)
    me = sign_in(app, runtime, "811")
    session = me.get("/session").get_json()
    assert session["capabilities"] == ["mailboxes"]          # lists: only the account's own login
    assert session["mailbox_types"] == ["light", "standard"]          # the plan has no Premium ones

    r = me.post("/mailboxes", {"local_part": "ada", "password": PASSWORD, "type": "light"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["type"] == "light"
    message = limit_error(me.post("/mailboxes", {"local_part": "bob", "password": PASSWORD, "type": "light"}),
                          "light_mailboxes")
    assert message == "You have used the 1 Light mailbox of your plan."
    message = limit_error(me.post("/mailboxes", {"local_part": "bob", "password": PASSWORD, "type": "premium"}),
                          "premium_mailboxes")
    assert message == "Your plan does not include Premium mailboxes."
    assert me.post("/mailboxes", {"local_part": "bob", "password": PASSWORD, "type": "standard"}).status_code == 201
    r = me.post("/mailboxes", {"local_part": "cat", "password": PASSWORD, "type": "basic"})
    assert r.status_code == 422 and "type" in r.get_json()["error"]["fields"]

    for path, body in (("/lists", {"local_part": "team", "members": ["ada@mbo-shop.example"]}),
                       ("/aliases", {"local_part": "info", "target": "ada@mbo-shop.example"})):
        r = me.post(path, body)
        assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_supported"
    usage = load(runtime, "811").usage
    assert usage["light_mailboxes"] == 1 and usage["standard_mailboxes"] == 1
    assert "mailing_lists" not in usage and "distribution_lists" not in usage     # not readable by the reseller


@pytest.mark.parametrize("upstream, limits, expected", [
    ("qboxmail", {"qboxmail_product": "hosting", "mailboxes": 5}, ["mailboxes", "dns"]),
    ("qboxmail", {"qboxmail_product": "relay"}, ["relay"]),
    ("resellerclub", {"mailboxes": 3}, ["dns"]),
    ("sandbox", {}, ["mailboxes", "aliases", "lists"]),
])
def test_capabilities_follow_the_provider_and_product(runtime, upstream, limits, expected):
    from provisioner.client.service import capabilities, overview
    service = Service(id="x", upstream=upstream, limits=limits, domain="x.example", product_key="p",
                      billing_product_id="1", desired_status="active", usage={})
    assert capabilities(runtime, service) == expected          # no upstream call is made
    assert overview(runtime, service)["status"] == "pending"   # no upstream account yet


def test_concurrent_creates_cannot_both_take_the_last_slot(app, runtime, service, sandbox_sim):
    import threading
    # Lift the upstream's own limit, so only the provisioner's check stands in the way.
    requests.post(f"{sandbox_sim.url}/_sim/mutate", timeout=5, json={
        "account_id": service.upstream_id, "limits": {"mailboxes": 100, "mailbox_quota_gb": 10}}
    ).raise_for_status()
    # One session used from four tabs at once (a new sign-in would end the others).
    first = sign_in(app, runtime, service.id)
    customers = [first] + [_same_session(app, first) for _ in range(3)]
    customers[0].post("/mailboxes", {"local_part": "one", "password": PASSWORD})
    customers[0].post("/mailboxes", {"local_part": "two", "password": PASSWORD})
    provider = runtime.provider("sandbox")
    slow_create = provider.create_mailbox
    barrier = threading.Barrier(4)

    def create(customer, name, results):
        barrier.wait()
        results[name] = customer.post("/mailboxes", {"local_part": name, "password": PASSWORD}).status_code

    def slowly(*args, **kw):            # widen the window between the check and the create
        import time
        time.sleep(0.05)
        return slow_create(*args, **kw)

    provider.create_mailbox = slowly
    try:
        results: dict[str, int] = {}
        threads = [threading.Thread(target=create, args=(c, f"n{i}", results)) for i, c in enumerate(customers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        del provider.create_mailbox
    assert sorted(results.values()) == [201, 422, 422, 422], results
    assert len(sim_state(sandbox_sim)[0]["mailboxes"]) == 3


def test_an_alias_can_point_elsewhere(me, runtime, service, sandbox_sim):
    info = me.post("/aliases", {"local_part": "info", "target": "ada@elsewhere.example"}).get_json()
    r = me.patch(f"/aliases/{info['id']}", {"target": "Bob@Elsewhere.example"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["address"] == "info@shop.example" and r.get_json()["target"] == "bob@elsewhere.example"
    listed = me.get("/aliases").get_json()["items"]
    assert [(a["address"], a["target"]) for a in listed] == [("info@shop.example", "bob@elsewhere.example")]
    assert me.get(f"/aliases/{listed[0]['id']}").get_json()["target"] == "bob@elsewhere.example"
    for body in ({"target": "nope"}, {"target": "info@shop.example"}, {}):
        r = me.patch(f"/aliases/{listed[0]['id']}", body)
        assert r.status_code == 422 and "target" in r.get_json()["error"]["fields"], body
    assert me.patch("/aliases/unknown", {"target": "x@y.example"}).status_code == 404
