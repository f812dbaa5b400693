"""One webhook delivered 50 times at once is one event, one job and one upstream account."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers import event_body

pytestmark = pytest.mark.e2e

SERVICE = "7001"
COPIES = 50


def test_same_webhook_fifty_times_at_once(stack):
    body = event_body("service.create", SERVICE, domain="idempotency-e2e.example.com")
    raw, headers = stack.signed(body)          # one webhook-id, one body, one signature
    webhook_id = headers["webhook-id"]
    barrier = threading.Barrier(COPIES)

    def deliver(_):
        with requests.Session() as session:
            barrier.wait(timeout=30)
            return stack.post_raw(raw, headers, session=session)

    with ThreadPoolExecutor(COPIES) as pool:
        answers = list(pool.map(deliver, range(COPIES)))

    refused = [(r.status_code, r.text) for r in answers if r.status_code not in (200, 202)]
    assert refused == [], refused
    job_ids = {r.json()["job"]["id"] for r in answers}
    event_ids = {r.json()["event_id"] for r in answers}
    assert len(job_ids) == 1, job_ids
    assert len(event_ids) == 1, event_ids
    job_id = job_ids.pop()

    assert stack.scalar("SELECT COUNT(*) FROM events WHERE webhook_id = :w", w=webhook_id) == 1
    assert stack.count("events") == 1
    assert stack.count("jobs") == 1
    assert stack.job(job_id)["service_id"] == SERVICE

    job = stack.wait_job(job_id, timeout=30)
    assert job["state"] == "succeeded", job
    assert len(stack.accounts_for(SERVICE)) == 1, stack.sim_accounts()
    assert len(stack.sim_accounts()) == 1
    assert stack.sim_calls().get("accounts.create") == 1

    # A redelivery after the fact answers the finished job's state.
    again = stack.post_raw(raw, headers)
    assert again.status_code == 200, again.text
    assert again.json()["job"] == {**again.json()["job"], "id": job_id, "state": "succeeded"}
    assert stack.count("jobs") == 1


def test_same_webhook_id_with_another_body_is_refused(stack):
    first = event_body("service.create", "7002", domain="reuse-e2e.example.com")
    resp = stack.post(first, msg_id="msg_reused_e2e", wait=20)
    assert resp.status_code == 200, resp.text
    assert resp.json()["job"]["state"] == "succeeded"

    other = event_body("service.create", "7003", domain="other-e2e.example.com")
    resp = stack.post(other, msg_id="msg_reused_e2e", wait=20)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "idempotency_key_reused"

    assert stack.count("events") == 1
    assert stack.count("jobs") == 1
    assert stack.scalar("SELECT COUNT(*) FROM services WHERE id = '7003'") == 0
    assert [a["native"]["external_id"] for a in stack.sim_accounts()] == ["7002"]
