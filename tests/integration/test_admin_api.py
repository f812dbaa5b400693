"""The admin API (contract section 3) through Flask's test client on a real SQLite file."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from sqlalchemy import select

from provisioner import apikeys
from provisioner.config import Settings
from provisioner.db import utcnow
from provisioner.devsetup import new_webhook_secret
from provisioner.models import ApiKey, Event, Job, JobAttempt, JobState, Service
from provisioner.products import load_catalog
from provisioner.runtime import Runtime
from provisioner.secrets import new_fernet_key
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer

SIM_KEY = "sim-key-0123456789"
T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc)

PRODUCT = """\
id: business-mail
billing_product_ids: ["12", "13"]
upstream: sandbox
limits:
  mailboxes:        {option: "Total Mailboxes", default: 1, min: 0, max: 10000}
  mailbox_quota_gb: {value: 10}
lifecycle:
  downgrade: allow
"""


@pytest.fixture
def simulator():
    with SimulatorServer(create_simulator_app("sandbox", api_key=SIM_KEY)) as server:
        yield server


@pytest.fixture
def runtime(tmp_path, simulator, database_url):
    # database_url (tests/conftest.py): a migrated SQLite file in tmp_path, or the
    # PostgreSQL database of PROVISIONER_TEST_DATABASE_URL, emptied.
    configs = tmp_path / "product_configs"
    configs.mkdir()
    (configs / "upstreams.yaml").write_text(
        f"sandbox:\n  provider: sandbox\n  base_url: {simulator.url}\n  api_key: ${{SANDBOX_KEY}}\n"
        f"wrong-key:\n  provider: sandbox\n  base_url: {simulator.url}\n  api_key: ${{WRONG_KEY}}\n")
    (configs / "business-mail.yaml").write_text(PRODUCT)
    catalog = load_catalog(configs, environ={"SANDBOX_KEY": SIM_KEY, "WRONG_KEY": "not-the-key"})
    settings = Settings.from_env({"PROVISIONER_INSTANCE_DIR": str(tmp_path)}, dev=True,
                                 database_url=database_url, secret_key="test-secret-key",
                                 encryption_key=new_fernet_key(),
                                 webhook_secrets=[new_webhook_secret()],
                                 instance_dir=str(tmp_path))
    rt = Runtime(settings, catalog=catalog)
    yield rt
    rt.close()


@pytest.fixture
def app(runtime):
    from provisioner import create_app
    app = create_app(runtime=runtime)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def _key(runtime, scope: str) -> str:
    with runtime.db.transaction() as session:
        return apikeys.create_api_key(session, f"test-{scope}", scope)[1]


@pytest.fixture
def admin_key(runtime):
    return _key(runtime, "admin")


@pytest.fixture
def read_key(runtime):
    return _key(runtime, "read")


@pytest.fixture
def get(client, admin_key):
    def _get(path, key=None, **kw):
        return client.get(path, headers={"Authorization": f"Bearer {key or admin_key}"}, **kw)
    return _get


def add_service(session, sid: str, *, minutes: int = 0, **kw) -> Service:
    values = dict(id=sid, billing_product_id="12", product_key="business-mail", upstream="sandbox",
                  domain=f"d{sid}.example", client_id="77", client={"id": "77", "email": "a@example.com"},
                  desired_status="active", limits={"mailboxes": 5}, config_options={}, custom_fields={},
                  observed={}, usage={}, created_at=T0 + dt.timedelta(minutes=minutes))
    values.update(kw)
    service = Service(**values)
    session.add(service)
    session.flush()
    return service


def add_event(session, service_id: str, *, minutes: int = 0, type_: str = "service.create",
              outcome: str = "applied", payload: dict | None = None) -> Event:
    event = Event(webhook_id=f"msg_{service_id}_{type_}_{minutes}", body_digest="0" * 64, type=type_,
                  service_id=service_id, occurred_at=T0 + dt.timedelta(minutes=minutes),
                  received_at=T0 + dt.timedelta(minutes=minutes),
                  payload=payload or {"type": type_, "service": {"id": service_id}}, outcome=outcome)
    session.add(event)
    session.flush()
    return event


def add_job(session, service_id: str, *, state: str = JobState.SUCCEEDED, minutes: int = 0,
            event_id: str | None = None, attempts: int = 0, error: tuple[str, str] | None = None) -> Job:
    created = T0 + dt.timedelta(minutes=minutes)
    job = Job(service_id=service_id, event_id=event_id, reason="service.create", state=state,
              attempts=attempts, max_attempts=3, run_after=created, created_at=created,
              error_code=error[0] if error else None, error_message=error[1] if error else None)
    session.add(job)
    session.flush()
    for number in range(1, attempts + 1):
        session.add(JobAttempt(job_id=job.id, number=number, worker="w1", started_at=created,
                               finished_at=created + dt.timedelta(seconds=1),
                               outcome="failed" if error else "succeeded",
                               error_code=error[0] if error else None,
                               error_message=error[1] if error else None,
                               detail="sandbox create: HTTP 503" if error else None))
    session.flush()
    return job


def ids(response) -> list[str]:
    return [item["id"] for item in response.get_json()["items"]]


# --- authentication --------------------------------------------------------------------------

@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-key", "Basic dXNlcjpwYXNz"])
def test_missing_or_bad_key_is_401(client, header):
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/v1/services", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_401(client, runtime, admin_key):
    with runtime.db.transaction() as session:
        session.execute(select(ApiKey)).scalar_one().revoked_at = utcnow()
    response = client.get("/api/v1/services", headers={"Authorization": f"Bearer {admin_key}"})
    assert response.status_code == 401


def test_read_scope_may_only_get(client, runtime, get, read_key):
    with runtime.db.transaction() as session:
        add_service(session, "1")
        job = add_job(session, "1", state=JobState.FAILED, attempts=1, error=("upstream_unavailable", "Busy."))
    assert get("/api/v1/services", key=read_key).status_code == 200
    response = client.post(f"/api/v1/jobs/{job.id}/retry", headers={"Authorization": f"Bearer {read_key}"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    with runtime.db.read() as session:
        assert session.get(Job, job.id).state == JobState.FAILED


def test_last_used_at_is_written_at_most_once_a_minute(runtime, get, admin_key):
    def last_used():
        with runtime.db.read() as session:
            return session.execute(select(ApiKey.last_used_at)).scalar_one()

    assert last_used() is None
    get("/api/v1/jobs")
    first = last_used()
    assert first is not None
    get("/api/v1/jobs")
    assert last_used() == first
    with runtime.db.transaction() as session:
        session.execute(select(ApiKey)).scalar_one().last_used_at = first - dt.timedelta(minutes=2)
    get("/api/v1/jobs")
    assert last_used() >= first


# --- pagination ------------------------------------------------------------------------------

def test_pagination_envelope(runtime, get):
    with runtime.db.transaction() as session:
        for n in range(7):
            add_service(session, str(100 + n), minutes=n)
    pages = [get(f"/api/v1/services?per_page=3&page={p}").get_json() for p in (1, 2, 3, 4)]
    assert [len(p["items"]) for p in pages] == [3, 3, 1, 0]
    assert all(p["total"] == 7 and p["per_page"] == 3 for p in pages)
    assert [p["page"] for p in pages] == [1, 2, 3, 4]
    seen = [item["id"] for p in pages for item in p["items"]]
    assert seen == [str(100 + n) for n in range(7)]           # oldest first, no overlap

    body = get("/api/v1/services").get_json()
    assert (body["page"], body["per_page"], body["total"]) == (1, 50, 7)


@pytest.mark.parametrize("query, field", [
    ("per_page=501", "per_page"), ("per_page=0", "per_page"), ("page=0", "page"),
    ("page=abc", "page"), ("per_page=1.5", "per_page"), ("colour=red", "colour"),
])
def test_bad_query_values_are_400_naming_the_parameter(get, query, field):
    for path in ("/api/v1/services", "/api/v1/jobs", "/api/v1/events", "/api/v1/products"):
        response = get(f"{path}?{query}")
        assert response.status_code == 400, path
        error = response.get_json()["error"]
        assert error["code"] == "invalid_query"
        assert list(error["fields"]) == [field]


def test_per_page_500_is_allowed(get):
    assert get("/api/v1/services?per_page=500").status_code == 200


# --- services --------------------------------------------------------------------------------

@pytest.fixture
def services(runtime):
    with runtime.db.transaction() as session:
        add_service(session, "1", minutes=1, domain="alpha.example", next_due_date=dt.date(2026, 12, 1),
                    observed_status="active")
        add_service(session, "2", minutes=2, desired_status="suspended", client_id="88",
                    next_due_date=dt.date(2026, 12, 15), observed_status="suspended")
        add_service(session, "3", minutes=3, desired_status="terminated", billing_product_id="13",
                    next_due_date=dt.date(2027, 1, 1), observed_status="deleted")
        add_service(session, "4", minutes=4, next_due_date=None)


@pytest.mark.parametrize("query, expected", [
    ("domain=alpha.example", ["1"]),
    ("domain=ALPHA.Example", ["1"]),
    ("domain=nope.example", []),
    ("status=active", ["1", "4"]),
    ("status=suspended", ["2"]),
    ("status=suspended,terminated", ["2", "3"]),
    ("status=suspended&status=terminated", ["2", "3"]),
    ("observed_status=deleted", ["3"]),
    ("client_id=88", ["2"]),
    ("product_id=13", ["3"]),
    ("product_id=12", ["1", "2", "4"]),
    ("upstream=sandbox", ["1", "2", "3", "4"]),
    ("expires_before=2026-12-15", ["1"]),
    ("expires_after=2026-12-01", ["2", "3"]),
    ("expires_after=2026-11-30&expires_before=2026-12-31", ["1", "2"]),
    ("status=active&product_id=12&client_id=77", ["1", "4"]),
])
def test_service_filters(get, services, query, expected):
    response = get(f"/api/v1/services?{query}")
    assert response.status_code == 200, response.get_json()
    assert ids(response) == expected
    assert response.get_json()["total"] == len(expected)


@pytest.mark.parametrize("query, field", [
    ("status=deleted", "status"), ("observed_status=gone", "observed_status"),
    ("expires_before=tomorrow", "expires_before"), ("expires_after=2026-13-01", "expires_after"),
    ("domain=", "domain"),
])
def test_bad_service_filters_are_400(get, services, query, field):
    response = get(f"/api/v1/services?{query}")
    assert response.status_code == 400
    assert field in response.get_json()["error"]["fields"]


def test_service_list_item(get, services):
    item = get("/api/v1/services?domain=alpha.example").get_json()["items"][0]
    assert item["desired"] == {"status": "active", "suspend_reason": None, "limits": {"mailboxes": 5},
                               "next_due_date": "2026-12-01", "billing_cycle": None,
                               "auto_suspend": {"enabled": True, "until": None},
                               "product": {"id": "business-mail", "billing_product_id": "12"}}
    assert item["observed"]["status"] == "active"
    assert item["upstream"] == {"name": "sandbox", "upstream_id": None}
    assert item["password_pending"] is False
    assert "events" not in item and "pending_password" not in item


def test_service_detail(runtime, get):
    token = runtime.box.encrypt("S3cret-Passw0rd")
    with runtime.db.transaction() as session:
        add_service(session, "1042", domain="example.com", pending_password=token, upstream_id="acc_0001",
                    observed_status="active", observed={"limits": {"mailboxes": 5}},
                    usage={"mailboxes": 2}, suspend_reason=None, billing_cycle="monthly",
                    next_due_date=dt.date(2026, 12, 21), converged_at=T0)
        for n in range(25):
            event = add_event(session, "1042", minutes=n, type_="service.renew")
            add_job(session, "1042", minutes=n, event_id=event.id, attempts=1)
        failed = add_job(session, "1042", minutes=30, state=JobState.FAILED, attempts=2,
                         error=("upstream_unavailable", "The e-mail platform is busy."))
    response = get("/api/v1/services/1042")
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == "1042" and body["domain"] == "example.com"
    assert body["desired"]["status"] == "active"
    assert body["desired"]["billing_cycle"] == "monthly"
    assert body["desired"]["next_due_date"] == "2026-12-21"
    assert body["desired"]["limits"] == {"mailboxes": 5}
    assert body["observed"] == {"status": "active", "observed": {"limits": {"mailboxes": 5}},
                                "converged_at": T0.isoformat()}
    assert body["usage"] == {"mailboxes": 2}
    assert body["upstream"] == {"name": "sandbox", "upstream_id": "acc_0001"}
    assert body["password_pending"] is True
    assert token not in response.get_data(as_text=True)
    assert "S3cret" not in response.get_data(as_text=True)
    assert body["client"]["id"] == "77"

    assert len(body["events"]) == 20
    assert body["events"][0]["occurred_at"] == (T0 + dt.timedelta(minutes=24)).isoformat()   # newest first
    assert all(e["job_id"] for e in body["events"])
    assert len(body["jobs"]) == 20
    latest = body["jobs"][0]
    assert latest["id"] == failed.id and latest["state"] == "failed"
    assert latest["error"] == {"code": "upstream_unavailable", "message": "The e-mail platform is busy."}
    assert [a["number"] for a in latest["attempt_log"]] == [1, 2]
    attempt = latest["attempt_log"][0]
    assert attempt["worker"] == "w1" and attempt["outcome"] == "failed"
    assert attempt["error"]["code"] == "upstream_unavailable"
    assert attempt["detail"] == "sandbox create: HTTP 503"


def test_unknown_service_is_404(get):
    response = get("/api/v1/services/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "service_not_found"


# --- jobs ----------------------------------------------------------------------------------------

@pytest.fixture
def jobs(runtime):
    with runtime.db.transaction() as session:
        add_service(session, "1")
        add_service(session, "2")
        made = {
            "ok": add_job(session, "1", minutes=1, attempts=1),
            "failed": add_job(session, "1", minutes=2, state=JobState.FAILED, attempts=3,
                              error=("upstream_auth", "The e-mail platform refused our credentials.")),
            "queued": add_job(session, "2", minutes=3, state=JobState.QUEUED),
        }
    return {name: job.id for name, job in made.items()}


@pytest.mark.parametrize("query, expected", [
    ("", ["queued", "failed", "ok"]),                 # newest first
    ("state=failed", ["failed"]),
    ("state=queued,succeeded", ["queued", "ok"]),
    ("service_id=1", ["failed", "ok"]),
    ("service_id=2&state=failed", []),
])
def test_job_filters(get, jobs, query, expected):
    response = get(f"/api/v1/jobs?{query}")
    assert response.status_code == 200
    assert ids(response) == [jobs[name] for name in expected]


def test_bad_job_state_is_400(get, jobs):
    response = get("/api/v1/jobs?state=done")
    assert response.status_code == 400
    assert "state" in response.get_json()["error"]["fields"]


def test_job_detail(get, jobs):
    body = get(f"/api/v1/jobs/{jobs['failed']}").get_json()
    # The keys a hook's answer has (its Location points here) ...
    assert {k: body[k] for k in ("id", "state", "attempts", "error")} == {
        "id": jobs["failed"], "state": "failed", "attempts": 3,
        "error": {"code": "upstream_auth", "message": "The e-mail platform refused our credentials."}}
    # ... and the operator's view.
    assert body["service_id"] == "1" and body["reason"] == "service.create"
    assert body["max_attempts"] == 3 and body["event_id"] is None
    assert body["created_at"] == (T0 + dt.timedelta(minutes=2)).isoformat()
    assert {"run_after", "started_at", "finished_at"} <= body.keys()
    assert [a["number"] for a in body["attempt_log"]] == [1, 2, 3]
    assert "lease_owner" not in body


def test_unknown_job_is_404(get):
    response = get("/api/v1/jobs/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "job_not_found"


def test_retry_failed_job(client, runtime, admin_key, jobs):
    response = client.post(f"/api/v1/jobs/{jobs['failed']}/retry",
                           headers={"Authorization": f"Bearer {admin_key}"})
    assert response.status_code == 202
    assert response.headers["Location"] == f"/api/v1/jobs/{jobs['failed']}"
    body = response.get_json()
    assert body["state"] == "queued"
    assert body["max_attempts"] == 3 + runtime.settings.job_max_attempts
    assert len(body["attempt_log"]) == 3
    with runtime.db.read() as session:
        job = session.get(Job, jobs["failed"])
        assert (job.state, job.finished_at) == (JobState.QUEUED, None)


@pytest.mark.parametrize("name", ["ok", "queued"])
def test_retry_of_a_job_that_did_not_fail_is_409(client, runtime, admin_key, jobs, name):
    response = client.post(f"/api/v1/jobs/{jobs[name]}/retry", headers={"Authorization": f"Bearer {admin_key}"})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "job_not_retryable"
    with runtime.db.read() as session:
        assert session.get(Job, jobs[name]).max_attempts == 3


def test_retry_of_unknown_job_is_404(client, admin_key):
    response = client.post("/api/v1/jobs/nope/retry", headers={"Authorization": f"Bearer {admin_key}"})
    assert response.status_code == 404


# --- events --------------------------------------------------------------------------------------

@pytest.fixture
def events(runtime):
    with runtime.db.transaction() as session:
        add_service(session, "1")
        add_service(session, "2")
        made = {
            "create1": add_event(session, "1", minutes=1, payload={
                "type": "service.create", "service": {"id": "1", "password": "***"}}),
            "suspend1": add_event(session, "1", minutes=2, type_="service.suspend"),
            "create2": add_event(session, "2", minutes=3),
            "old2": add_event(session, "2", minutes=4, type_="service.suspend", outcome="skipped"),
        }
        job = add_job(session, "1", event_id=made["create1"].id)
    return {**{name: e.id for name, e in made.items()}, "job": job.id}


@pytest.mark.parametrize("query, expected", [
    ("", ["old2", "create2", "suspend1", "create1"]),
    ("service_id=1", ["suspend1", "create1"]),
    ("type=service.create", ["create2", "create1"]),
    ("type=service.suspend&service_id=2", ["old2"]),
    ("outcome=skipped", ["old2"]),
])
def test_event_filters(get, events, query, expected):
    response = get(f"/api/v1/events?{query}")
    assert response.status_code == 200
    assert ids(response) == [events[name] for name in expected]


def test_bad_event_type_is_400(get, events):
    response = get("/api/v1/events?type=service.explode")
    assert response.status_code == 400
    assert "type" in response.get_json()["error"]["fields"]


def test_event_list_item_and_detail(get, events):
    item = get("/api/v1/events?service_id=1&type=service.create").get_json()["items"][0]
    assert item["job_id"] == events["job"]
    assert item["type"] == "service.create" and item["outcome"] == "applied"
    assert "payload" not in item
    detail = get(f"/api/v1/events/{events['create1']}").get_json()
    assert detail["payload"] == {"type": "service.create", "service": {"id": "1", "password": "***"}}
    assert detail["webhook_id"].startswith("msg_")
    assert get("/api/v1/events/nope").status_code == 404


# --- upstreams and products ------------------------------------------------------------------

def test_upstreams_list_names_and_kinds_only(get):
    response = get("/api/v1/upstreams")
    assert response.get_json() == {"items": [{"name": "sandbox", "provider": "sandbox"},
                                             {"name": "wrong-key", "provider": "sandbox"}],
                                   "page": 1, "per_page": 50, "total": 2}
    assert SIM_KEY not in response.get_data(as_text=True)
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_products_list(get):
    body = get("/api/v1/products").get_json()
    assert body["total"] == 1
    product = body["items"][0]
    assert product["id"] == "business-mail"
    assert product["billing_product_ids"] == ["12", "13"]
    assert product["upstream"] == "sandbox"
    assert product["limits"]["mailboxes"]["option"] == "Total Mailboxes"
    assert product["limits"]["mailboxes"]["max"] == 10000
    assert product["limits"]["mailbox_quota_gb"]["value"] == 10
    assert product["lifecycle"]["downgrade"] == "allow"


def test_upstream_test(get):
    assert get("/api/v1/upstreams/sandbox/test").get_json() == {"ok": True}

    response = get("/api/v1/upstreams/wrong-key/test")
    body = response.get_json()
    assert response.status_code == 200
    assert body["ok"] is False
    assert body["error"]["code"] == "upstream_auth"
    assert body["error"]["message"]
    assert "not-the-key" not in response.get_data(as_text=True)


def test_unknown_upstream_test_is_404(get):
    response = get("/api/v1/upstreams/nowhere/test")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "upstream_not_found"


# --- the OpenAPI document ----------------------------------------------------------------------

def _documented_paths(app) -> set[tuple[str, str]]:
    """(path, method) of every API, hook and health rule, in OpenAPI's {param} form."""
    wanted = []
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith(("/api/", "/hooks/")) or rule.rule in ("/healthz", "/readyz", "/metrics")):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        wanted += [(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}]
    return set(wanted)


