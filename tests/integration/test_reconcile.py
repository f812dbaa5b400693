"""Reconcile passes with an injected clock: due dates, suspension rules, terms, drift, orphans, usage."""
from __future__ import annotations

import datetime as dt

import pytest
import requests
from sqlalchemy import func, select

from provisioner.models import Job, Notification, ReconcileRun, Service
from provisioner.reconcile import run_pass
from tests.helpers import event_body, sim_state

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.timezone.utc)
DUE = dt.date(2026, 12, 1)          # next_due_date of the services below; grace is 3 days


def at(date: str) -> dt.datetime:
    return dt.datetime.fromisoformat(date).replace(tzinfo=dt.timezone.utc)


@pytest.fixture(autouse=True)
def sandbox_only(runtime):
    """Passes list every configured upstream; only the sandbox's simulator runs here."""
    runtime.catalog.upstreams = {"sandbox": runtime.catalog.upstreams["sandbox"]}


@pytest.fixture
def callbacks(runtime):
    """Record callbacks in the database (no receiver needed to see what was notified)."""
    runtime.settings.callback_url = "http://127.0.0.1:9/unused"
    return runtime


def create(client, signer, worker, service_id: str, **fields) -> None:
    body = event_body("service.create", service_id=service_id, domain=f"s{service_id}.example",
                      occurred_at=T0, **fields)
    body["service"]["next_due_date"] = fields.get("next_due_date", DUE.isoformat())
    assert signer.post(client, body).status_code == 202
    worker.drain()


def service(runtime, service_id: str) -> Service:
    with runtime.db.read() as s:
        return s.get(Service, service_id)


def notifications(runtime) -> list[tuple[str, str]]:
    with runtime.db.read() as s:
        return [(n.type, n.service_id) for n in s.execute(select(Notification).order_by(Notification.created_at)).scalars()]


def test_within_grace_nothing_happens_past_it_the_service_is_suspended_as_overdue(
        client, signer, worker, runtime, sandbox_sim, callbacks):
    create(client, signer, worker, "1")
    report = run_pass(runtime, at=at("2026-12-04T12:00")).report   # due + 3 days: still in grace
    assert "suspend_overdue" not in report["counts"]
    report = run_pass(runtime, at=at("2026-12-05T00:00")).report
    assert report["services"]["suspend_overdue"] == ["1"]
    svc = service(runtime, "1")
    assert (svc.desired_status, svc.suspended_by, svc.suspend_reason) == ("suspended", "scheduler", "Overdue")
    worker.drain()
    assert sim_state(sandbox_sim)[0]["status"] == "suspended"
    assert ("service.suspended", "1") in notifications(runtime)


def test_dry_run_at_lists_exactly_the_services_that_would_be_suspended(client, signer, worker, runtime):
    create(client, signer, worker, "1")
    create(client, signer, worker, "2", next_due_date="2026-12-20")
    create(client, signer, worker, "3")
    signer.post(client, event_body("service.suspend", service_id="3", occurred_at=T0 + dt.timedelta(hours=1)))
    run = run_pass(runtime, at=at("2026-12-10T00:00"), dry_run=True)
    assert run.report["services"]["suspend_overdue"] == ["1"]
    assert run.report["dry_run"] is True
    assert service(runtime, "1").desired_status == "active"   # nothing changed
    with runtime.db.read() as s:
        assert s.execute(select(func.count()).select_from(Job).where(Job.state == "queued")).scalar() == 1


def test_a_renewal_lifts_an_overdue_suspension_but_not_another(client, signer, worker, runtime):
    create(client, signer, worker, "1")
    create(client, signer, worker, "2")
    run_pass(runtime, at=at("2026-12-05T00:00"))                       # 1 and 2 suspended as overdue
    signer.post(client, event_body("service.suspend", service_id="2", suspend_reason="Abuse",
                                   occurred_at=at("2026-12-05T01:00")))  # billing re-suspends 2 for abuse
    for sid in ("1", "2"):
        signer.post(client, event_body("service.renew", service_id=sid, occurred_at=at("2026-12-06T00:00"),
                                       next_due_date="2027-01-01"))
    assert service(runtime, "1").desired_status == "active"
    assert (service(runtime, "2").desired_status, service(runtime, "2").suspend_reason) == ("suspended", "Abuse")


def test_billing_overdue_suspension_is_lifted_by_renewal(client, signer, worker, runtime):
    create(client, signer, worker, "1")
    signer.post(client, event_body("service.suspend", service_id="1", suspend_reason="Overdue on Payment",
                                   occurred_at=at("2026-12-02T00:00")))
    signer.post(client, event_body("service.renew", service_id="1", occurred_at=at("2026-12-03T00:00"),
                                   next_due_date="2027-01-01"))
    assert service(runtime, "1").desired_status == "active"


