"""Hook intake (contract section 2) through the Flask app on a real database."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from provisioner.models import Event, Job, Service
from tests.helpers import Signer, event_body, sim_state


def counts(runtime) -> tuple[int, int, int]:
    with runtime.db.read() as s:
        return tuple(s.execute(select(func.count()).select_from(m)).scalar() for m in (Event, Job, Service))


def test_create_is_stored_with_its_job_before_the_answer(client, signer, runtime):
    r = signer.post(client, event_body("service.create"))
    assert r.status_code == 202
    body = r.get_json()
    assert body["service_id"] == "1042"
    assert body["job"]["state"] == "queued" and body["job"]["error"] is None
    assert r.headers["Location"] == f"/api/v1/jobs/{body['job']['id']}"
    assert counts(runtime) == (1, 1, 1)
    with runtime.db.read() as s:
        service = s.get(Service, "1042")
    assert service.desired_status == "active"
    assert service.limits["mailboxes"] == 5 and service.limits["mailbox_quota_gb"] == 10


def test_prefer_wait_returns_the_finished_job(app, signer, runtime, worker, sandbox_sim):
    worker.start()
    try:
        r = signer.post(app.test_client(), event_body("service.create"), wait=10)
    finally:
        worker.stop()
    assert r.status_code == 200
    assert r.get_json()["job"]["state"] == "succeeded"
    assert r.get_json()["job"]["attempts"] == 1
    assert [a["external_id"] for a in (x["native"] for x in sim_state(sandbox_sim))] == ["1042"]


@pytest.mark.parametrize("mutate, status, code", [
    (lambda h: h.update({"webhook-signature": "v1,AAAA"}), 401, "invalid_signature"),
    (lambda h: h.pop("webhook-signature"), 401, "invalid_signature"),
    (lambda h: h.update({"webhook-signature": "garbage"}), 401, "invalid_signature"),
    (lambda h: h.update({"webhook-id": "msg_other"}), 401, "invalid_signature"),
])
def test_bad_signatures_are_401(client, signer, runtime, mutate, status, code):
    raw = json.dumps(event_body("service.create"))
    headers = signer.headers(raw)
    mutate(headers)
    r = client.post("/hooks/v1/events", data=raw, headers=headers)
    assert r.status_code == status
    assert r.get_json()["error"]["code"] == code
    assert counts(runtime) == (0, 0, 0)


def test_stale_and_future_timestamps_are_401(client, signer, runtime):
    raw = json.dumps(event_body("service.create"))
    for skew in (-301, 400):
        headers = signer.headers(raw, timestamp=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=skew))
        r = client.post("/hooks/v1/events", data=raw, headers=headers)
        assert r.status_code == 401
        assert r.get_json()["error"]["code"] == "stale_timestamp"
    assert counts(runtime) == (0, 0, 0)


def test_any_configured_secret_verifies_for_rotation(client, settings, runtime):
    from provisioner.devsetup import new_webhook_secret
    old, new = settings.webhook_secrets[0], new_webhook_secret()
    settings.webhook_secrets = [new, old]
    r = Signer(old).post(client, event_body("service.create"))
    assert r.status_code == 202
    r = Signer(new).post(client, event_body("service.suspend"))
    assert r.status_code == 202
    r = Signer(new_webhook_secret()).post(client, event_body("service.unsuspend"))
    assert r.status_code == 401


def test_malformed_json_is_400(client, signer, runtime):
    r = signer.post(client, "{not json")
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "malformed_json"
    r = signer.post(client, "[1, 2]")
    assert r.status_code == 400
    assert counts(runtime) == (0, 0, 0)


def test_schema_errors_name_the_fields(client, signer, runtime):
    body = event_body("service.create", domain="not a domain")
    body["type"] = "service.explode"
    del body["occurred_at"]
    body["service"]["next_due_date"] = "tomorrow"
    r = signer.post(client, body)
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["code"] == "invalid_event"
    assert set(error["fields"]) >= {"type", "occurred_at", "service.domain", "service.next_due_date"}
    assert counts(runtime) == (0, 0, 0)


def test_create_requires_domain_and_client(client, signer):
    body = event_body("service.create")
    del body["service"]["domain"]
    del body["client"]
    r = signer.post(client, body)
    assert r.status_code == 400
    assert "service.domain" in r.get_json()["error"]["fields"]


def test_naive_occurred_at_is_rejected(client, signer):
    body = event_body("service.create")
    body["occurred_at"] = "2026-11-21T10:00:00"
    r = signer.post(client, body)
    assert r.status_code == 400
    assert "occurred_at" in r.get_json()["error"]["fields"]


def test_body_over_256_kib_is_413(client, signer, runtime):
    body = event_body("service.create")
    body["service"]["custom_fields"] = {"padding": "x" * (256 * 1024)}
    r = signer.post(client, body)
    assert r.status_code == 413
    assert r.get_json()["error"]["code"] == "body_too_large"
    assert counts(runtime) == (0, 0, 0)


def test_unknown_product_is_422(client, signer, runtime):
    r = signer.post(client, event_body("service.create", product_id="999"))
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert error["code"] == "unknown_product" and "999" in error["message"]
    assert counts(runtime) == (0, 0, 0)


def test_out_of_range_option_names_the_option(client, signer, runtime):
    r = signer.post(client, event_body("service.create", options={"mailbox quota (gb)|Quota": 500,
                                                                  "Total Mailboxes": 5}))
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert error["code"] == "invalid_option"
    assert "Mailbox Quota (GB)" in error["message"]
    assert any("Mailbox Quota (GB)" in k for k in error["fields"])
    assert counts(runtime) == (0, 0, 0)


def test_option_names_match_before_the_bar_case_insensitively(client, signer, runtime):
    r = signer.post(client, event_body("service.create", options={" total MAILBOXES |Mailboxes": "7"}))
    assert r.status_code == 202
    with runtime.db.read() as s:
        assert s.get(Service, "1042").limits["mailboxes"] == 7


def test_event_for_unknown_service_is_404(client, signer, runtime):
    r = signer.post(client, event_body("service.suspend", service_id="555"))
    assert r.status_code == 404
    assert r.get_json()["error"]["code"] == "service_not_found"
    assert counts(runtime) == (0, 0, 0)


def test_same_webhook_id_same_body_returns_the_same_job(client, signer, runtime):
    raw = json.dumps(event_body("service.create"))
    headers = signer.headers(raw, msg_id="msg_same")
    first = client.post("/hooks/v1/events", data=raw, headers=headers).get_json()
    second = client.post("/hooks/v1/events", data=raw, headers=signer.headers(raw, msg_id="msg_same")).get_json()
    assert first["job"]["id"] == second["job"]["id"] and first["event_id"] == second["event_id"]
    assert counts(runtime) == (1, 1, 1)


def test_same_webhook_id_different_body_is_422(client, signer, runtime):
    signer.post(client, event_body("service.create"), msg_id="msg_reused")
    r = signer.post(client, event_body("service.create", domain="other.example"), msg_id="msg_reused")
    assert r.status_code == 422
    assert r.get_json()["error"]["code"] == "idempotency_key_reused"
    assert counts(runtime) == (1, 1, 1)


def test_redelivery_of_a_failed_job_queues_it_again(client, signer, runtime, worker, sandbox_sim):
    import requests
    requests.post(f"{sandbox_sim.url}/_sim/faults", json={"error_rate": 1.0}, timeout=5)
    runtime.settings.job_max_attempts = 2
    raw = json.dumps(event_body("service.create"))
    first = client.post("/hooks/v1/events", data=raw, headers=signer.headers(raw, msg_id="msg_retry")).get_json()
    worker.drain()
    import time
    time.sleep(0.1)  # past the (tiny) backoff
    worker.drain()
    with runtime.db.read() as s:
        job = s.get(Job, first["job"]["id"])
    assert job.state == "failed" and job.attempts == 2
    assert job.error_code == "upstream_unavailable"
    assert "temporarily unavailable" in job.error_message

    requests.post(f"{sandbox_sim.url}/_sim/faults", json={"error_rate": 0.0}, timeout=5)
    again = client.post("/hooks/v1/events", data=raw, headers=signer.headers(raw, msg_id="msg_retry"))
    assert again.get_json()["job"]["id"] == first["job"]["id"]
    assert again.get_json()["job"]["state"] == "queued"
    worker.drain()
    with runtime.db.read() as s:
        assert s.get(Job, first["job"]["id"]).state == "succeeded"
    assert len(sim_state(sandbox_sim)) == 1


def test_older_event_than_one_applied_is_skipped(client, signer, runtime, worker):
    now = dt.datetime.now(dt.timezone.utc)
    signer.post(client, event_body("service.create", occurred_at=now - dt.timedelta(minutes=5)))
    signer.post(client, event_body("service.suspend", occurred_at=now))
    late = signer.post(client, event_body("service.unsuspend", occurred_at=now - dt.timedelta(minutes=1)))
    assert late.status_code == 200
    assert late.get_json()["job"]["state"] == "skipped"
    with runtime.db.read() as s:
        service = s.get(Service, "1042")
        events = s.execute(select(Event.type, Event.outcome).order_by(Event.received_at)).all()
    assert service.desired_status == "suspended"
    assert events[-1] == ("service.unsuspend", "skipped")


def test_change_package_recomputes_limits_and_rejects_a_downgrade_below_usage(
        client, signer, runtime, worker, sandbox_sim):
    import requests
    signer.post(client, event_body("service.create", options={"Total Mailboxes": 5}))
    worker.drain()
    with runtime.db.read() as s:
        account_id = s.get(Service, "1042").upstream_id
    for i in range(3):
        requests.post(f"{sandbox_sim.url}/api/v1/accounts/{account_id}/mailboxes",
                      json={"local_part": f"u{i}", "password": "pw-123456789"}, timeout=5).raise_for_status()
    # A converge refreshes the usage the downgrade check compares with.
    r = signer.post(client, event_body("service.change_package", options={"Total Mailboxes": 8}))
    assert r.status_code == 202
    worker.drain()
    with runtime.db.read() as s:
        service = s.get(Service, "1042")
    assert service.limits["mailboxes"] == 8 and service.usage["mailboxes"] == 3
    assert sim_state(sandbox_sim)[0]["limits"]["mailboxes"] == 8

    r = signer.post(client, event_body("service.change_package", options={"Total Mailboxes": 2}))
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert error["code"] == "downgrade_below_usage"
    assert "3 mailboxes" in error["message"]
    with runtime.db.read() as s:
        assert s.get(Service, "1042").limits["mailboxes"] == 8


def test_create_and_terminate_queued_together_leave_nothing_upstream(client, signer, worker, sandbox_sim):
    signer.post(client, event_body("service.create"))
    signer.post(client, event_body("service.terminate"))
    worker.drain()
    assert sim_state(sandbox_sim) == []


def test_events_for_a_terminated_service_are_409_until_a_new_create(client, signer, runtime, worker, sandbox_sim):
    signer.post(client, event_body("service.create"))
    worker.drain()
    signer.post(client, event_body("service.terminate"))
    worker.drain()
    r = signer.post(client, event_body("service.suspend"))
    assert r.status_code == 409
    assert r.get_json()["error"]["code"] == "service_terminated"
    r = signer.post(client, event_body("service.create"))
    assert r.status_code == 202
    worker.drain()
    statuses = sorted(a["status"] for a in sim_state(sandbox_sim))
    assert statuses == ["active", "deleted"]


def test_passwords_are_encrypted_until_applied_then_erased(client, signer, runtime, worker, database_url):
    from tests.helpers import table_dump
    secret = "Zebra-Quartz-8812-unique"
    signer.post(client, event_body("service.create", password=secret))
    dump = table_dump(database_url)
    assert secret not in dump
    with runtime.db.read() as s:
        token = s.get(Service, "1042").pending_password
    assert token and runtime.box.decrypt(token) == secret
    worker.drain()
    with runtime.db.read() as s:
        assert s.get(Service, "1042").pending_password is None
    assert secret not in table_dump(database_url)


def test_a_database_failure_is_a_5xx_never_a_false_2xx(app, signer, runtime, tmp_path):
    from provisioner.db import Database
    runtime.db = Database(f"sqlite:///{tmp_path}/no/such/dir/db.sqlite3")
    r = signer.post(app.test_client(), event_body("service.create"))
    assert r.status_code == 503
    assert r.get_json()["error"]["code"] == "database_unavailable"
    assert int(r.headers["Retry-After"]) > 0


def test_an_unreachable_postgresql_is_503_database_unavailable(app, signer, runtime):
    """What a billing system sees while PostgreSQL restarts: a retryable 503, not a 500."""
    import socket

    from provisioner.db import Database
    with socket.socket() as sock:      # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime.db = Database(f"postgresql+psycopg://postgres@127.0.0.1:{port}/none?connect_timeout=2")
    try:
        client = app.test_client()
        r = signer.post(client, event_body("service.create"))
        assert r.status_code == 503, r.get_data(as_text=True)
        assert r.get_json()["error"] == {"code": "database_unavailable",
                                         "message": "The database cannot be reached right now; try again shortly."}
        assert int(r.headers["Retry-After"]) > 0
        r = signer.post(client, event_body("service.create"), wait=5)     # waiting changes nothing
        assert r.status_code == 503
    finally:
        runtime.db.dispose()
