"""ResellerClub end to end in the app: signed hooks -> converge jobs -> the simulator's
native order state, for the shipped Enterprise Email US and India products, also
with injected faults."""
from __future__ import annotations

import datetime as dt
import time

import pytest
import requests
from sqlalchemy import select

from provisioner.devsetup import dev_products_env
from provisioner.models import Job, JobState, Service
from provisioner.providers.http import HttpClient
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.resellerclub import add_months
from provisioner.simulators.server import SimulatorServer
from provisioner.worker import Worker
from tests.helpers import event_body

ACTIVATION_DELAY = 0.6
# product_configs/enterprise-email-{us,in}.yaml
PRODUCTS = {"us": ("20", "enterpriseemailus"), "in": ("21", "enterpriseemailin")}
POSTAL = {"address": "1 Main St", "city": "Berlin", "state": "Berlin", "postcode": "10115",
          "phone": "+49.3012345678"}


@pytest.fixture
def rc_sim():
    server = SimulatorServer(create_simulator_app("resellerclub", activation_delay=ACTIVATION_DELAY))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def products_env(sandbox_sim, rc_sim) -> dict[str, str]:
    # the shipped product configs, pointed at both simulators (dev credentials)
    return dev_products_env({"sandbox": sandbox_sim.url, "resellerclub": rc_sim.url})


class Billing:
    """A billing system driving services through signed hooks, and what it can observe."""

    def __init__(self, client, signer, runtime, sim):
        self.client, self.signer, self.runtime, self.sim = client, signer, runtime, sim

    def send(self, kind: str, service_id: str, region: str, **fields) -> str:
        product_id = PRODUCTS[region][0]
        mailboxes = fields.pop("mailboxes", 3)
        body = event_body(kind, service_id, domain=f"svc{service_id}.example.com", product_id=product_id,
                          options={"Total Mailboxes": mailboxes}, **fields)
        body["client"].update(POSTAL)
        response = self.signer.post(self.client, body)
        assert response.status_code in (200, 202), response.get_json()
        return response.get_json()["job"]["id"]

    def jobs(self, job_ids) -> dict[str, Job]:
        with self.runtime.db.read() as session:
            rows = session.execute(select(Job).where(Job.id.in_(list(job_ids)))).scalars().all()
            return {job.id: job for job in rows}

    def service(self, service_id: str) -> Service:
        with self.runtime.db.read() as session:
            return session.get(Service, service_id)

    def state(self) -> dict:
        return requests.get(f"{self.sim.url}/_sim/state", timeout=5).json()

    def order(self, service_id: str) -> dict:
        """The one order of a service (asserts there is exactly one)."""
        domain = f"svc{service_id}.example.com"
        orders = [a for a in self.state()["accounts"] if a["domain"] == domain]
        assert len(orders) == 1, f"{len(orders)} orders for {domain}"
        return orders[0]


@pytest.fixture
def billing(client, signer, runtime, rc_sim):
    return Billing(client, signer, runtime, rc_sim)


def run(worker, billing: Billing, job_ids, timeout: float = 20.0) -> dict[str, Job]:
    """Drain until every job has finished (pending ones are polled again shortly)."""
    deadline = time.monotonic() + timeout
    while True:
        worker.drain()
        jobs = billing.jobs(job_ids)
        if all(job.state in JobState.FINISHED for job in jobs.values()):
            return jobs
        assert time.monotonic() < deadline, {j.id: (j.state, j.error_code) for j in jobs.values()}
        time.sleep(0.05)


def endtime(order: dict) -> int:
    return int(order["native"]["endtime"])


