"""A runner's own clock of its job's lease (provisioner/lease.py): no upstream request is
sent that could land after the lease ran out, so a job swept from a runner cut off from
the database is never acted on by two runners at once."""
from __future__ import annotations

import pytest

from provisioner.lease import Lease, LeaseExpiring, check_current, holding
from provisioner.providers.http import HttpClient
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_lease_lasts_from_its_claim_and_each_heartbeat_that_reached_the_database():
    clock = Clock()
    lease = Lease(3.0, age=0.5, clock=clock)          # claimed half a second ago
    assert lease.left() == pytest.approx(2.5)
    clock.now += 2.0
    lease.check(0.4, "a call")                       # 0.5 s left: enough for a 0.4 s call
    with pytest.raises(LeaseExpiring, match="0.5s of the job's lease left"):
        lease.check(1.0, "a call")
    lease.renewed(at=clock.now - 0.1)                # a heartbeat sent 0.1 s ago got through
    assert lease.left() == pytest.approx(2.9)
    lease.lost()                                     # a heartbeat found the job swept
    with pytest.raises(LeaseExpiring):
        lease.check(0.0, "a call")


def test_outside_a_job_nothing_is_checked_and_a_long_timeout_asks_for_half_the_lease():
    check_current(1000.0, "a reconcile listing")     # no lease held: nothing to check
    clock = Clock()
    lease = Lease(10.0, clock=clock)
    with holding(lease):
        clock.now += 4.0
        check_current(30.0, "a call")                # a 30 s timeout needs 5 s of 10, 6 are left
        clock.now += 2.0
        with pytest.raises(LeaseExpiring):
            check_current(30.0, "a call")
    check_current(30.0, "after the job")


def test_an_upstream_request_is_not_sent_without_enough_lease():
    server = SimulatorServer(create_simulator_app("sandbox", api_key="k")).start()
    try:
        http = HttpClient("sandbox", server.url + "/api/v1", timeout=2, headers={"Authorization": "Bearer k"})
        with holding(Lease(10.0)):
            assert http.request("GET", "/accounts", action="list").status == 200
        with holding(Lease(10.0, age=9.5)):          # half a second left, a 2 s request
            with pytest.raises(LeaseExpiring) as refused:
                http.request("POST", "/accounts", action="create", json={"domain": "x.example"})
        assert refused.value.retryable and refused.value.code == "lease_expiring"
        calls = server.app.test_client().get("/_sim/calls").get_json()["calls"]
        assert "accounts.create" not in calls          # nothing reached the upstream
    finally:
        server.stop()
