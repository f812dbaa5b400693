"""Callbacks to the billing system, delivered to a real receiver that verifies their signatures.

The receiver is a tiny Flask app served over HTTP on loopback
(``SimulatorServer``); it checks every request with the ``standardwebhooks``
library, as a billing system would, and records it. Retries are driven by
calling ``deliver_due`` with an injected clock (``now=``): nothing sleeps.
"""
from __future__ import annotations

import datetime as dt
import json
import socket
import threading

import pytest
import requests
from flask import Flask, request
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from provisioner.db import utcnow
from provisioner.devsetup import new_webhook_secret
from provisioner.models import Event, Notification, Service
from provisioner.notifications import deliver_due, notify
from provisioner.reconcile import run_pass
from provisioner.simulators.server import SimulatorServer
from tests.helpers import event_body, sim_state

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.timezone.utc)
DUE = dt.date(2026, 12, 1)          # next_due_date of the services below; grace is 3 days


def at(date: str) -> dt.datetime:
    return dt.datetime.fromisoformat(date).replace(tzinfo=dt.timezone.utc)


class Receiver:
    """A billing system's callback endpoint: verifies, records, answers as told."""

    def __init__(self, secret: str):
        self.secret = secret
        self.answers: list[int] = []          # statuses to answer, in order; then 200
        self.requests: list[dict] = []        # every request, verified or not
        self.lock = threading.Lock()
        app = Flask(__name__)

        @app.post("/billing/callbacks")
        def receive():
            raw = request.get_data()
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                Webhook(self.secret).verify(raw, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
            with self.lock:
                status = self.answers.pop(0) if self.answers else 200
                status = status if verified else 401
                self.requests.append({"id": headers.get("webhook-id"), "body": json.loads(raw),
                                      "verified": verified, "status": status,
                                      "timestamp": headers.get("webhook-timestamp")})
            return ("", status)

        self.server = SimulatorServer(app)

    @property
    def url(self) -> str:
        return f"{self.server.url}/billing/callbacks"

    def delivered(self) -> list[dict]:
        """Bodies the receiver accepted (verified and answered 2xx)."""
        with self.lock:
            return [r["body"] for r in self.requests if r["verified"] and r["status"] < 300]

    def types(self) -> list[tuple[str, str]]:
        return [(body["type"], body["service_id"]) for body in self.delivered()]


@pytest.fixture
def receiver():
    rec = Receiver(new_webhook_secret())
    rec.server.start()
    yield rec
    rec.server.stop()


@pytest.fixture(autouse=True)
def callbacks(runtime, receiver):
    """Only the sandbox's simulator runs here; callbacks go to the receiver, signed with its secret."""
    runtime.catalog.upstreams = {"sandbox": runtime.catalog.upstreams["sandbox"]}
    runtime.settings.callback_url = receiver.url
    runtime.settings.callback_secret = receiver.secret
    return runtime


def create(client, signer, worker, service_id: str, next_due_date: dt.date = DUE) -> None:
    body = event_body("service.create", service_id=service_id, domain=f"s{service_id}.example", occurred_at=T0)
    body["service"]["next_due_date"] = next_due_date.isoformat()
    assert signer.post(client, body).status_code == 202
    worker.drain()


def rows(runtime) -> list[Notification]:
    with runtime.db.read() as session:
        return list(session.execute(select(Notification).order_by(Notification.created_at)).scalars())


def one_row(runtime) -> Notification:
    [row] = rows(runtime)
    return row


def record(runtime, type_: str = "service.drift", service_id: str = "1", data: dict | None = None) -> str:
    with runtime.db.transaction() as session:
        notify(session, runtime, type_, service_id, data or {"kinds": ["drift_status"]})
    return rows(runtime)[-1].id


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- what produces a callback ------------------------------------------------------------------

def test_a_job_failing_for_good_is_called_back_once(client, signer, worker, runtime, sandbox_sim, receiver):
    runtime.settings.job_max_attempts = 1
    requests.post(f"{sandbox_sim.url}/_sim/faults", json={"error_rate": 1.0, "only_actions": ["accounts.create"]},
                  timeout=5).raise_for_status()
    response = signer.post(client, event_body("service.create", service_id="7", occurred_at=T0))
    job_id = response.get_json()["job"]["id"]
    worker.drain()
    assert deliver_due(runtime) == 1
    assert deliver_due(runtime, now=utcnow() + dt.timedelta(days=1)) == 0   # delivered: never again
    [body] = receiver.delivered()
    assert len(receiver.requests) == 1
    assert body["type"] == "job.failed" and body["service_id"] == "7"
    message = body["data"]["error"]["message"]
    with runtime.db.read() as session:
        event = session.execute(select(Event)).scalar_one()
    assert body["source"] == "default"
    assert body["data"] == {"job_id": job_id, "state": "failed", "reason": "service.create", "attempts": 1,
                            "event_id": event.id, "event_type": "service.create", "webhook_id": event.webhook_id,
                            "message": message, "error": {"code": "upstream_unavailable", "message": message}}
    assert message
    row = one_row(runtime)
    assert (row.state, row.attempts, row.last_status, row.last_error) == ("delivered", 1, 200, None)
    assert row.delivered_at is not None and body["id"] == row.id == receiver.requests[0]["id"]
    assert row.payload == body


def test_scheduler_suspension_and_termination_are_called_back_once_each(client, signer, worker, runtime,
                                                                         sandbox_sim, receiver):
    runtime.catalog.products["sandbox-mail"].lifecycle.terminate_requires_operator = False
    create(client, signer, worker, "1")
    run_pass(runtime, at=at("2026-12-05T00:00"))
    worker.drain()
    deliver_due(runtime)
    run_pass(runtime, at=at("2027-01-04T00:00"))                  # suspended 30 days earlier
    worker.drain()
    deliver_due(runtime)
    assert sim_state(sandbox_sim)[0]["status"] == "deleted"
    bodies = {body["type"]: body for body in receiver.delivered()}
    types = [t for t, _ in receiver.types()]
    assert types.count("service.suspended") == 1 and types.count("service.terminated") == 1
    assert bodies["service.suspended"]["service_id"] == "1"
    assert bodies["service.suspended"]["data"] == {"reason": "Overdue", "next_due_date": "2026-12-01"}
    assert bodies["service.terminated"]["data"] == {"reason": "Overdue for 30 days"}
    assert types.index("service.suspended") < types.index("service.terminated")
    assert all(r["verified"] for r in receiver.requests)
    assert {row.state for row in rows(runtime)} == {"delivered"}


def test_a_scheduler_suspension_is_not_also_called_back_as_drift(client, signer, worker, runtime, receiver):
    create(client, signer, worker, "1")
    report = run_pass(runtime, at=at("2026-12-05T00:00")).report
    deliver_due(runtime)
    # (the create's hook was answered 202: its outcome is called back too)
    assert receiver.types() == [("job.succeeded", "1"), ("service.suspended", "1")]
    assert report["counts"] == {"suspend_overdue": 1}


def test_drift_is_called_back_once(client, signer, worker, runtime, sandbox_sim, receiver):
    create(client, signer, worker, "1", next_due_date=dt.date(2027, 6, 1))
    create(client, signer, worker, "2", next_due_date=dt.date(2027, 6, 1))
    account = {sid: runtime_service(runtime, sid).upstream_id for sid in ("1", "2")}
    requests.post(f"{sandbox_sim.url}/_sim/mutate", json={"account_id": account["1"], "status": "suspended"},
                  timeout=5).raise_for_status()
    requests.post(f"{sandbox_sim.url}/_sim/mutate", json={"account_id": account["2"], "limits": {"mailboxes": 42}},
                  timeout=5).raise_for_status()
    assert deliver_due(runtime) == 2                 # the creates' outcomes (answered 202)
    run_pass(runtime, at=at("2026-12-01T00:00"))
    assert deliver_due(runtime) == 2
    worker.drain()
    assert run_pass(runtime, at=at("2026-12-01T00:00")).report["counts"] == {}
    assert deliver_due(runtime, now=utcnow() + dt.timedelta(days=1)) == 0
    drift = [body for body in receiver.delivered() if body["type"] == "service.drift"]
    data = {body["service_id"]: body["data"] for body in drift}
    assert sorted((b["type"], b["service_id"]) for b in drift) == [("service.drift", "1"), ("service.drift", "2")]
    assert data == {"1": {"kinds": ["drift_status"]}, "2": {"kinds": ["drift_limits"]}}
    assert len(receiver.requests) == 4               # 2 job.succeeded + 2 service.drift, each once


def runtime_service(runtime, service_id: str) -> Service:
    with runtime.db.read() as session:
        return session.get(Service, service_id)


def test_nothing_is_recorded_without_a_callback_url(runtime, receiver):
    runtime.settings.callback_url = ""
    with runtime.db.transaction() as session:
        notify(session, runtime, "service.drift", "1", {"kinds": ["drift_status"]})
    assert rows(runtime) == [] and deliver_due(runtime) == 0


# --- delivery: signatures, retries, giving up ------------------------------------------------------

def test_a_failed_delivery_is_retried_after_its_backoff_with_the_same_webhook_id(runtime, receiver):
    receiver.answers = [500]
    notification_id = record(runtime)
    before = utcnow()
    assert deliver_due(runtime) == 0
    row = one_row(runtime)
    assert (row.state, row.attempts, row.last_status) == ("pending", 1, 500)
    assert row.last_error == "the callback URL answered HTTP 500"
    # Backoff: at least half of the 5 s base, counted from the failed attempt.
    assert row.next_attempt_at >= before + dt.timedelta(seconds=2.5)

    assert deliver_due(runtime, now=row.next_attempt_at - dt.timedelta(milliseconds=1)) == 0
    assert len(receiver.requests) == 1                                 # not due yet: not tried
    assert deliver_due(runtime, now=row.next_attempt_at) == 1
    row = one_row(runtime)
    assert (row.state, row.attempts, row.last_status, row.last_error) == ("delivered", 2, 200, None)
    assert [r["id"] for r in receiver.requests] == [notification_id, notification_id]
    assert [r["status"] for r in receiver.requests] == [500, 200]
    assert all(r["verified"] for r in receiver.requests)              # each attempt signed afresh
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"] == row.payload


def test_delivery_gives_up_after_notify_max_attempts(runtime, receiver):
    runtime.settings.notify_max_attempts = 3
    receiver.answers = [500] * 10
    notification_id = record(runtime)
    clock = utcnow()
    for attempt in range(1, 5):
        clock += dt.timedelta(hours=2)                                  # past any backoff (cap 1 h)
        assert deliver_due(runtime, now=clock) == 0
        row = one_row(runtime)
        assert row.attempts == min(attempt, 3)
        assert row.state == ("pending" if attempt < 3 else "failed")
    assert len(receiver.requests) == 3                                  # nothing after giving up
    assert {r["id"] for r in receiver.requests} == {notification_id}
    assert row.last_status == 500 and row.delivered_at is None


def test_an_unreachable_url_is_an_attempt_without_a_status(runtime, receiver):
    runtime.settings.callback_url = f"http://127.0.0.1:{closed_port()}/callbacks?token=s3cr3t-in-url"
    record(runtime)
    assert deliver_due(runtime) == 0
    row = one_row(runtime)
    assert (row.state, row.attempts, row.last_status) == ("pending", 1, None)
    assert row.last_error == "could not reach the callback URL (ConnectionError)"
    assert "s3cr3t" not in row.last_error
    runtime.settings.callback_url = receiver.url                        # fixed: the retry gets through
    assert deliver_due(runtime, now=utcnow() + dt.timedelta(hours=2)) == 1
    assert one_row(runtime).state == "delivered" and len(receiver.delivered()) == 1


@pytest.mark.parametrize("secret", ["wrong", ""])
def test_the_receiver_refuses_a_callback_signed_with_another_secret_or_none(runtime, receiver, secret):
    runtime.settings.callback_secret = new_webhook_secret() if secret == "wrong" else ""
    record(runtime)
    assert deliver_due(runtime) == 0
    row = one_row(runtime)
    assert (row.state, row.last_status) == ("pending", 401)
    assert receiver.delivered() == [] and receiver.requests[0]["verified"] is False


def test_concurrent_deliverers_deliver_each_callback_once(runtime, receiver):
    ids = {record(runtime, service_id=str(n)) for n in range(12)}
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(deliver_due(runtime))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum(counts) == 12
    assert sorted(r["id"] for r in receiver.requests) == sorted(ids)    # no id twice
    with runtime.db.read() as session:
        assert session.execute(select(func.count()).select_from(Notification)
                               .where(Notification.state == "delivered")).scalar() == 12
