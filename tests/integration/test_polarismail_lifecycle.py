"""A PolarisMail service's whole life through signed hooks, checked in the simulator's native state."""
from __future__ import annotations

import time

import pytest
import requests
from sqlalchemy import select

from provisioner.devsetup import dev_products_env
from provisioner.models import Job, JobAttempt, Service
from provisioner.products import load_catalog
from provisioner.providers.http import HttpClient
from provisioner.runtime import Runtime
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer
from tests.helpers import event_body, sim_state, table_dump

SERVICE, DOMAIN, PRODUCT = "3001", "polaris-customer.example", "30"
OPTIONS = {"Total Mailboxes": 5, "Total Enhanced Mailboxes": 1, "Mailbox Quota (GB)": 10,
           "Total Aliases": 2, "Total Distribution Lists": 1}
FINISHED = ("succeeded", "failed", "skipped")
TAKEN = "someone-elses.example"


@pytest.fixture
def polaris_sim():
    # The dev credentials, which dev_products_env gives the product configs too.
    server = SimulatorServer(create_simulator_app("polarismail", taken_domains=[TAKEN])).start()
    yield server
    server.stop()


@pytest.fixture
def runtime(settings, sandbox_sim, polaris_sim):
    env = dev_products_env({"sandbox": sandbox_sim.url, "polarismail": polaris_sim.url})
    rt = Runtime(settings, catalog=load_catalog(settings.products_dir, environ=env))
    yield rt
    rt.close()


class Sim:
    def __init__(self, server: SimulatorServer):
        self.url = server.url
        self.admin_logins = 0

    def accounts(self) -> list[dict]:
        return sim_state(self)

    def only(self) -> dict:
        [account] = self.accounts()
        return account

    def calls(self) -> dict[str, int]:
        return requests.get(f"{self.url}/_sim/calls", timeout=5).json()["calls"]

    def faults(self, **faults) -> None:
        requests.post(f"{self.url}/_sim/faults", json=faults, timeout=5).raise_for_status()

    def admin(self, action: str, **form) -> dict:
        """What the reseller does in PolarisMail's own panel."""
        url = f"{self.url}/admin/json.php"
        self.admin_logins += 1
        token = requests.post(url, data={"action": "login", "username": "dev-admin",
                                         "password": "dev-polaris-password"}, timeout=5).json()["returndata"]
        body = requests.post(url, data={"action": action, "token": token, **form}, timeout=5).json()
        assert body["returncode"] == 1, body
        return body


@pytest.fixture
def sim(polaris_sim) -> Sim:
    return Sim(polaris_sim)


def send(client, signer, kind: str, *, domain: str = DOMAIN, options: dict | None = None,
         expect: int | None = None, **fields):
    body = event_body(kind, SERVICE, domain=domain, product_id=PRODUCT,
                      options=OPTIONS if options is None else options, **fields)
    r = signer.post(client, body)
    if expect is not None:
        assert r.status_code == expect, r.get_json()
    else:
        assert r.status_code in (200, 202), r.get_json()
    return r


def service(runtime) -> Service:
    with runtime.db.read() as s:
        return s.get(Service, SERVICE)


def jobs(runtime) -> list[Job]:
    with runtime.db.read() as s:
        return list(s.execute(select(Job).where(Job.service_id == SERVICE).order_by(Job.created_at)).scalars())


def run_jobs(worker, runtime, timeout: float = 30.0) -> None:
    """Drain until every job of the service has finished (retries wait out their backoff)."""
    deadline = time.monotonic() + timeout
    while True:
        worker.drain()
        if all(job.state in FINISHED for job in jobs(runtime)):
            return
        assert time.monotonic() < deadline, [(j.reason, j.state, j.error_code) for j in jobs(runtime)]
        time.sleep(0.05)


def converge_step(client, signer, worker, runtime, kind: str, **fields) -> Service:
    send(client, signer, kind, **fields)
    run_jobs(worker, runtime)
    last = jobs(runtime)[-1]
    assert last.state == "succeeded", (kind, last.error_code, last.error_message)
    return service(runtime)


