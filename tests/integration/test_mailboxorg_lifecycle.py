"""A mailbox.org service's whole life through signed hooks, checked in the simulator's native state."""
from __future__ import annotations

import threading
import time

import pytest
import requests
from sqlalchemy import select

from provisioner.devsetup import dev_products_env
from provisioner.models import Job, JobAttempt, Service
from provisioner.products import load_catalog
from provisioner.providers.http import HttpClient
from provisioner.runtime import Runtime
from provisioner.simulators.mailboxorg import check_password
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer
from tests.helpers import event_body, sim_state, table_dump

SERVICE, DOMAIN, PRODUCT = "4001", "mbo-customer.example", "40"
ACCOUNT = f"prov-{SERVICE}"
OPTIONS = {"Light Mailboxes": 1, "Standard Mailboxes": 2, "Premium Mailboxes": 0, "Mailing Lists": 1,
           "Account Plan": "Profi"}
FINISHED = ("succeeded", "failed", "skipped")
TAKEN = "someone-elses.example"
DEV_USER, DEV_PASSWORD = "dev-reseller", "dev-mailboxorg-password"


class JumpingClock:
    """Wall-clock time that leaps past the session lifetime every ``every``-th reading
    (0: never), so sessions expire in the middle of converge runs."""

    def __init__(self, every: int = 0, leap: float = 1201.0):
        self.every, self.leap = every, leap
        self.offset, self.readings = 0.0, 0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            self.readings += 1
            if self.every and self.readings % self.every == 0:
                self.offset += self.leap
            return time.time() + self.offset


@pytest.fixture
def clock() -> JumpingClock:
    return JumpingClock()


@pytest.fixture
def mbo_sim(clock):
    # The dev credentials, which dev_products_env gives the product configs too.
    server = SimulatorServer(create_simulator_app("mailboxorg", taken_domains=[TAKEN], clock=clock)).start()
    yield server
    server.stop()


@pytest.fixture
def runtime(settings, sandbox_sim, mbo_sim):
    env = dev_products_env({"sandbox": sandbox_sim.url, "mailboxorg": mbo_sim.url})
    rt = Runtime(settings, catalog=load_catalog(settings.products_dir, environ=env))
    yield rt
    rt.close()


class Sim:
    def __init__(self, server: SimulatorServer):
        self.url = server.url
        self.sim = server.app.extensions["simulator"]
        self.rpc_auths = 0

    def accounts(self) -> list[dict]:
        return sim_state(self)

    def live(self) -> list[dict]:
        return [a for a in self.accounts() if a["status"] != "deleted"]

    def only(self) -> dict:
        [account] = self.accounts()
        return account

    def calls(self) -> dict[str, int]:
        return requests.get(f"{self.url}/_sim/calls", timeout=5).json()["calls"]

    def faults(self, **faults) -> None:
        requests.post(f"{self.url}/_sim/faults", json=faults, timeout=5).raise_for_status()

    def rpc(self, method: str, login: tuple[str, str] = (DEV_USER, DEV_PASSWORD), **params) -> object:
        """What the reseller (or, with the customer's ``login``, the customer) does in
        mailbox.org's own dashboard."""
        def call(name, args, session=None):
            body = requests.post(f"{self.url}/v1/", json={"jsonrpc": "2.0", "id": 1, "method": name,
                                                          "params": args},
                                 headers={"HPLS-AUTH": session} if session else {}, timeout=5).json()
            assert "result" in body, body
            return body["result"]
        self.rpc_auths += 1
        session = call("auth", {"user": login[0], "pass": login[1]})["session"]
        return call(method, params, session)

    def password_is(self, account: str, password: str) -> bool:
        with self.sim.lock:
            return check_password(self.sim.accounts[account].password_hash, password)


@pytest.fixture
def sim(mbo_sim) -> Sim:
    return Sim(mbo_sim)


def send(client, signer, kind: str, *, domain: str = DOMAIN, options: dict | None = None,
         expect: int | None = None, **fields):
    body = event_body(kind, SERVICE, domain=domain, product_id=PRODUCT,
                      options=OPTIONS if options is None else options, **fields)
    r = signer.post(client, body)
    assert r.status_code == expect if expect is not None else r.status_code in (200, 202), r.get_json()
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
        time.sleep(0.02)


