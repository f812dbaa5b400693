"""The sandbox simulator (docs/sandbox-api.md) and its /_sim/ control API."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from provisioner.simulators.sandbox import check_password, create_app
from provisioner.simulators.server import SimulatorServer

API = "/api/v1"
LIMITS = {"mailboxes": 2, "enhanced_mailboxes": 1, "mailbox_quota_gb": 10,
          "aliases": 1, "distribution_lists": 1}
HTTP_TIMEOUT = 5


class FakeClock:
    def __init__(self, now: float = 1_790_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app():
    return create_app(seed=1)


@pytest.fixture
def client(app):
    return app.test_client()


def create(client, external_id: str = "1042", domain: str = "example.com", **extra):
    body = {"external_id": external_id, "domain": domain, "limits": dict(LIMITS), **extra}
    return client.post(f"{API}/accounts", json=body)


def created(client, **kwargs) -> dict:
    r = create(client, **kwargs)
    assert r.status_code == 201, r.json
    return r.json


def assert_error(r, status: int, code: str, mentions: str | None = None):
    assert r.status_code == status, (r.status_code, r.data)
    assert r.json["error"]["code"] == code
    if mentions:
        assert mentions in r.json["error"]["message"]


# --- accounts -------------------------------------------------------------

def test_ping(client):
    assert client.get(f"{API}/ping").json == {"ok": True}


def test_account_lifecycle(client):
    acc = created(client, paid_until="2026-12-21",
                  owner={"email": "a@example.com", "name": "A B", "company": ""})
    assert acc["id"] == "acc_0001" and acc["status"] == "active"
    assert acc["limits"] == LIMITS and acc["paid_until"] == "2026-12-21"
    assert acc["usage"] == {"mailboxes": 0, "enhanced_mailboxes": 0, "aliases": 0,
                            "distribution_lists": 0, "storage_mb": 0}
    url = f"{API}/accounts/{acc['id']}"
    assert client.get(url).json == acc

    r = client.patch(url, json={"limits": {"mailboxes": 5}})
    assert r.status_code == 200 and r.json["limits"] == {**LIMITS, "mailboxes": 5}

    r = client.post(f"{url}/suspend", json={"reason": "Overdue on Payment"})
    assert r.json["status"] == "suspended" and r.json["suspend_reason"] == "Overdue on Payment"
    r = client.post(f"{url}/suspend", json={"reason": "other"})
    assert r.status_code == 200 and r.json["suspend_reason"] == "Overdue on Payment"
    r = client.post(f"{url}/unsuspend")
    assert r.json["status"] == "active" and r.json["suspend_reason"] is None
    assert client.post(f"{url}/unsuspend").json["status"] == "active"

    assert client.delete(url).status_code == 204
    assert client.get(url).json["status"] == "deleted"
    assert_error(client.delete(url), 404, "not_found")
    assert_error(client.patch(url, json={"paid_until": "2027-01-01"}), 409, "conflict")
    assert_error(client.get(f"{API}/accounts/acc_9999"), 404, "not_found")


def test_renew_never_moves_paid_until_backwards(client):
    url = f"{API}/accounts/{created(client, paid_until='2026-12-21')['id']}"
    assert client.post(f"{url}/renew", json={"paid_until": "2027-12-21"}).json["paid_until"] == "2027-12-21"
    assert client.post(f"{url}/renew", json={"paid_until": "2027-01-01"}).json["paid_until"] == "2027-12-21"
    assert_error(client.post(f"{url}/renew", json={}), 400, "invalid_request", "paid_until")


def test_second_live_account_for_an_external_id_is_409(client):
    first = created(client)
    assert_error(create(client, domain="other.com"), 409, "conflict", first["id"])
    client.delete(f"{API}/accounts/{first['id']}")
    assert created(client)["id"] == "acc_0002"


@pytest.mark.parametrize("change, field", [
    ({"domain": None}, "domain"),
    ({"domain": "not a domain"}, "domain"),
    ({"external_id": 1042}, "external_id"),
    ({"limits": {"mailboxes": -1}}, "limits.mailboxes"),
    ({"limits": {"seats": 3}}, "limits.seats"),
    ({"limits": "many"}, "limits"),
    ({"paid_until": "21.12.2026"}, "paid_until"),
    ({"owner": {"phone": "1"}}, "owner.phone"),
    ({"colour": "red"}, "colour"),
])
def test_create_validation_is_400_naming_the_field(client, change, field):
    body = {"external_id": "1", "domain": "example.com", "limits": {}, **change}
    r = client.post(f"{API}/accounts", json=body)
    assert_error(r, 400, "invalid_request", field)
    assert client.get("/_sim/state").json == {"accounts": []}


def test_body_must_be_json(client):
    r = client.post(f"{API}/accounts", data="{", content_type="application/json")
    assert_error(r, 400, "invalid_request", "body")


def test_paging_and_filters(client):
    for i in range(5):
        created(client, external_id=str(i), domain=f"d{i}.com")
    client.post(f"{API}/accounts/acc_0002/suspend", json={})
    r = client.get(f"{API}/accounts?page=3&per_page=2").json
    assert [a["id"] for a in r["data"]] == ["acc_0005"]
    assert (r["page"], r["per_page"], r["total"]) == (3, 2, 5)
    assert client.get(f"{API}/accounts").json["per_page"] == 100
    assert [a["id"] for a in client.get(f"{API}/accounts?status=suspended").json["data"]] == ["acc_0002"]
    assert client.get(f"{API}/accounts?external_id=3").json["data"][0]["domain"] == "d3.com"
    assert client.get(f"{API}/accounts?domain=D4.com").json["total"] == 1
    assert_error(client.get(f"{API}/accounts?per_page=501"), 400, "invalid_request", "per_page")
    assert_error(client.get(f"{API}/accounts?page=x"), 400, "invalid_request", "page")


def test_activation_delay_is_evaluated_lazily():
    clock = FakeClock()
    c = create_app(activation_delay=30, clock=clock).test_client()
    acc = created(c)
    assert acc["status"] == "pending"
    boxes = f"{API}/accounts/{acc['id']}/mailboxes"
    assert_error(c.post(boxes, json={"local_part": "info", "password": "pw"}), 409, "conflict", "pending")
    clock.now += 29
    assert c.get(f"{API}/accounts/{acc['id']}").json["status"] == "pending"
    clock.now += 1
    assert c.get(f"{API}/accounts?status=active").json["total"] == 1
    assert c.post(boxes, json={"local_part": "info", "password": "pw"}).status_code == 201


# --- mailboxes, aliases, lists -----------------------------------------------

def test_mailboxes_limits_and_usage(client):
    acc = created(client)
    boxes = f"{API}/accounts/{acc['id']}/mailboxes"
    r = client.post(boxes, json={"local_part": "Info", "password": "s3cret", "name": "Info"})
    assert r.status_code == 201
    box = r.json
    assert box == {"id": "mbx_0001", "address": "info@example.com", "name": "Info",
                   "quota_gb": 10, "type": "basic", "enabled": True, "used_mb": 0}
    assert_error(client.post(boxes, json={"local_part": "info", "password": "x"}), 409, "conflict")
    assert_error(client.post(boxes, json={"local_part": "big", "password": "x", "quota_gb": 11}),
                 422, "limit_exceeded", "mailbox_quota_gb")
    assert client.post(boxes, json={"local_part": "boss", "password": "x", "type": "enhanced"}).status_code == 201
    assert_error(client.post(boxes, json={"local_part": "third", "password": "x"}),
                 422, "limit_exceeded", "limits.mailboxes")
    assert_error(client.patch(f"{boxes}/{box['id']}", json={"type": "enhanced"}),
                 422, "limit_exceeded", "limits.enhanced_mailboxes")
    r = client.patch(f"{boxes}/{box['id']}", json={"enabled": False, "quota_gb": 5, "password": "new"})
    assert r.json["enabled"] is False and r.json["quota_gb"] == 5
    assert_error(client.patch(f"{boxes}/{box['id']}", json={"enabled": "no"}), 400, "invalid_request", "enabled")
    assert [m["address"] for m in client.get(boxes).json["data"]] == ["info@example.com", "boss@example.com"]

    client.post("/_sim/mutate", json={"account_id": acc["id"], "used_mb": {"mbx_0001": 300, "boss@example.com": 12}})
    usage = client.get(f"{API}/accounts/{acc['id']}").json["usage"]
    assert usage == {"mailboxes": 2, "enhanced_mailboxes": 1, "aliases": 0,
                     "distribution_lists": 0, "storage_mb": 312}

    assert client.delete(f"{boxes}/{box['id']}").status_code == 204
    assert_error(client.delete(f"{boxes}/{box['id']}"), 404, "not_found")
    assert client.get(f"{API}/accounts/{acc['id']}").json["usage"]["mailboxes"] == 1


def test_enhanced_mailbox_limit_on_create(client):
    acc = created(client)
    boxes = f"{API}/accounts/{acc['id']}/mailboxes"
    assert client.post(boxes, json={"local_part": "a", "password": "x", "type": "enhanced"}).status_code == 201
    assert_error(client.post(boxes, json={"local_part": "b", "password": "x", "type": "enhanced"}),
                 422, "limit_exceeded", "limits.enhanced_mailboxes")
    assert_error(client.post(boxes, json={"local_part": "c", "password": "x", "type": "premium"}),
                 400, "invalid_request", "type")


def test_aliases_and_lists(client):
    acc = created(client)
    base = f"{API}/accounts/{acc['id']}"
    r = client.post(f"{base}/aliases", json={"local_part": "sales", "target": "info@example.com"})
    assert r.status_code == 201 and r.json == {"id": "als_0001", "address": "sales@example.com",
                                               "target": "info@example.com"}
    assert_error(client.post(f"{base}/aliases", json={"local_part": "more", "target": "a@b.com"}),
                 422, "limit_exceeded", "limits.aliases")
    assert_error(client.post(f"{base}/lists", json={"local_part": "sales", "members": []}), 409, "conflict")
    r = client.post(f"{base}/lists", json={"local_part": "team", "members": ["a@b.com"]})
    assert r.status_code == 201
    lst = r.json
    assert_error(client.post(f"{base}/lists", json={"local_part": "x", "members": []}),
                 422, "limit_exceeded", "limits.distribution_lists")
    r = client.patch(f"{base}/lists/{lst['id']}", json={"members": ["c@d.com", "e@f.com"]})
    assert r.json["members"] == ["c@d.com", "e@f.com"]
    assert_error(client.patch(f"{base}/lists/{lst['id']}", json={"members": ["nope"]}),
                 400, "invalid_request", "members[0]")
    usage = client.get(base).json["usage"]
    assert (usage["aliases"], usage["distribution_lists"]) == (1, 1)
    assert client.delete(f"{base}/aliases/als_0001").status_code == 204
    assert client.delete(f"{base}/lists/{lst['id']}").status_code == 204
    assert client.get(f"{base}/aliases").json["data"] == []


def test_children_of_a_suspended_account_are_read_only(client):
    acc = created(client)
    base = f"{API}/accounts/{acc['id']}"
    client.post(f"{base}/suspend", json={"reason": "x"})
    assert_error(client.post(f"{base}/aliases", json={"local_part": "a", "target": "a@b.com"}),
                 409, "conflict", "suspended")
    assert client.get(f"{base}/aliases").status_code == 200


def test_passwords_are_hashed_and_never_returned(app, client):
    acc = created(client, password="account-secret")
    client.post(f"{API}/accounts/{acc['id']}/mailboxes", json={"local_part": "a", "password": "box-secret"})
    answers = [client.get(f"{API}/accounts/{acc['id']}").data, client.get(f"{API}/accounts").data,
               client.get(f"{API}/accounts/{acc['id']}/mailboxes").data, client.get("/_sim/state").data]
    for body in answers:
        assert b"secret" not in body and b"password" not in body
    stored = app.extensions["simulator"].accounts[acc["id"]]
    assert stored.password_hash != "account-secret"
    assert check_password(stored.password_hash, "account-secret")
    assert not check_password(stored.password_hash, "wrong")
    client.patch(f"{API}/accounts/{acc['id']}", json={"password": "changed"})
    assert check_password(stored.password_hash, "changed")


# --- authentication ---------------------------------------------------------

def test_api_key_is_required_when_configured():
    c = create_app(api_key="k3y").test_client()
    assert_error(c.get(f"{API}/ping"), 401, "unauthorized")
    assert_error(c.get(f"{API}/ping", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    assert c.get(f"{API}/ping", headers={"Authorization": "Bearer k3y"}).json == {"ok": True}
    assert c.get("/_sim/state").status_code == 200
    assert c.get("/_sim/calls").json["calls"] == {"ping": 3}


# --- control API -------------------------------------------------------------

def test_state_is_normalised(client):
    acc = created(client)
    client.post(f"{API}/accounts/{acc['id']}/aliases", json={"local_part": "a", "target": "x@y.com"})
    [entry] = client.get("/_sim/state").json["accounts"]
    assert {k: entry[k] for k in ("id", "domain", "status", "limits")} == {
        "id": acc["id"], "domain": "example.com", "status": "active", "limits": LIMITS}
    assert entry["mailboxes"] == [] and entry["lists"] == []
    assert entry["aliases"][0]["address"] == "a@example.com"
    assert entry["native"]["external_id"] == "1042"


def test_calls_are_counted_per_action_including_faulted_ones(client):
    acc = created(client)
    client.get(f"{API}/accounts/{acc['id']}")
    client.get(f"{API}/accounts")
    client.post(f"{API}/accounts/{acc['id']}/mailboxes", json={"local_part": "a", "password": "x"})
    client.post("/_sim/faults", json={"error_rate": 1})
    client.post(f"{API}/accounts/{acc['id']}/suspend", json={})
    client.get("/nowhere")
    assert client.get("/_sim/calls").json == {
        "calls": {"accounts.create": 1, "accounts.get": 1, "accounts.list": 1,
                  "mailboxes.create": 1, "accounts.suspend": 1, "unknown": 1},
        "total": 6}


def test_mutate_changes_status_and_limits_behind_the_clients_back(client):
    acc = created(client)
    r = client.post("/_sim/mutate", json={"account_id": acc["id"], "status": "suspended",
                                          "limits": {"mailboxes": 9}})
    assert r.status_code == 200
    assert r.json["account"]["status"] == "suspended"
    got = client.get(f"{API}/accounts/{acc['id']}").json
    assert got["status"] == "suspended" and got["limits"]["mailboxes"] == 9
    assert got["limits"]["aliases"] == LIMITS["aliases"]
    r = client.post("/_sim/mutate", json={"account_id": "acc_9999", "status": "active"})
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    r = client.post("/_sim/mutate", json={"account_id": acc["id"], "limits": {"mailboxes": "x"}})
    assert r.status_code == 400 and "limits.mailboxes" in r.json["error"]["fields"]
    assert client.get(f"{API}/accounts/{acc['id']}").json["limits"]["mailboxes"] == 9


def test_reset_clears_state_calls_and_faults(client):
    created(client)
    client.post("/_sim/faults", json={"malformed_rate": 0.5})
    assert client.post("/_sim/reset").status_code == 200
    assert client.get("/_sim/state").json == {"accounts": []}
    assert client.get("/_sim/calls").json == {"calls": {}, "total": 0}
    assert client.get("/_sim/faults").json["faults"]["malformed_rate"] == 0
    assert created(client)["id"] == "acc_0001"


# --- faults -------------------------------------------------------------------

def test_error_fault_answers_500_in_the_sandbox_shape_without_processing(client):
    client.post("/_sim/faults", json={"error_rate": 1.0})
    assert_error(create(client), 500, "internal_error")
    client.post("/_sim/faults", json={"error_rate": 0})
    assert client.get("/_sim/state").json == {"accounts": []}


def test_malformed_fault_returns_unparseable_200_without_processing(client):
    client.post("/_sim/faults", json={"malformed_rate": 1})
    r = create(client)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        json.loads(r.data)
    assert client.get("/_sim/state").json == {"accounts": []}


def test_rate_limit_answers_429_with_retry_after(client):
    client.post("/_sim/faults", json={"rate_limit_per_s": 2})
    statuses = [client.get(f"{API}/ping").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    r = client.get(f"{API}/ping")
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1
    client.post("/_sim/faults", json={"rate_limit_per_s": 0})
    assert client.get(f"{API}/ping").status_code == 200


def test_latency_delays_the_answer(client):
    client.post("/_sim/faults", json={"latency_ms": 60})
    started = time.monotonic()
    assert client.get(f"{API}/ping").status_code == 200
    assert time.monotonic() - started >= 0.06


def test_faults_validation(client):
    r = client.post("/_sim/faults", json={"error_rate": 2})
    assert r.status_code == 400 and "error_rate" in r.json["error"]["fields"]
    r = client.post("/_sim/faults", json={"latency": 5})
    assert r.status_code == 400 and "latency" in r.json["error"]["fields"]


# --- over real HTTP -------------------------------------------------------------

@pytest.fixture
def server():
    with SimulatorServer(create_app(api_key="k")) as srv:
        yield srv


def test_server_serves_the_api_on_a_real_port(server):
    assert server.url.startswith("http://127.0.0.1:") and server.port > 0
    auth = {"Authorization": "Bearer k"}
    r = requests.post(f"{server.url}{API}/accounts", headers=auth, timeout=HTTP_TIMEOUT,
                      json={"external_id": "7", "domain": "real.example", "limits": {}})
    assert r.status_code == 201
    r = requests.get(f"{server.url}{API}/accounts/{r.json()['id']}", headers=auth, timeout=HTTP_TIMEOUT)
    assert r.json()["domain"] == "real.example"
    r = requests.get(f"{server.url}{API}/accounts", timeout=HTTP_TIMEOUT)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_timeout_fault_applies_the_change_but_the_answer_is_lost(server):
    ok = requests.post(f"{server.url}/_sim/faults", json={"timeout_rate": 1, "timeout_s": 0.6},
                       timeout=HTTP_TIMEOUT)
    assert ok.status_code == 200
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{server.url}{API}/accounts", headers={"Authorization": "Bearer k"},
                      json={"external_id": "8", "domain": "lost.example", "limits": {}}, timeout=0.2)
    state = requests.get(f"{server.url}/_sim/state", timeout=HTTP_TIMEOUT).json()
    assert [(a["domain"], a["status"]) for a in state["accounts"]] == [("lost.example", "active")]
    assert requests.get(f"{server.url}/_sim/calls", timeout=HTTP_TIMEOUT).json()["calls"] == {"accounts.create": 1}


def test_concurrent_creates_for_one_external_id_make_one_account(server):
    def post(i: int) -> int:
        return requests.post(f"{server.url}{API}/accounts", headers={"Authorization": "Bearer k"},
                             json={"external_id": "same", "domain": f"d{i}.example", "limits": {}},
                             timeout=HTTP_TIMEOUT).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(post, range(8)))
    assert statuses == [201] + [409] * 7
    assert len(requests.get(f"{server.url}/_sim/state", timeout=HTTP_TIMEOUT).json()["accounts"]) == 1


def test_server_stop_releases_the_port():
    srv = SimulatorServer(create_app()).start()
    url = srv.url
    assert requests.get(f"{url}{API}/ping", timeout=HTTP_TIMEOUT).json() == {"ok": True}
    srv.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}{API}/ping", timeout=1)


# --- /_sim/seed: accounts at scale for benchmarks ----------------------------------------------

def test_seeded_accounts_are_listed_in_pages_after_created_ones(client):
    made = created(client, external_id="1", domain="first.example")
    r = client.post("/_sim/seed", json={"count": 7, "first": 10, "id": "bulk_{n}", "external_id": "svc{n}",
                                        "domain": "svc-{n}.example.com", "limits": {"mailboxes": 3}})
    assert r.status_code == 201 and r.get_json() == {"created": 7, "total": 8}
    pages = [client.get(f"/api/v1/accounts?per_page=3&page={n}").get_json() for n in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [8, 8, 8, 8]
    ids = [a["id"] for p in pages for a in p["data"]]
    assert ids == [made["id"]] + [f"bulk_{n}" for n in range(10, 17)]
    assert pages[3]["data"] == []
    bulk = pages[1]["data"][0]
    assert (bulk["external_id"], bulk["domain"], bulk["status"], bulk["limits"]["mailboxes"]) == (
        "svc12", "svc-12.example.com", "active", 3)
    # Filtered listings still see seeded accounts.
    found = client.get("/api/v1/accounts?external_id=svc15").get_json()
    assert found["total"] == 1 and found["data"][0]["id"] == "bulk_15"
    assert client.get("/api/v1/accounts/bulk_16").get_json()["domain"] == "svc-16.example.com"


@pytest.mark.parametrize("body, field", [
    ({"count": 0}, "count"), ({"count": True}, "count"), ({"count": 2_000_001}, "count"),
    ({"count": 1, "first": -1}, "first"), ({"count": 1, "id": "same"}, "id"),
    ({"count": 1, "domain": "not a domain {n}"}, "domain"), ({"count": 1, "limits": {"mailboxes": "x"}}, "limits"),
    ({"count": 1, "colour": "red"}, "colour"),
])
def test_a_bad_seed_is_400_naming_the_field_and_makes_nothing(client, body, field):
    r = client.post("/_sim/seed", json=body)
    assert r.status_code == 400 and field in r.get_json()["error"]["fields"], r.get_json()
    assert client.get("/api/v1/accounts").get_json()["total"] == 0


def test_seeding_an_id_that_exists_makes_nothing(client):
    assert client.post("/_sim/seed", json={"count": 3}).status_code == 201
    r = client.post("/_sim/seed", json={"count": 5, "first": 2})
    assert r.status_code == 400 and "seed_2 exists already" in r.get_json()["error"]["message"]
    assert client.get("/api/v1/accounts").get_json()["total"] == 3
