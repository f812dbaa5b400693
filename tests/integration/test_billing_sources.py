"""Billing sources: two billing systems kept apart, scoped keys, service.update, lifecycle
authority, bounded dates, outcomes called back, and validation that stores nothing.

The default source is the environment's (PROVISIONER_WEBHOOK_SECRETS, as in every
other test); a second one, ``brand-b``, is a billing.yaml source with its own
webhook secret and callback URL, whose lifecycle belongs to the billing system.
Callbacks go to real HTTP receivers that verify their signatures.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest
import requests
from sqlalchemy import func, select

from provisioner import apikeys
from provisioner.billing.sources import BillingSource
from provisioner.db import utcnow
from provisioner.devsetup import new_webhook_secret
from provisioner.models import Event, Job, JobAttempt, Notification, ReconcileRun, Service
from provisioner.notifications import deliver_due
from provisioner.products import load_catalog
from provisioner.reconcile import run_pass
from tests.helpers import Signer, event_body, sim_state
from tests.integration.test_notifications import Receiver

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.timezone.utc)
DUE = dt.date(2026, 12, 1)          # next_due_date used below; the product's grace is 3 days
B = "brand-b"


def at(date: str) -> dt.datetime:
    return dt.datetime.fromisoformat(date).replace(tzinfo=dt.timezone.utc)


@pytest.fixture
def receivers():
    found = {"default": Receiver(new_webhook_secret()), B: Receiver(new_webhook_secret())}
    for receiver in found.values():
        receiver.server.start()
    yield found
    for receiver in found.values():
        receiver.server.stop()


@pytest.fixture(autouse=True)
def sources(runtime, receivers):
    """The default source (environment) and brand-b (billing.yaml), each with a callback receiver."""
    runtime.catalog.upstreams = {"sandbox": runtime.catalog.upstreams["sandbox"]}
    runtime.settings.callback_url = receivers["default"].url
    runtime.settings.callback_secret = receivers["default"].secret
    secret = new_webhook_secret()
    runtime.catalog.sources = {B: BillingSource(B, (secret,), receivers[B].url, receivers[B].secret,
                                                "billing")}
    return {"default": runtime.sources.default(), B: runtime.sources.get(B)}


@pytest.fixture
def signer_b(sources) -> Signer:
    return Signer(sources[B].webhook_secrets[0])


def key(runtime, scope: str = "admin", source: str | None = None) -> dict:
    with runtime.db.transaction() as session:
        token = apikeys.create_api_key(session, f"test {scope} {source}", scope, source)[1]
    return {"Authorization": f"Bearer {token}"}


def create(client, signer, service_id: str, domain: str, **fields):
    body = event_body("service.create", service_id=service_id, domain=domain, occurred_at=T0, **fields)
    body["service"]["next_due_date"] = fields.get("next_due_date", DUE.isoformat())
    return signer.post(client, body)


def service(runtime, key_: str) -> Service:
    with runtime.db.read() as session:
        return session.get(Service, key_)


def count(runtime, model) -> int:
    with runtime.db.read() as session:
        return session.execute(select(func.count()).select_from(model)).scalar()


# --- two billing systems, one service id --------------------------------------------------------

def test_the_same_service_id_from_two_sources_is_two_services_with_two_accounts(
        client, signer, signer_b, worker, runtime, sandbox_sim):
    a = create(client, signer, "5001", "first.example")
    b = create(client, signer_b, "5001", "second.example")
    assert (a.status_code, b.status_code) == (202, 202)
    assert (a.get_json()["source"], b.get_json()["source"]) == ("default", B)
    assert a.get_json()["service_id"] == b.get_json()["service_id"] == "5001"
    worker.drain()
    accounts = {acc["native"]["external_id"]: acc for acc in sim_state(sandbox_sim)}
    # Today's upstream name for the default source; a source-qualified one for the other.
    assert set(accounts) == {"5001", f"{B}:5001"}
    assert accounts["5001"]["domain"] == "first.example"
    assert accounts[f"{B}:5001"]["domain"] == "second.example"
    first, second = service(runtime, "5001"), service(runtime, f"{B}:5001")
    assert (first.source, first.billing_id, first.domain) == ("default", "5001", "first.example")
    assert (second.source, second.billing_id, second.domain) == (B, "5001", "second.example")
    assert first.upstream_id != second.upstream_id


def test_an_operator_names_the_source_when_an_id_is_ambiguous(client, signer, signer_b, worker, runtime):
    create(client, signer, "5001", "first.example")
    create(client, signer_b, "5001", "second.example")
    create(client, signer, "6000", "only-default.example")
    operator = key(runtime)
    ambiguous = client.get("/api/v1/services/5001", headers=operator)
    assert ambiguous.status_code == 409
    error = ambiguous.get_json()["error"]
    assert error["code"] == "ambiguous_service" and "default" in error["message"] and B in error["message"]
    chosen = client.get(f"/api/v1/services/5001?source={B}", headers=operator).get_json()
    assert (chosen["id"], chosen["source"], chosen["key"], chosen["domain"]) == (
        "5001", B, f"{B}:5001", "second.example")
    assert client.get(f"/api/v1/services/{B}:5001", headers=operator).get_json()["domain"] == "second.example"
    assert client.get("/api/v1/services/6000", headers=operator).get_json()["source"] == "default"
    both = client.get("/api/v1/services", headers=operator).get_json()
    assert sorted((i["id"], i["source"]) for i in both["items"]) == [
        ("5001", B), ("5001", "default"), ("6000", "default")]
    assert [i["source"] for i in client.get(f"/api/v1/services?source={B}", headers=operator).get_json()["items"]] \
        == [B]
    assert client.post("/api/v1/services/5001/sso", headers=operator).status_code == 409


def test_a_source_key_sees_and_acts_on_its_own_services_only(client, signer, signer_b, worker, runtime):
    create(client, signer, "5001", "first.example")
    create(client, signer, "6000", "only-default.example")
    job_b = create(client, signer_b, "5001", "second.example").get_json()["job"]["id"]
    worker.drain()
    mine = key(runtime, "admin", B)
    reader = key(runtime, "read", B)
    with runtime.db.read() as session:
        job_a = session.execute(select(Job.id).where(Job.service_id == "5001")).scalar_one()
        event_a = session.execute(select(Event.id).where(Event.service_id == "5001")).scalar_one()

    assert client.get("/api/v1/services/5001", headers=mine).get_json()["domain"] == "second.example"
    # Another source's service answers exactly as one that does not exist.
    for path in ("/api/v1/services/6000", "/api/v1/services/5001?source=default", "/api/v1/services/nope",
                 f"/api/v1/jobs/{job_a}", f"/api/v1/events/{event_a}", "/api/v1/services/6000/usage"):
        response = client.get(path, headers=reader)
        assert response.status_code == 404, path
    assert client.post("/api/v1/services/6000/sso", headers=mine).status_code == 404
    assert client.post("/api/v1/services/6000/suspend", headers=mine, json={"reason": "x"}).status_code == 404
    assert client.post(f"/api/v1/jobs/{job_a}/retry", headers=mine).status_code == 404

    listed = client.get("/api/v1/services", headers=reader).get_json()
    assert [(i["id"], i["domain"]) for i in listed["items"]] == [("5001", "second.example")]
    assert listed["total"] == 1
    jobs_ = client.get("/api/v1/jobs", headers=reader).get_json()["items"]
    assert [(j["id"], j["service_id"], j["source"]) for j in jobs_] == [(job_b, "5001", B)]
    assert {e["source"] for e in client.get("/api/v1/events", headers=reader).get_json()["items"]} == {B}
    assert [u["service_id"] for u in client.get("/api/v1/usage", headers=reader).get_json()["items"]] == ["5001"]
    assert client.get("/api/v1/services?source=default", headers=reader).get_json()["items"] == []
    # Invoices cover every source's customers: operator keys only.
    assert client.get("/api/v1/upstreams/sandbox/invoices", headers=reader).status_code == 403


def test_sso_links_and_client_sessions_stay_within_their_source(client, signer, signer_b, worker, runtime):
    create(client, signer, "5001", "first.example")
    create(client, signer_b, "5001", "second.example")
    worker.drain()

    def session_domain(headers) -> str:
        url = client.post("/api/v1/services/5001/sso", headers=headers).get_json()["url"]
        browser = client.application.test_client()
        assert browser.get(url.split("127.0.0.1:8080", 1)[-1]).status_code in (302, 303)
        return browser.get("/client/api/v1/session").get_json()["domain"]

    assert session_domain(key(runtime, "admin", B)) == "second.example"
    assert session_domain(key(runtime, "admin", "default")) == "first.example"


def test_webhook_ids_are_per_source(client, signer, signer_b, worker, runtime):
    first = signer.post(client, event_body("service.create", "5001", domain="first.example"), msg_id="msg_same")
    second = signer_b.post(client, event_body("service.create", "5001", domain="second.example"),
                           msg_id="msg_same")
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.get_json()["event_id"] != second.get_json()["event_id"]
    assert count(runtime, Event) == 2


# --- a create never lies -------------------------------------------------------------------------

def test_a_create_with_another_domain_for_a_live_service_is_409(client, signer, worker, runtime, sandbox_sim):
    assert create(client, signer, "5001", "first.example").status_code == 202
    worker.drain()
    response = create(client, signer, "5001", "typo-fixed.example")
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "service_exists" and "first.example" in error["message"]
    assert error["fields"] == {"service.domain": "the service has first.example"}
    assert count(runtime, Event) == 1
    again = create(client, signer, "5001", "first.example")       # the same create: idempotent
    assert again.status_code == 202
    worker.drain()
    assert len(sim_state(sandbox_sim)) == 1


def test_a_domain_another_source_serves_is_refused(client, signer, signer_b, runtime):
    create(client, signer, "5001", "shared.example")
    response = create(client, signer_b, "9", "shared.example")   # a staging clone of the same WHMCS
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "domain_in_use" and "5001" not in error["message"]
    assert count(runtime, Service) == 1


# --- service.update ---------------------------------------------------------------------------------

def update(client, signer, service_id: str, minutes: int, **fields):
    body = event_body("service.update", service_id, occurred_at=T0 + dt.timedelta(minutes=minutes))
    for name in ("domain", "config_options", "billing_cycle", "next_due_date"):
        body["service"].pop(name, None)
    body["service"].update(fields)
    return signer.post(client, body)


def test_update_moves_the_due_date_and_the_override_and_the_scheduler_then_leaves_it_alone(
        client, signer, worker, runtime, sandbox_sim):
    create(client, signer, "1", "s1.example")
    create(client, signer, "2", "s2.example")
    worker.drain()
    # Paid meanwhile: a new due date. Exempted by the reseller: no auto-suspension until mid-January.
    assert update(client, signer, "1", 5, next_due_date="2027-02-01").status_code == 202
    assert update(client, signer, "2", 5, auto_suspend={"enabled": False, "until": "2027-01-15"}).status_code == 202
    worker.drain()
    assert service(runtime, "1").next_due_date == dt.date(2027, 2, 1)
    assert (service(runtime, "2").auto_suspend_enabled, service(runtime, "2").auto_suspend_until) == (
        False, dt.date(2027, 1, 15))

    report = run_pass(runtime, at=at("2026-12-10T00:00")).report
    assert "suspend_overdue" not in report["counts"]
    assert report["services"]["suspend_overridden"] == ["2"]
    assert {service(runtime, sid).desired_status for sid in ("1", "2")} == {"active"}
    worker.drain()
    assert {acc["status"] for acc in sim_state(sandbox_sim)} == {"active"}

    # After the override ends, the product's policy applies again.
    report = run_pass(runtime, at=at("2027-01-16T00:00")).report
    assert report["services"]["suspend_overdue"] == ["2"]
    assert service(runtime, "2").desired_status == "suspended"

    detail = client.get("/api/v1/services/2", headers=key(runtime, "read")).get_json()
    assert detail["desired"]["auto_suspend"] == {"enabled": False, "until": "2027-01-15"}


def test_update_carries_client_details_username_and_cycle(client, signer, worker, runtime):
    create(client, signer, "1", "s1.example")
    body = event_body("service.update", "1", occurred_at=T0 + dt.timedelta(minutes=1))
    body["service"] = {"id": "1", "product_id": "12", "username": "new-login", "billing_cycle": "annually"}
    body["client"]["email"] = "moved@example.net"
    body["client"]["address"] = "1 New Street"
    assert signer.post(client, body).status_code == 202
    svc = service(runtime, "1")
    assert (svc.username, svc.billing_cycle, svc.client["email"], svc.client["address"]) == (
        "new-login", "annually", "moved@example.net", "1 New Street")
    assert svc.domain == "s1.example"


def test_update_renames_the_domain_upstream_where_the_provider_can(client, signer, worker, runtime, sandbox_sim):
    create(client, signer, "1", "old-name.example")
    worker.drain()
    account_id = service(runtime, "1").upstream_id
    requests.post(f"{sandbox_sim.url}/api/v1/accounts/{account_id}/mailboxes",
                  json={"local_part": "ada", "password": "pw-123456789"}, timeout=5).raise_for_status()
    assert update(client, signer, "1", 5, domain="new-name.example").status_code == 202
    worker.drain()
    [account] = sim_state(sandbox_sim)
    assert account["id"] == account_id and account["domain"] == "new-name.example"
    assert [m["address"] for m in account["mailboxes"]] == ["ada@new-name.example"]
    svc = service(runtime, "1")
    assert (svc.domain, svc.upstream_id, svc.observed["domain"]) == ("new-name.example", account_id,
                                                                     "new-name.example")
    with runtime.db.read() as session:
        detail = session.execute(select(JobAttempt.detail).join(Job, Job.id == JobAttempt.job_id)
                                 .where(Job.reason == "service.update")).scalar_one()
    assert detail == "rename_domain"


def test_update_of_the_domain_where_the_provider_cannot_is_422_naming_it(client, signer, runtime, products_env):
    # PolarisMail has no documented call to rename a domain (docs/providers/polarismail.md).
    runtime.catalog.upstreams["polarismail"] = load_catalog(runtime.settings.products_dir,
                                                            products_env).upstreams["polarismail"]
    body = event_body("service.create", "30", product_id="30", domain="polaris.example", occurred_at=T0,
                      options={"Total Mailboxes": 5, "Total Enhanced Mailboxes": 0, "Mailbox Quota (GB)": 5,
                               "Total Aliases": 0, "Total Distribution Lists": 0})
    assert signer.post(client, body).status_code == 202
    response = update(client, signer, "30", 5, product_id="30", domain="renamed.example")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "domain_change_not_supported" and "polarismail" in error["message"]
    assert service(runtime, "30").domain == "polaris.example"
    assert count(runtime, Event) == 1


def test_update_cannot_change_the_product(client, signer, runtime):
    create(client, signer, "1", "s1.example")
    response = update(client, signer, "1", 5, product_id="1")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "product_change_requires_change_package"


def test_update_of_an_unknown_service_is_404_and_older_updates_are_skipped(client, signer, runtime):
    assert update(client, signer, "404", 1, next_due_date="2027-01-01").status_code == 404
    create(client, signer, "1", "s1.example")
    assert update(client, signer, "1", 10, next_due_date="2027-03-01").status_code == 202
    stale = update(client, signer, "1", 5, next_due_date="2027-02-01")
    assert stale.status_code == 200 and stale.get_json()["job"]["state"] == "skipped"
    assert service(runtime, "1").next_due_date == dt.date(2027, 3, 1)


# --- who owns the lifecycle ----------------------------------------------------------------------

def test_under_billing_authority_a_renewal_never_lifts_a_suspension(client, signer_b, worker, runtime,
                                                                    sandbox_sim):
    create(client, signer_b, "7", "abuse.example")
    # WHMCS sends "Overdue on Payment" for an admin's blank reason.
    suspend = event_body("service.suspend", "7", occurred_at=T0 + dt.timedelta(hours=1),
                         suspend_reason="Overdue on Payment")
    renew = event_body("service.renew", "7", occurred_at=T0 + dt.timedelta(hours=2))
    assert signer_b.post(client, suspend).status_code == 202
    assert signer_b.post(client, renew).status_code == 202
    worker.drain()
    svc = service(runtime, f"{B}:7")
    assert (svc.desired_status, svc.suspended_by) == ("suspended", "billing")
    assert sim_state(sandbox_sim)[0]["status"] == "suspended"
    unsuspend = event_body("service.unsuspend", "7", occurred_at=T0 + dt.timedelta(hours=3))
    assert signer_b.post(client, unsuspend).status_code == 202       # billing's own word lifts it
    worker.drain()
    assert sim_state(sandbox_sim)[0]["status"] == "active"


def test_under_billing_authority_the_scheduler_reports_overdue_but_never_suspends(
        client, signer_b, worker, runtime, sandbox_sim):
    create(client, signer_b, "8", "late.example")
    worker.drain()
    report = run_pass(runtime, at=at("2027-03-01T00:00")).report
    assert report["services"]["billing_active_overdue"] == [f"{B}:8"]
    assert "suspend_overdue" not in report["counts"] and "terminate_overdue" not in report["counts"]
    assert service(runtime, f"{B}:8").desired_status == "active"
    worker.drain()
    assert sim_state(sandbox_sim)[0]["status"] == "active"


def test_termination_after_overdue_waits_for_an_operator_who_confirms_it(client, signer, worker, runtime,
                                                                         sandbox_sim):
    # The shipped products leave terminations to an operator (the default).
    assert runtime.catalog.products["sandbox-mail"].lifecycle.terminate_requires_operator is True
    create(client, signer, "1", "s1.example")
    worker.drain()
    run_pass(runtime, at=at("2026-12-05T00:00"))                 # suspended as overdue
    report = run_pass(runtime, at=at("2027-01-05T00:00")).report
    assert report["services"]["awaiting_operator_termination"] == ["1"]
    worker.drain()
    assert sim_state(sandbox_sim)[0]["status"] == "suspended"    # nothing deleted on its own guess
    operator = key(runtime)
    wrong = client.post("/api/v1/services/1/terminate", headers=operator, json={"confirm": "2", "reason": "x"})
    assert wrong.status_code == 422 and wrong.get_json()["error"]["code"] == "confirmation_mismatch"
    reader = key(runtime, "read")
    assert client.post("/api/v1/services/1/terminate", headers=reader,
                       json={"confirm": "1", "reason": "unpaid"}).status_code == 403
    done = client.post("/api/v1/services/1/terminate", headers=operator,
                       json={"confirm": "1", "reason": "unpaid since December"})
    assert done.status_code == 202 and done.get_json()["reason"] == "operator:terminate"
    worker.drain()
    assert sim_state(sandbox_sim)[0]["status"] == "deleted"
    with runtime.db.read() as session:
        types = [n.type for n in session.execute(select(Notification)).scalars()]
    assert "service.terminated" in types


# --- bounded dates, poisoned rows, far-future passes ----------------------------------------------

@pytest.mark.parametrize("path, value", [
    ("next_due_date", "9999-12-31"), ("next_due_date", "1969-12-31"),
    ("occurred_at", "0001-01-01T00:00:00+01:00"), ("occurred_at", "9999-12-31T23:59:59-01:00"),
    ("auto_suspend", {"enabled": False, "until": "2200-01-01"}),
])
def test_dates_outside_the_window_are_400_naming_the_field(client, signer, runtime, path, value):
    body = event_body("service.create", "1", domain="s1.example")
    if path == "occurred_at":
        body["occurred_at"] = value
        field = "occurred_at"
    else:
        body["service"][path] = value
        field = f"service.{path}" + (".until" if path == "auto_suspend" else "")
    response = signer.post(client, body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert field in error["fields"] and "2199" in error["fields"][field]
    assert count(runtime, Service) == count(runtime, Event) == 0


def test_one_poisoned_row_cannot_stop_a_pass(client, signer, worker, runtime, sandbox_sim):
    create(client, signer, "1", "s1.example")
    create(client, signer, "2", "s2.example")
    worker.drain()
    create(client, signer, "3", "s3.example", next_due_date="2027-06-01")
    worker.drain()
    with runtime.db.transaction() as session:
        # Rows stored before dates were bounded and limits checked: a due date the database
        # compares (not overdue; nothing to add a grace period to in Python), and limits
        # that are not a mapping, which the drift check cannot read.
        session.get(Service, "1").next_due_date = dt.date(9999, 12, 31)
        session.get(Service, "3").limits = ["not", "a", "mapping"]
    run = run_pass(runtime, at=at("2026-12-10T00:00"))
    assert run.state == "finished"
    assert run.report["services"]["check_failed"] == ["3"]
    assert "AttributeError" in run.report["service_errors"]["3"]
    assert run.report["services"]["suspend_overdue"] == ["2"]
    assert service(runtime, "2").desired_status == "suspended"
    assert service(runtime, "1").desired_status == "active"


def test_a_future_reconcile_must_be_a_dry_run(client, signer, runtime):
    create(client, signer, "1", "s1.example")
    operator = key(runtime)
    far = (utcnow() + dt.timedelta(days=3650)).isoformat()
    refused = client.post("/api/v1/reconcile", headers=operator, json={"at": far, "dry_run": False})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "future_at_requires_dry_run"
    assert count(runtime, ReconcileRun) == 0
    assert client.post("/api/v1/reconcile", headers=operator, json={"at": "9999-01-01T00:00:00Z",
                                                                    "dry_run": True}).status_code == 400
    allowed = client.post("/api/v1/reconcile", headers=operator, json={"at": far, "dry_run": True})
    assert allowed.status_code == 202
    assert service(runtime, "1").desired_status == "active"


# --- outcomes flow back --------------------------------------------------------------------------

def test_a_202_jobs_outcome_reaches_its_sources_receiver_signed(client, signer, signer_b, worker, runtime,
                                                                receivers, sandbox_sim):
    answer = create(client, signer_b, "5001", "second.example")
    assert answer.status_code == 202
    webhook_id = None
    with runtime.db.read() as session:
        webhook_id = session.execute(select(Event.webhook_id)).scalar_one()
    worker.drain()
    assert deliver_due(runtime) == 1
    [body] = receivers[B].delivered()
    assert receivers["default"].requests == []             # never another source's receiver
    assert all(r["verified"] for r in receivers[B].requests)
    assert body["type"] == "job.succeeded" and (body["service_id"], body["source"]) == ("5001", B)
    data = body["data"]
    assert (data["job_id"], data["event_type"], data["webhook_id"], data["state"]) == (
        answer.get_json()["job"]["id"], "service.create", webhook_id, "succeeded")
    assert data["message"] == "The e-mail service is set up." and data["error"] is None


def test_a_failing_202_job_is_called_back_as_failed(client, signer, worker, runtime, receivers, sandbox_sim):
    runtime.settings.job_max_attempts = 1
    requests.post(f"{sandbox_sim.url}/_sim/faults", json={"error_rate": 1.0, "only_actions": ["accounts.create"]},
                  timeout=5).raise_for_status()
    job_id = create(client, signer, "1", "s1.example").get_json()["job"]["id"]
    worker.drain()
    deliver_due(runtime)
    [body] = receivers["default"].delivered()
    assert body["type"] == "job.failed" and body["data"]["job_id"] == job_id
    assert body["data"]["message"] and body["data"]["error"]["code"] == "upstream_unavailable"


def test_a_job_answered_when_finished_is_not_called_back(client, signer, runtime, receivers, sandbox_sim):
    from provisioner.worker import Worker
    running = Worker(runtime, concurrency=1, name="live-worker")
    running.start()
    try:
        body = event_body("service.create", "1", domain="s1.example", occurred_at=T0)
        answer = signer.post(client, body, wait=20)
    finally:
        running.stop()
    assert answer.status_code == 200 and answer.get_json()["job"]["state"] == "succeeded"
    deliver_due(runtime)
    assert receivers["default"].requests == []
    with runtime.db.read() as session:
        assert session.execute(select(Job.report_outcome)).scalar_one() is False


def test_notifications_of_a_source_are_listed_to_its_key_only(client, signer, signer_b, worker, runtime):
    create(client, signer, "1", "s1.example")
    create(client, signer_b, "2", "s2.example")
    worker.drain()
    mine = client.get("/api/v1/notifications", headers=key(runtime, "read", B)).get_json()["items"]
    assert [(n["type"], n["service_id"], n["source"]) for n in mine] == [("job.succeeded", "2", B)]
    every = client.get("/api/v1/notifications", headers=key(runtime, "read")).get_json()["items"]
    assert {n["source"] for n in every} == {"default", B}


# --- validate without acting ---------------------------------------------------------------------

def validate(client, signer, body: dict, msg_id: str | None = None):
    raw = json.dumps(body)
    return client.post("/hooks/v1/events/validate", data=raw, headers=signer.headers(raw, msg_id))


def test_validate_answers_what_the_event_would_and_stores_nothing(client, signer, worker, runtime):
    create(client, signer, "1", "s1.example", options={"Total Mailboxes": 5})
    worker.drain()
    with runtime.db.transaction() as session:
        session.get(Service, "1").usage = {"mailboxes": 4}
    before = {model: count(runtime, model) for model in (Service, Event, Job, Notification)}

    downgrade = event_body("service.change_package", "1", options={"Total Mailboxes": 2},
                           occurred_at=T0 + dt.timedelta(hours=1))
    judged = validate(client, signer, downgrade, msg_id="msg_checkout")
    received = signer.post(client, downgrade, msg_id="msg_other")
    assert judged.status_code == received.status_code == 422
    assert judged.get_json() == received.get_json()
    assert judged.get_json()["error"]["code"] == "downgrade_below_usage"

    upgrade = event_body("service.change_package", "1", options={"Total Mailboxes": 8},
                         occurred_at=T0 + dt.timedelta(hours=2))
    ok = validate(client, signer, upgrade, msg_id="msg_checkout")
    assert ok.status_code == 200 and ok.get_json()["valid"] is True
    assert {model: count(runtime, model) for model in (Service, Event, Job, Notification)} == before
    assert service(runtime, "1").limits["mailboxes"] == 5
    # The webhook-id was not used up: the real event goes through with it.
    assert signer.post(client, upgrade, msg_id="msg_checkout").status_code == 202
    # Now used: validating another body under it answers as the event would.
    reused = validate(client, signer, downgrade, msg_id="msg_checkout")
    assert reused.status_code == 422 and reused.get_json()["error"]["code"] == "idempotency_key_reused"


def test_validate_needs_a_valid_signature(client, signer, runtime):
    body = event_body("service.create", "1", domain="s1.example")
    bad = Signer(new_webhook_secret())
    assert validate(client, bad, body).status_code == 401
    assert validate(client, signer, {"type": "service.create"}).status_code == 400
    assert count(runtime, Event) == 0