def converge_step(client, signer, worker, runtime, kind: str, **fields) -> Service:
    send(client, signer, kind, **fields)
    run_jobs(worker, runtime)
    last = jobs(runtime)[-1]
    assert last.state == "succeeded", (kind, last.error_code, last.error_message)
    return service(runtime)


def restrictions(account: dict) -> tuple[dict, int, str]:
    native = account["native"]
    return native["tarifflimits"], native["max_mailinglist"], native["plan"]


def test_full_lifecycle_through_signed_hooks(client, signer, worker, runtime, sim, database_url):
    svc = converge_step(client, signer, worker, runtime, "service.create")
    account = sim.only()
    assert account["id"] == svc.upstream_id == ACCOUNT and account["domain"] == DOMAIN
    assert account["status"] == "active" and account["native"]["status"] == "aktiv"
    assert [d["domain"] for d in account["native"]["domains"]] == [DOMAIN]
    assert restrictions(account) == ({"light": 1, "standard": 2, "premium": 0}, 1, "profi")
    assert account["native"]["memo"] == f"provisioner service {SERVICE}"
    assert svc.limits == {"light_mailboxes": 1, "standard_mailboxes": 2, "premium_mailboxes": 0,
                          "mailing_lists": 1, "account_plan": "profi"}
    assert svc.observed_status == "active" and svc.usage["mailboxes"] == 0

    svc = converge_step(client, signer, worker, runtime, "service.suspend", suspend_reason="Overdue on Payment")
    # account.set has no status: the note in the memo says it, and the mailboxes are off
    assert sim.only()["native"]["status"] == "aktiv" and sim.only()["status"] == "suspended"
    assert sim.only()["native"]["memo"] == f"provisioner service {SERVICE}; suspended"
    assert svc.observed_status == "suspended"
    svc = converge_step(client, signer, worker, runtime, "service.unsuspend")
    assert sim.only()["native"]["memo"] == f"provisioner service {SERVICE}" and svc.observed_status == "active"

    # The customer makes two Standard mailboxes in mailbox.org's own admin, logged in as the account.
    sim.rpc("account.set", account=ACCOUNT, password="Customer-Pass-1")
    for name in ("ada", "bob"):
        sim.rpc("mail.add", login=(ACCOUNT, "Customer-Pass-1"), mail=f"{name}@{DOMAIN}", password="Mailbox-Pass-1",
                plan="standard", first_name=name.title(), last_name="Example", inboxsave=True, forwards=[])
    up = {**OPTIONS, "Standard Mailboxes": 4, "Premium Mailboxes": 1, "Mailing Lists": 3, "Account Plan": "basic"}
    svc = converge_step(client, signer, worker, runtime, "service.change_package", options=up)
    assert restrictions(sim.only()) == ({"light": 1, "standard": 4, "premium": 1}, 3, "basic")
    assert svc.usage["standard_mailboxes"] == 2 and svc.usage["mailboxes"] == 2
    down = {**OPTIONS, "Standard Mailboxes": 2, "Light Mailboxes": 0, "Account Plan": "reseller"}
    svc = converge_step(client, signer, worker, runtime, "service.change_package", options=down)
    assert restrictions(sim.only()) == ({"light": 0, "standard": 2, "premium": 0}, 1, "reseller")
    assert svc.limits["standard_mailboxes"] == 2 and len(sim.only()["mailboxes"]) == 2

    secret = "Mbo-Admin-Secret-4471"
    svc = converge_step(client, signer, worker, runtime, "service.change_password", password=secret)
    assert sim.password_is(ACCOUNT, secret)
    assert svc.pending_password is None and secret not in table_dump(database_url)
    assert secret not in str(sim.accounts())

    svc = converge_step(client, signer, worker, runtime, "service.terminate")
    account = sim.only()
    assert account["status"] == "deleted" and account["native"]["status"] == "deleted"
    assert account["native"]["domains"] == [] and account["mailboxes"] == []
    assert svc.observed_status == "deleted"
    assert [j.state for j in jobs(runtime)] == ["succeeded"] * 7
    assert sim.calls()["auth"] - sim.rpc_auths == 1               # one session for the whole run