def test_billing_unsuspend_cannot_lift_an_operator_suspension(client, signer, worker, runtime):
    from provisioner.lifecycle import suspend
    create(client, signer, worker, "1")
    with runtime.db.transaction() as s:
        suspend(s.get(Service, "1"), "operator", "Spam complaint", at("2026-11-10T00:00"))
    r = signer.post(client, event_body("service.unsuspend", service_id="1", occurred_at=at("2026-11-11T00:00")))
    assert r.status_code == 409
    assert r.get_json()["error"]["code"] == "suspended_by_operator"
    assert "Spam complaint" in r.get_json()["error"]["message"]
    assert service(runtime, "1").desired_status == "suspended"


def test_overdue_for_terminate_after_days_is_terminated(client, signer, worker, runtime, sandbox_sim, callbacks):
    # Only where a product says so explicitly (the default waits for an operator).
    runtime.catalog.products["sandbox-mail"].lifecycle.terminate_requires_operator = False
    create(client, signer, worker, "1")
    run_pass(runtime, at=at("2026-12-05T00:00"))
    worker.drain()
    assert "terminate_overdue" not in run_pass(runtime, at=at("2027-01-03T00:00")).report["counts"]
    report = run_pass(runtime, at=at("2027-01-04T00:00")).report      # suspended 30 days earlier
    assert report["services"]["terminate_overdue"] == ["1"]
    worker.drain()
    assert service(runtime, "1").desired_status == "terminated"
    assert sim_state(sandbox_sim)[0]["status"] == "deleted"
    assert ("service.terminated", "1") in notifications(runtime)


def test_terminations_that_need_an_operator_are_listed_not_done(client, signer, worker, runtime):
    product = runtime.catalog.products["sandbox-mail"]
    product.lifecycle.terminate_requires_operator = True
    create(client, signer, worker, "1")
    run_pass(runtime, at=at("2026-12-05T00:00"))
    report = run_pass(runtime, at=at("2027-02-01T00:00")).report
    assert report["services"]["awaiting_operator_termination"] == ["1"]
    assert service(runtime, "1").desired_status == "suspended"


def test_drift_of_status_limits_and_missing_accounts_is_repaired(client, signer, worker, runtime, sandbox_sim,
                                                                 callbacks):
    for sid in ("1", "2", "3"):
        create(client, signer, worker, sid, next_due_date="2027-06-01")
    ids = {sid: service(runtime, sid).upstream_id for sid in ("1", "2", "3")}
    sim = sandbox_sim.url + "/_sim/mutate"
    requests.post(sim, json={"account_id": ids["1"], "status": "suspended"}, timeout=5).raise_for_status()
    requests.post(sim, json={"account_id": ids["2"], "limits": {"mailboxes": 99}}, timeout=5).raise_for_status()
    requests.post(sim, json={"account_id": ids["3"], "status": "deleted"}, timeout=5).raise_for_status()
    report = run_pass(runtime, at=at("2026-12-01T00:00")).report
    assert report["services"]["drift_status"] == ["1"]
    assert report["services"]["drift_limits"] == ["2"]
    assert report["services"]["drift_missing"] == ["3"]
    assert report["jobs_queued"] == 3
    worker.drain()
    accounts = {a["native"]["external_id"]: a for a in sim_state(sandbox_sim) if a["status"] != "deleted"}
    assert accounts["1"]["status"] == "active"
    assert accounts["2"]["limits"]["mailboxes"] == 5
    assert "3" in accounts  # created anew
    assert run_pass(runtime, at=at("2026-12-01T00:00")).report["counts"] == {}
    # The repairs are called back as drift; job.succeeded only reports the creates (their hooks were answered 202).
    assert {t for t, _ in notifications(runtime)} == {"service.drift", "job.succeeded"}


def test_orphans_are_reported_never_deleted(client, signer, worker, runtime, sandbox_sim):
    create(client, signer, worker, "1", next_due_date="2027-06-01")
    requests.post(f"{sandbox_sim.url}/api/v1/accounts", json={"external_id": "unknown-9", "domain": "stray.example",
                                                               "limits": {}}, timeout=5).raise_for_status()
    report = run_pass(runtime, at=at("2026-12-01T00:00")).report
    assert [o["domain"] for o in report["orphans"]] == ["stray.example"]
    assert report["counts"] == {"orphan": 1}
    assert len([a for a in sim_state(sandbox_sim) if a["status"] != "deleted"]) == 2


