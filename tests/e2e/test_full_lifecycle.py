"""A service's whole life through signed HTTP hooks against real processes."""
from __future__ import annotations

import datetime as dt

import pytest

from tests.helpers import event_body

pytestmark = pytest.mark.e2e

SERVICE = "5001"
DOMAIN = "lifecycle-e2e.example.com"


def _send(stack, kind: str, due: dt.date, **fields) -> dict:
    """Send one event with Prefer: wait=20; assert it finished ``succeeded`` (200).

    Like a billing system, every event carries the service's current due date."""
    resp = stack.post(event_body(kind, SERVICE, domain=DOMAIN, next_due_date=due.isoformat(), **fields),
                      wait=20)
    assert resp.status_code == 200, f"{kind}: {resp.status_code} {resp.text}"
    body = resp.json()
    assert body["service_id"] == SERVICE
    assert body["job"]["state"] == "succeeded", f"{kind}: {body}"
    assert body["job"]["error"] is None
    assert body["job"]["attempts"] >= 1
    # The admin API agrees.
    api = stack.admin_get(f"/api/v1/jobs/{body['job']['id']}")
    assert api.status_code == 200, api.text
    assert api.json()["id"] == body["job"]["id"]
    assert api.json()["state"] == "succeeded"
    assert api.json().get("service_id", SERVICE) == SERVICE
    return body


def _account(stack) -> dict:
    accounts = stack.accounts_for(SERVICE, live=False)
    assert len(accounts) == 1, accounts
    return accounts[0]


def test_full_lifecycle(stack):
    due = dt.date.today() + dt.timedelta(days=30)
    _send(stack, "service.create", due,
          options={"Total Mailboxes": 5, "Mailbox Quota (GB)": 10})
    acc = _account(stack)
    assert acc["status"] == "active"
    assert acc["domain"] == DOMAIN
    assert acc["limits"]["mailboxes"] == 5
    assert acc["limits"]["mailbox_quota_gb"] == 10
    assert acc["native"]["paid_until"] == due.isoformat()

    _send(stack, "service.suspend", due, suspend_reason="Overdue on Payment")
    acc = _account(stack)
    assert acc["status"] == "suspended"
    assert acc["native"]["suspend_reason"] == "Overdue on Payment"

    _send(stack, "service.unsuspend", due)
    assert _account(stack)["status"] == "active"

    _send(stack, "service.change_package", due,
          options={"Total Mailboxes|Mailboxes": 8, " mailbox quota (gb) ": 20, "Total Aliases": 3})
    acc = _account(stack)
    assert acc["status"] == "active"
    assert acc["limits"] == {**acc["limits"], "mailboxes": 8, "mailbox_quota_gb": 20, "aliases": 3}

    due = due + dt.timedelta(days=365)
    _send(stack, "service.renew", due)
    assert _account(stack)["native"]["paid_until"] == due.isoformat()

    updates_before = stack.sim_calls().get("accounts.update", 0)
    _send(stack, "service.change_password", due, password="Lifecycle-e2e-pw-4471")
    assert stack.sim_calls().get("accounts.update", 0) > updates_before, "no password call upstream"
    assert stack.scalar("SELECT pending_password FROM services WHERE id = :id", id=SERVICE) is None

    # An event older than one already applied is recorded but skipped: nothing changes upstream.
    stale = stack.post(event_body("service.suspend", SERVICE, domain=DOMAIN, next_due_date=due.isoformat(),
                                  occurred_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)),
                       wait=20)
    assert stale.status_code == 200, stale.text
    assert stale.json()["job"]["state"] == "skipped", stale.text
    api = stack.admin_get(f"/api/v1/jobs/{stale.json()['job']['id']}")
    assert api.status_code == 200 and api.json()["state"] == "skipped", api.text
    assert _account(stack)["status"] == "active"

    _send(stack, "service.terminate", due)
    acc = _account(stack)
    assert acc["status"] == "deleted"
    assert stack.accounts_for(SERVICE) == []          # no live account left

    # The admin API wants its key.
    anonymous = stack.http.get(f"{stack.base_url}/api/v1/jobs/{stale.json()['job']['id']}", timeout=10)
    assert anonymous.status_code == 401, anonymous.text

    # One account for the service's whole life, never a second order.
    assert stack.sim_calls().get("accounts.create") == 1
    assert stack.count("events") == 8
    states = stack.job_counts()
    assert states == {"succeeded": 7, "skipped": 1}, states