def test_openapi_document(app, client):
    response = client.get("/api/openapi.json")          # no key needed
    assert response.status_code == 200
    doc = json.loads(response.get_data(as_text=True))
    assert doc["openapi"].startswith("3.")
    missing = {(p, m) for p, m in _documented_paths(app) if m not in doc["paths"].get(p, {})}
    assert not missing, f"undocumented: {sorted(missing)}"
    for path in ("/api/v1/services", "/api/v1/services/{service_id}", "/api/v1/jobs",
                 "/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/retry", "/api/v1/events",
                 "/api/v1/upstreams/{name}/test", "/hooks/v1/events", "/healthz", "/readyz"):
        assert path in doc["paths"]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    hook = doc["paths"]["/hooks/v1/events"]["post"]
    assert hook["security"] == []
    assert {"200", "202", "400", "401", "404", "409", "413", "422"} <= hook["responses"].keys()
    assert {p["name"] for p in hook["parameters"]} >= {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert "HookEvent" in json.dumps(hook["requestBody"])
    names = {p["name"] for p in doc["paths"]["/api/v1/services"]["get"]["parameters"]}
    assert names >= {"page", "per_page", "domain", "status", "client_id", "product_id",
                     "expires_before", "expires_after"}
    # Built once per app.
    assert client.get("/api/openapi.json").get_json() == doc
    assert app.extensions["provisioner.openapi"] is app.extensions["provisioner.openapi"]


def test_openapi_document_is_valid(client):
    import openapi_spec_validator
    openapi_spec_validator.validate(client.get("/api/openapi.json").get_json())


def test_served_answers_match_their_documented_keys(app, client, get, events):
    """A response object never carries a key its schema does not document."""
    doc = client.get("/api/openapi.json").get_json()
    schemas = doc["components"]["schemas"]

    def documented(obj: dict, name: str) -> bool:
        schema = schemas[name]
        return set(schema.get("required", [])) <= set(obj) <= set(schema["properties"])

    body = get("/api/v1/services/1").get_json()
    assert documented(body, "ServiceDetail")
    assert documented(body["jobs"][0], "JobDetail")
    assert documented(body["events"][0], "Event")
    assert "secrets" not in body["jobs"][0]  # optional: only with a one-time secret