def test_a_pass_lists_in_pages_not_per_service(client, signer, runtime, worker, sandbox_sim):
    for sid in range(25):
        signer.post(client, event_body("service.create", service_id=str(sid), domain=f"p{sid}.example",
                                       occurred_at=T0))
    worker.drain()
    runtime.settings.reconcile_page_size = 10
    requests.post(f"{sandbox_sim.url}/_sim/reset", timeout=5)   # also clears the call counts...
    report = run_pass(runtime, at=at("2026-11-20T00:00")).report
    # ...so every account is now missing upstream, found in ceil(0/10) pages: one call.
    assert report["calls"] == {"sandbox": 1}
    assert len(report["services"]["drift_missing"]) == 25
    worker.drain()
    requests.post(f"{sandbox_sim.url}/_sim/faults", json={}, timeout=5)
    calls_before = requests.get(f"{sandbox_sim.url}/_sim/calls", timeout=5).json()["calls"].get("accounts.list", 0)
    report = run_pass(runtime, at=at("2026-11-20T00:00")).report
    calls = requests.get(f"{sandbox_sim.url}/_sim/calls", timeout=5).json()["calls"]["accounts.list"] - calls_before
    assert report["calls"] == {"sandbox": 3} and calls == 3     # 25 accounts, 10 a page
    assert report["counts"] == {}


def test_usage_is_collected_from_the_listing(client, signer, worker, runtime, sandbox_sim):
    create(client, signer, worker, "1", next_due_date="2027-06-01")
    account = service(runtime, "1").upstream_id
    requests.post(f"{sandbox_sim.url}/api/v1/accounts/{account}/mailboxes",
                  json={"local_part": "a", "password": "pw-123456789"}, timeout=5).raise_for_status()
    before = dt.datetime.now(dt.timezone.utc)
    report = run_pass(runtime, at=at("2026-12-01T00:00")).report
    assert report["usage_updated"] == 1
    svc = service(runtime, "1")
    # Stamped with when it was read, not with the instant the pass judged due dates at.
    assert svc.usage["mailboxes"] == 1 and svc.usage_at >= before


def _row_versions(runtime) -> dict[str, tuple]:
    with runtime.db.read() as s:
        return {row.id: tuple(row) for row in s.execute(select(Service.id, Service.updated_at, Service.usage,
                                                               Service.usage_at, Service.desired_status))}


def _counts(runtime) -> tuple[int, int, int]:
    with runtime.db.read() as s:
        return tuple(s.execute(select(func.count()).select_from(model)).scalar()
                     for model in (Job, Notification, Service))


def test_a_pass_that_finds_nothing_writes_nothing(client, signer, worker, runtime, sandbox_sim):
    for sid in range(12):
        create(client, signer, worker, str(sid), next_due_date="2027-06-01")
    account = service(runtime, "3").upstream_id
    requests.post(f"{sandbox_sim.url}/api/v1/accounts/{account}/mailboxes",
                  json={"local_part": "a", "password": "pw-123456789"}, timeout=5).raise_for_status()
    runtime.settings.reconcile_page_size = 5
    first = run_pass(runtime, at=at("2026-12-01T00:00")).report
    assert first["usage_updated"] == 1 and first["counts"] == {}       # service 3's new mailbox, only
    rows, counts = _row_versions(runtime), _counts(runtime)
    again = run_pass(runtime, at=at("2026-12-01T00:00")).report
    assert again["counts"] == {} and again["usage_updated"] == 0 and again["jobs_queued"] == 0
    assert again["calls"] == {"sandbox": 3}                             # 12 accounts, 5 a page
    assert _row_versions(runtime) == rows and _counts(runtime) == counts


def test_a_service_missing_upstream_is_found_among_many_pages(client, signer, worker, runtime, sandbox_sim):
    for sid in range(9):
        create(client, signer, worker, str(sid), next_due_date="2027-06-01")
    gone = service(runtime, "7").upstream_id
    requests.post(f"{sandbox_sim.url}/_sim/mutate", json={"account_id": gone, "status": "deleted"},
                  timeout=5).raise_for_status()
    runtime.settings.reconcile_page_size = 2
    report = run_pass(runtime, at=at("2026-12-01T00:00"), dry_run=True).report
    assert report["services"] == {"drift_missing": ["7"]} and report["calls"] == {"sandbox": 5}


def test_upstream_term_behind_the_paid_date_is_renewed(client, signer, worker, runtime, sandbox_sim):
    create(client, signer, worker, "1", next_due_date="2027-01-01")
    account = service(runtime, "1").upstream_id
    requests.post(f"{sandbox_sim.url}/_sim/mutate", json={"account_id": account, "paid_until": "2026-12-01"},
                  timeout=5).raise_for_status()
    report = run_pass(runtime, at=at("2026-11-20T00:00")).report
    assert report["services"]["upstream_expiry_before_paid_until"] == ["1"]
    worker.drain()
    assert sim_state(sandbox_sim)[0]["native"]["paid_until"] == "2027-01-01"


def test_runs_are_stored_with_their_report(runtime):
    run = run_pass(runtime, at=at("2026-12-01T00:00"), dry_run=True, trigger="api")
    with runtime.db.read() as s:
        stored = s.get(ReconcileRun, run.id)
    assert stored.state == "finished" and stored.trigger == "api" and stored.dry_run
    assert stored.report["counts"] == {} and "duration_s" in stored.report
