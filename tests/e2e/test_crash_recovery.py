"""A worker killed in the middle of a job: the lease runs out, another worker finishes it.

The kill lands while the upstream create call is in flight (the simulator has
counted it and is sleeping on injected latency), so the upstream does the work
after its client is gone: the nastiest case. The job must still end
``succeeded`` with exactly one upstream account, adopted rather than ordered
twice.
"""
from __future__ import annotations

import pytest

from tests.e2e.procs import wait_until
from tests.helpers import event_body

pytestmark = pytest.mark.e2e

SERVICE = "6001"
LEASE_SECONDS = 3


def test_worker_killed_mid_job_is_recovered(make_stack):
    stack = make_stack(lease_seconds=LEASE_SECONDS)
    stack.sim_faults(latency_ms=2500)

    resp = stack.post(event_body("service.create", SERVICE, domain="crash-e2e.example.com"))
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job"]["id"]
    assert resp.headers["Location"] == f"/api/v1/jobs/{job_id}"

    stack.wait_job(job_id, states=("running",), timeout=20)
    # The look-up came first; wait until the create itself is on the wire.
    wait_until(lambda: stack.sim_calls().get("accounts.create", 0) >= 1, timeout=20,
               what="the upstream create call", alive=stack.check_alive)
    assert stack.job_state(job_id) == "running"

    first_worker = stack.workers[0]
    first_worker.kill()
    stack.clear_faults()

    # The orphaned create completes upstream even though nobody hears the answer.
    wait_until(lambda: stack.accounts_for(SERVICE), timeout=10,
               what="the in-flight create to land upstream")
    assert stack.job_state(job_id) == "running"      # nobody has noticed yet

    stack.start_worker()
    job = stack.wait_job(job_id, timeout=30)
    assert job["state"] == "succeeded", job
    assert job["attempts"] == 2, job

    attempts = stack.attempts(job_id)
    outcomes = [a["outcome"] for a in attempts]
    assert outcomes == ["lost", "succeeded"], attempts
    assert attempts[0]["error_code"] == "worker_lost"
    assert attempts[0]["worker"] != attempts[1]["worker"]

    live = stack.accounts_for(SERVICE)
    assert len(live) == 1, stack.sim_accounts()
    assert len(stack.sim_accounts()) == 1                # adopted, not ordered a second time
    assert stack.scalar("SELECT upstream_id FROM services WHERE id = :id", id=SERVICE) == live[0]["id"]

    api = stack.admin_get(f"/api/v1/jobs/{job_id}")
    assert api.status_code == 200, api.text
    detail = api.json()
    assert detail["state"] == "succeeded"
    if "attempt_log" in detail:          # the admin API's job detail shows the same log
        assert [a["outcome"] for a in detail["attempt_log"]] == ["lost", "succeeded"], detail
        assert detail["attempt_log"][0]["error"]["code"] == "worker_lost"