def test_full_lifecycle_through_signed_hooks(client, signer, worker, runtime, sim, database_url):
    svc = converge_step(client, signer, worker, runtime, "service.create")
    domain = sim.only()
    assert domain["id"] == domain["domain"] == DOMAIN == svc.upstream_id
    assert domain["status"] == "active" and domain["native"]["active"] == "1" and domain["limits"] == {}
    assert svc.observed_status == "active"
    assert svc.limits == {"mailboxes": 5, "enhanced_mailboxes": 1, "mailbox_quota_gb": 10, "aliases": 2,
                          "distribution_lists": 1}
    [dkim] = svc.observed["dns_records"]
    assert dkim["type"] == "TXT" and dkim["host"] == f"dkim._domainkey.{DOMAIN}"
    assert dkim["value"] == domain["native"]["dkim"]["dkim_key"] and domain["native"]["dkim"]["dkim_enabled"] == "1"

    svc = converge_step(client, signer, worker, runtime, "service.suspend", suspend_reason="Overdue on Payment")
    assert sim.only()["status"] == "suspended" and sim.only()["native"]["active"] == "0"
    assert svc.observed_status == "suspended"
    svc = converge_step(client, signer, worker, runtime, "service.unsuspend")
    assert sim.only()["native"]["active"] == "1" and svc.observed_status == "active"

    # Mailboxes the customer made; a package change recomputes limits here and reads usage there.
    for name in ("ada", "bob", "eve"):
        sim.admin("addUser", username=name, domain=DOMAIN, account_type="1", password="Pw-12345678", quota="5")
    updates_before = sim.calls().get("updateDomain", 0)
    svc = converge_step(client, signer, worker, runtime, "service.change_package",
                        options={**OPTIONS, "Total Mailboxes": 8})
    assert svc.limits["mailboxes"] == 8 and svc.usage["mailboxes"] == 3
    assert sim.only()["limits"] == {} and sim.calls().get("updateDomain", 0) == updates_before
    r = send(client, signer, "service.change_package", options={**OPTIONS, "Total Mailboxes": 2}, expect=422)
    assert r.get_json()["error"]["code"] == "downgrade_below_usage"
    assert service(runtime).limits["mailboxes"] == 8

    # PolarisMail has no account password: the job succeeds and the password is erased.
    secret = "Polaris-Panel-Secret-4471"
    calls_before = sim.calls()
    svc = converge_step(client, signer, worker, runtime, "service.change_password", password=secret)
    assert svc.pending_password is None and secret not in table_dump(database_url)
    assert not any(action.startswith(("update", "add")) and calls_before.get(action) != count
                   for action, count in sim.calls().items())

    svc = converge_step(client, signer, worker, runtime, "service.terminate")
    assert sim.accounts() == [] and svc.observed_status == "deleted"
    assert [j.state for j in jobs(runtime)] == ["succeeded"] * 6
    assert sim.calls()["login"] - sim.admin_logins == 1       # one token for the whole run


def test_create_adopts_a_domain_the_reseller_already_added(client, signer, worker, runtime, sim):
    sim.admin("addDomain", newdomain=DOMAIN)
    sim.admin("addUser", username="ada", domain=DOMAIN, account_type="2", password="Pw-12345678", quota="5")
    svc = converge_step(client, signer, worker, runtime, "service.create")
    assert svc.upstream_id == DOMAIN and svc.usage["mailboxes"] == 1 and svc.usage["enhanced_mailboxes"] == 1
    assert sim.only()["domain"] == DOMAIN and sim.calls()["addDomain"] == 1      # the panel's own
    with runtime.db.read() as s:
        details = s.execute(select(JobAttempt.detail)).scalars().all()
    assert details == ["adopt"]


def test_a_domain_hosted_by_another_customer_fails_with_a_safe_message(client, signer, worker, runtime, sim):
    send(client, signer, "service.create", domain=TAKEN)
    run_jobs(worker, runtime)
    [job] = jobs(runtime)
    assert job.state == "failed" and job.error_code == "upstream_conflict" and job.attempts == 1
    assert job.error_message == ("This domain is already registered with the e-mail platform "
                                 "under another account.")
    assert sim.accounts() == [] and "addDomain" not in sim.calls()


def test_lifecycle_with_faults_never_makes_two_domains(client, signer, worker, runtime, sim, database_url,
                                                      monkeypatch):
    # Backoff waits between retries only slow the test down; what is retried is still real.
    monkeypatch.setattr(HttpClient, "_sleep", lambda self, seconds: None)
    runtime.settings.job_max_attempts = 100
    sim.faults(error_rate=0.3, latency_ms=200, seed=7)

    converge_step(client, signer, worker, runtime, "service.create")
    assert [a["domain"] for a in sim.accounts()] == [DOMAIN]
    assert sim.only()["status"] == "active"
    converge_step(client, signer, worker, runtime, "service.suspend")
    assert sim.only()["status"] == "suspended"
    converge_step(client, signer, worker, runtime, "service.unsuspend")
    assert sim.only()["status"] == "active"
    svc = converge_step(client, signer, worker, runtime, "service.change_package",
                        options={**OPTIONS, "Total Aliases": 5})
    assert svc.limits["aliases"] == 5 and len(sim.accounts()) == 1
    svc = converge_step(client, signer, worker, runtime, "service.change_password", password="Fault-Pass-901")
    assert svc.pending_password is None and "Fault-Pass-901" not in table_dump(database_url)
    converge_step(client, signer, worker, runtime, "service.terminate")
    assert sim.accounts() == []
    with runtime.db.read() as s:
        outcomes = s.execute(select(JobAttempt.outcome)).scalars().all()
    assert "retrying" in outcomes             # the faults did bite, and were recovered from