def test_create_adopts_an_account_the_reseller_already_made(client, signer, worker, runtime, sim):
    sim.rpc("account.add", account=ACCOUNT, password="Dashboard-Pass-1", plan="reseller",
            tarifflimits={"standard": 5})
    sim.rpc("domain.add", account=ACCOUNT, domain=DOMAIN, password="Domain-Pass-1")
    svc = converge_step(client, signer, worker, runtime, "service.create")
    assert svc.upstream_id == ACCOUNT and sim.calls()["account.add"] == 1        # the dashboard's own
    account = sim.only()
    assert account["domain"] == DOMAIN and restrictions(account) == ({"light": 1, "standard": 2, "premium": 0},
                                                                     1, "profi")
    with runtime.db.read() as s:
        details = s.execute(select(JobAttempt.detail)).scalars().all()
    assert details == ["adopt, set_limits"]


def test_a_domain_used_by_another_customer_fails_with_a_safe_message(client, signer, worker, runtime, sim):
    send(client, signer, "service.create", domain=TAKEN)
    run_jobs(worker, runtime)
    [job] = jobs(runtime)
    assert job.state == "failed" and job.error_code == "upstream_conflict" and job.attempts == 1
    assert job.error_message == ("This domain is already registered with the e-mail platform "
                                 "under another account.")
    assert sim.live() == []                  # the account made for it was removed again


def test_a_create_cut_short_then_terminated_leaves_no_account_behind(client, signer, worker, runtime, sim):
    """account.add went through, domain.add failed, and billing terminated before the
    retry: the half-made account is removed, not left behind (found by the chaos run)."""
    sim.faults(error_rate=1, only_actions=["domain.add"])
    send(client, signer, "service.create")
    assert worker.run_once()                 # one attempt: the account is made, its domain is not
    assert [(a["id"], a["domain"], a["status"]) for a in sim.accounts()] == [(ACCOUNT, None, "active")]
    assert [j.state for j in jobs(runtime)] == ["retrying"]
    send(client, signer, "service.terminate")
    sim.faults(reset=True)
    run_jobs(worker, runtime)
    assert [(a["id"], a["status"]) for a in sim.accounts()] == [(ACCOUNT, "deleted")]
    assert [j.state for j in jobs(runtime)] == ["succeeded", "succeeded"]
    assert service(runtime).observed_status == "deleted"


def test_lifecycle_with_faults_and_expiring_sessions_never_makes_two_accounts(
        client, signer, worker, runtime, sim, clock, database_url, monkeypatch):
    # Backoff waits between retries only slow the test down; what is retried is still real.
    monkeypatch.setattr(HttpClient, "_sleep", lambda self, seconds: None)
    runtime.settings.job_max_attempts = 100
    sim.faults(error_rate=0.3, latency_ms=100, seed=7)
    clock.every = 15                         # sessions die every few calls, mid-run

    converge_step(client, signer, worker, runtime, "service.create")
    assert [a["id"] for a in sim.accounts()] == [ACCOUNT] and sim.only()["domain"] == DOMAIN
    converge_step(client, signer, worker, runtime, "service.suspend")
    assert sim.only()["status"] == "suspended"
    converge_step(client, signer, worker, runtime, "service.unsuspend")
    assert sim.only()["status"] == "active"
    svc = converge_step(client, signer, worker, runtime, "service.change_package",
                        options={**OPTIONS, "Premium Mailboxes": 3})
    assert restrictions(sim.only())[0] == {"light": 1, "standard": 2, "premium": 3}
    assert svc.limits["premium_mailboxes"] == 3 and len(sim.accounts()) == 1
    svc = converge_step(client, signer, worker, runtime, "service.change_password", password="Fault-Pass-901")
    assert sim.password_is(ACCOUNT, "Fault-Pass-901")
    assert svc.pending_password is None and "Fault-Pass-901" not in table_dump(database_url)
    converge_step(client, signer, worker, runtime, "service.terminate")
    assert [(a["id"], a["status"]) for a in sim.accounts()] == [(ACCOUNT, "deleted")]
    with runtime.db.read() as s:
        outcomes = s.execute(select(JobAttempt.outcome)).scalars().all()
    assert "retrying" in outcomes             # the faults did bite, and were recovered from
    calls = sim.calls()
    assert calls["auth"] > 2                  # expired sessions were renewed