@pytest.mark.parametrize("region", ["us", "in"])
def test_full_lifecycle_through_signed_hooks(billing, worker, region):
    sid, product_key = f"31{len(region)}{region}", PRODUCTS[region][1]

    # create: pending while ResellerClub provisions the order, then active
    job = billing.send("service.create", sid, region, mailboxes=3)
    worker.drain()
    assert billing.jobs([job])[job].state == JobState.RETRYING          # waiting, not failing
    assert billing.service(sid).observed_status == "pending"
    order = billing.order(sid)
    assert order["status"] == "pending" and order["native"]["currentstatus"] == "InActive"
    assert run(worker, billing, [job])[job].state == JobState.SUCCEEDED
    order = billing.order(sid)
    native = order["native"]
    assert native["currentstatus"] == "Active" and native["productkey"] == product_key
    assert native["emailaccounts"] == "3" and order["id"] == billing.service(sid).upstream_id
    [customer] = billing.state()["customers"]
    assert customer["username"] == "owner@example.com" and native["customerid"] == customer["customerid"]
    assert (customer["address1"], customer["zip"], customer["telno"]) == ("1 Main St", "10115", "3012345678")
    created_end = endtime(order)
    assert billing.service(sid).observed["dns_records"]

    # suspend with the billing system's reason, then unsuspend
    job = billing.send("service.suspend", sid, region, suspend_reason="Overdue on Payment")
    assert run(worker, billing, [job])[job].state == JobState.SUCCEEDED
    order = billing.order(sid)
    assert order["native"]["currentstatus"] == "Suspended" and order["suspend_reason"] == "Overdue on Payment"
    assert order["native"]["orderSuspendedByParent"] == "true"
    job = billing.send("service.unsuspend", sid, region)
    assert run(worker, billing, [job])[job].state == JobState.SUCCEEDED
    assert billing.order(sid)["native"]["currentstatus"] == "Active"

    # change of package: more accounts, then fewer
    for mailboxes in (5, 2):
        job = billing.send("service.change_package", sid, region, mailboxes=mailboxes)
        assert run(worker, billing, [job])[job].state == JobState.SUCCEEDED
        assert billing.order(sid)["native"]["emailaccounts"] == str(mailboxes)

    # renew: the order runs one month longer, to the new due date
    paid_until = dt.datetime.fromtimestamp(created_end, dt.timezone.utc).date()
    next_due = dt.date.fromtimestamp(add_months(created_end, 1))
    job = billing.send("service.renew", sid, region, next_due_date=next_due.isoformat())
    assert run(worker, billing, [job])[job].state == JobState.SUCCEEDED
    order = billing.order(sid)
    assert endtime(order) == add_months(created_end, 1) and paid_until < next_due
    assert billing.service(sid).observed["paid_until"] == next_due.isoformat()

    # terminate: the order is deleted, and stays the only one of the service
    job = billing.send("service.terminate", sid, region)
    assert run(worker, billing, [job])[job].state == JobState.SUCCEEDED
    order = billing.order(sid)
    assert order["native"]["currentstatus"] == "Deleted" and order["status"] == "deleted"
    assert billing.service(sid).observed_status == "deleted"
    assert len(billing.state()["customers"]) == 1


def test_lifecycle_with_faults_never_orders_twice(billing, runtime, rc_sim, monkeypatch):
    monkeypatch.setattr(HttpClient, "_sleep", lambda self, seconds: None)   # retries, without waits
    runtime.settings.job_max_attempts = 60
    requests.post(f"{rc_sim.url}/_sim/faults",
                  json={"error_rate": 0.3, "latency_ms": 200, "seed": 3}, timeout=5).raise_for_status()
    services = {"4101": "us", "4102": "in"}
    runner = Worker(runtime, concurrency=2, name="rc-faults")
    attempts: list[int] = []

    def step(kind: str, **fields) -> None:
        ids = [billing.send(kind, sid, region, **fields) for sid, region in services.items()]
        runner.start()
        try:
            deadline = time.monotonic() + 25
            while not all(j.state in JobState.FINISHED for j in billing.jobs(ids).values()):
                assert time.monotonic() < deadline, "jobs did not finish"
                time.sleep(0.05)
        finally:
            runner.stop()
        jobs = billing.jobs(ids).values()
        assert {j.state for j in jobs} == {JobState.SUCCEEDED}, \
            {j.id: (j.state, j.error_code, j.attempts) for j in jobs}
        attempts.extend(j.attempts for j in jobs)

    step("service.create", mailboxes=3)
    assert {billing.order(sid)["native"]["currentstatus"] for sid in services} == {"Active"}
    step("service.suspend", suspend_reason="Overdue on Payment")
    assert {billing.order(sid)["native"]["currentstatus"] for sid in services} == {"Suspended"}
    step("service.unsuspend")
    step("service.change_package", mailboxes=6)
    assert {billing.order(sid)["native"]["emailaccounts"] for sid in services} == {"6"}
    step("service.change_package", mailboxes=2)
    assert {billing.order(sid)["native"]["emailaccounts"] for sid in services} == {"2"}
    ends = {sid: endtime(billing.order(sid)) for sid in services}
    step("service.renew", next_due_date=dt.date.fromtimestamp(add_months(max(ends.values()), 1)).isoformat())
    assert all(endtime(billing.order(sid)) == add_months(ends[sid], 1) for sid in services)
    step("service.terminate")

    assert sum(attempts) > len(attempts)            # faults were in play: jobs were retried
    state = billing.state()
    for sid in services:                            # one order per service, now deleted
        assert billing.order(sid)["native"]["currentstatus"] == "Deleted"
    assert len(state["accounts"]) == len(services)
    assert [c["username"] for c in state["customers"]] == ["owner@example.com"]   # one customer
