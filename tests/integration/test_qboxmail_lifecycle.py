"""Qboxmail services' whole lives through signed hooks, checked in the simulator's native state:
a hosting domain that waits for its ownership record, and an SMTP relay account whose
password is shown once."""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from provisioner.devsetup import dev_products_env
from provisioner.models import Job, JobAttempt, Service
from provisioner.products import load_catalog
from provisioner.reconcile import run_pass
from provisioner.providers.http import HttpClient
from provisioner.providers.qboxmail import DOMAIN_REJECTED
from provisioner.runtime import Runtime
from provisioner.simulators.qboxmail import add_months, check_password, create_app
from provisioner.simulators.server import SimulatorServer
from tests.helpers import StillClock, event_body, sim_state, table_dump

HOSTING_SERVICE, HOSTING_DOMAIN, HOSTING_PRODUCT = "5001", "qbox-customer.example", "50"
RELAY_SERVICE, RELAY_DOMAIN, RELAY_PRODUCT = "5101", "qbox-sender.example", "51"
HOSTING_OPTIONS = {"Plan": "professional", "Total Mailboxes": 5, "Mailbox Quota (GB)": 8}
RELAY_OPTIONS = {"Sending Type": "promotional", "Messages": 20000, "Sender Domains": 2}
FINISHED = ("succeeded", "failed", "skipped")
GIB = 1024 ** 3


@pytest.fixture
def sim_options() -> dict:
    return {}


@pytest.fixture
def sim_clock() -> StillClock:
    return StillClock()


@pytest.fixture
def qbox_sim(sim_options, sim_clock):
    # The dev token, which dev_products_env gives the product configs too. Its delays run
    # on sim_clock, which the tests move.
    server = SimulatorServer(create_app(clock=sim_clock, **sim_options)).start()
    yield server
    server.stop()


@pytest.fixture
def runtime(settings, sandbox_sim, qbox_sim):
    env = dev_products_env({"sandbox": sandbox_sim.url, "qboxmail": qbox_sim.url})
    rt = Runtime(settings, catalog=load_catalog(settings.products_dir, environ=env))
    yield rt
    rt.close()


class Sim:
    def __init__(self, server: SimulatorServer):
        self.url = server.url
        self.sim = server.app.extensions["simulator"]

    def accounts(self) -> list[dict]:
        return sim_state(self)

    def account(self, account_id: str) -> dict:
        [account] = [a for a in self.accounts() if a["id"] == account_id]
        return account

    def calls(self) -> dict[str, int]:
        return requests.get(f"{self.url}/_sim/calls", timeout=5).json()["calls"]

    def faults(self, **faults) -> None:
        requests.post(f"{self.url}/_sim/faults", json=faults, timeout=5).raise_for_status()

    def mutate(self, account_id: str, **changes) -> None:
        requests.post(f"{self.url}/_sim/mutate", json={"account_id": account_id, **changes},
                      timeout=5).raise_for_status()


@pytest.fixture
def sim(qbox_sim) -> Sim:
    return Sim(qbox_sim)


def hosting_body(kind: str, **fields) -> dict:
    return event_body(kind, HOSTING_SERVICE, domain=HOSTING_DOMAIN, product_id=HOSTING_PRODUCT,
                      options=fields.pop("options", HOSTING_OPTIONS), **fields)


def relay_body(kind: str, **fields) -> dict:
    return event_body(kind, RELAY_SERVICE, domain=RELAY_DOMAIN, product_id=RELAY_PRODUCT,
                      options=fields.pop("options", RELAY_OPTIONS), billing_cycle="annually",
                      **{"next_due_date": add_months(dt.date.today(), 12).isoformat(), **fields})


def post(client, signer, body: dict, msg_id: str | None = None) -> dict:
    raw = json.dumps(body)
    r = client.post("/hooks/v1/events", data=raw, headers=signer.headers(raw, msg_id=msg_id))
    assert r.status_code in (200, 202), r.get_json()
    return r.get_json()


def service(runtime, service_id: str) -> Service:
    with runtime.db.read() as s:
        return s.get(Service, service_id)


def jobs(runtime, service_id: str) -> list[Job]:
    with runtime.db.read() as s:
        return list(s.execute(select(Job).where(Job.service_id == service_id).order_by(Job.created_at)).scalars())


def run_jobs(worker, runtime, service_id: str, timeout: float = 10.0) -> Job:
    """Drain until every job of the service has finished (retries and waits run out their delay)."""
    deadline = time.monotonic() + timeout
    while True:
        worker.drain()
        found = jobs(runtime, service_id)
        if all(job.state in FINISHED for job in found):
            return found[-1]
        assert time.monotonic() < deadline, [(j.reason, j.state, j.error_code) for j in found]
        time.sleep(0.05)


def step(client, signer, worker, runtime, body: dict) -> Service:
    post(client, signer, body)
    last = run_jobs(worker, runtime, body["service"]["id"])
    assert last.state == "succeeded", (body["type"], last.error_code, last.error_message)
    return service(runtime, body["service"]["id"])


# --- hosting ------------------------------------------------------------------------------------

def test_hosting_waits_for_its_ownership_record_then_lives_its_life(client, signer, worker, runtime, sim,
                                                                    database_url):
    post(client, signer, hosting_body("service.create"))
    worker.drain()
    [job] = jobs(runtime, HOSTING_SERVICE)
    assert job.state == "retrying" and job.error_code == "upstream_pending"      # waiting, not failing
    svc = service(runtime, HOSTING_SERVICE)
    [domain] = sim.accounts()
    assert svc.upstream_id == domain["id"] and domain["status"] == "pending" and svc.observed_status == "pending"
    assert domain["native"]["status"] == "ownership_check"
    [ownership] = [r for r in svc.observed["dns_records"] if r["purpose"] == "ownership check"]
    assert (ownership["type"], ownership["host"], ownership["value"]) == (
        "A", f'{domain["native"]["possession_a_record"]}.{HOSTING_DOMAIN}', "185.97.217.16")
    assert {"MX", "TXT"} <= {r["type"] for r in svc.observed["dns_records"]}

    sim.mutate(domain["id"], status="active")            # the customer published it; Qboxmail verified
    assert run_jobs(worker, runtime, HOSTING_SERVICE).state == "succeeded"
    svc = service(runtime, HOSTING_SERVICE)
    assert svc.observed_status == "active" and sim.account(svc.upstream_id)["status"] == "active"
    records = svc.observed["dns_records"]
    assert not [r for r in records if r["purpose"] == "ownership check"]
    assert not [r for r in records if r["purpose"] == "DKIM"]         # custom DKIM is the customer's choice
    assert [r["host"] for r in records if r["type"] == "MX"] == [HOSTING_DOMAIN] * 2
    native = sim.account(svc.upstream_id)["native"]
    assert (native["plan"], native["max_email_accounts"], native["max_email_quota"]) == ("professional", 5, 8 * GIB)

    svc = step(client, signer, worker, runtime, hosting_body("service.suspend", suspend_reason="Overdue on Payment"))
    assert sim.account(svc.upstream_id)["native"]["status"] == "disabled" and svc.observed_status == "suspended"
    svc = step(client, signer, worker, runtime, hosting_body("service.unsuspend"))
    assert sim.account(svc.upstream_id)["native"]["status"] == "enabled"

    svc = step(client, signer, worker, runtime, hosting_body(
        "service.change_package", options={**HOSTING_OPTIONS, "Total Mailboxes": 8, "Mailbox Quota (GB)": 16}))
    assert sim.account(svc.upstream_id)["limits"] == {"qboxmail_product": "hosting", "plan": "professional",
                                                      "mailboxes": 8, "mailbox_quota_gb": 16}
    secret = "Qbox-Postmaster-Pass-71"
    svc = step(client, signer, worker, runtime, hosting_body("service.change_password", password=secret))
    assert check_password(sim.sim.domains[svc.upstream_id].postmaster_hash, secret)
    assert svc.pending_password is None and secret not in table_dump(database_url)

    svc = step(client, signer, worker, runtime, hosting_body("service.terminate"))
    assert sim.accounts() == [] and svc.observed_status == "deleted"
    assert [j.state for j in jobs(runtime, HOSTING_SERVICE)] == ["succeeded"] * 6


@pytest.mark.parametrize("sim_options", [{"verification_delay": 0.4}])
def test_a_published_ownership_record_is_found_by_the_polls(client, signer, worker, runtime, sim, sim_clock):
    post(client, signer, hosting_body("service.create"))
    worker.drain()
    [waiting] = jobs(runtime, HOSTING_SERVICE)
    assert waiting.state not in FINISHED                            # the record is not published yet
    assert sim.calls()["domains.dns_ownership_check_sync"] == 1
    sim_clock.now += 0.5                                            # the customer publishes it
    last = run_jobs(worker, runtime, HOSTING_SERVICE)
    assert last.state == "succeeded" and last.attempts == 1        # waiting used up no attempts
    assert service(runtime, HOSTING_SERVICE).observed_status == "active"
    assert sim.calls()["domains.dns_ownership_check_sync"] >= 2    # asked again until the record resolved
    assert len(sim.accounts()) == 1


def test_a_rejected_domain_fails_its_job_with_a_safe_message_and_can_still_be_terminated(
        client, signer, worker, runtime, sim):
    post(client, signer, hosting_body("service.create"))
    worker.drain()
    [domain] = sim.accounts()
    sim.mutate(domain["id"], qboxmail_status="rejected")          # Qboxmail refused the domain
    last = run_jobs(worker, runtime, HOSTING_SERVICE)
    assert (last.state, last.error_code, last.error_message) == (
        "failed", "upstream_validation", DOMAIN_REJECTED)                # at once, not after days of waiting
    assert sim.calls().get("domains.status", 0) == 0               # never asked to enable it

    svc = step(client, signer, worker, runtime, hosting_body("service.terminate"))
    assert sim.accounts() == [] and svc.observed_status == "deleted"


def test_a_pass_shows_a_rejected_domain_as_it_is_and_does_not_fail_it_again(client, signer, worker, runtime,
                                                                           sim):
    post(client, signer, hosting_body("service.create"))
    worker.drain()
    [domain] = sim.accounts()
    sim.mutate(domain["id"], qboxmail_status="rejected")
    assert run_jobs(worker, runtime, HOSTING_SERVICE).state == "failed"
    assert service(runtime, HOSTING_SERVICE).observed_status == "pending"    # what the job last saw

    for _ in range(2):                       # pass after pass: reported, never failed again
        report = run_pass(runtime).report
        assert report["services"]["drift_status"] == [HOSTING_SERVICE]
        assert report["services"]["held_after_failed_job"] == [HOSTING_SERVICE]
        assert report["jobs_queued"] == 0
        assert service(runtime, HOSTING_SERVICE).observed_status == "suspended"   # as Qboxmail shows it
        assert len(jobs(runtime, HOSTING_SERVICE)) == 1

    # Billing acts (here: a new package): the service gets a job again, and its answer.
    post(client, signer, hosting_body("service.change_package",
                                      options={**HOSTING_OPTIONS, "Total Mailboxes": 8}))
    assert run_jobs(worker, runtime, HOSTING_SERVICE).error_message == DOMAIN_REJECTED
    assert len(jobs(runtime, HOSTING_SERVICE)) == 2


# --- relay -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sim_options", [{"activation_delay": 0.3}])
def test_relay_password_is_shown_once_and_kept_nowhere(client, signer, worker, runtime, sim, sim_clock,
                                                       database_url, caplog):
    caplog.set_level(logging.DEBUG, logger="provisioner")
    create = relay_body("service.create")
    first = post(client, signer, create, "msg_qbox_relay")
    assert first["job"]["state"] == "queued" and "secrets" not in first["job"]
    worker.drain()
    [account] = sim.accounts()
    assert account["status"] == "pending"                         # waiting for payment
    assert "secrets" not in post(client, signer, create, "msg_qbox_relay")["job"]      # not finished yet
    sim_clock.now += 0.4                                          # the payment is received
    assert run_jobs(worker, runtime, RELAY_SERVICE).state == "succeeded"

    answer = post(client, signer, create, "msg_qbox_relay")["job"]          # the billing system asks again
    assert answer["state"] == "succeeded"
    password = answer["secrets"]["relay_password"]
    assert check_password(sim.sim.relays[int(account["id"])].password_hash, password)
    assert "secrets" not in post(client, signer, create, "msg_qbox_relay")["job"]      # once only
    svc = service(runtime, RELAY_SERVICE)
    assert svc.upstream_id == account["id"] and svc.observed_status == "active"
    assert svc.limits == {"qboxmail_product": "relay", "relay_type": "promotional", "relay_plan": "prepaid",
                          "relay_messages": 20000, "relay_max_domains": 2}
    native = sim.account(svc.upstream_id)["native"]
    assert (native["type"], native["plan"], native["plan_num_messages"], native["max_domains"]) == (
        "newsletter", "prepaid", 20000, 2)
    assert native["bounce_notification"] == "owner@example.com" and native["description"] == (
        f"{RELAY_DOMAIN} (service {RELAY_SERVICE})")

    svc = step(client, signer, worker, runtime, relay_body("service.suspend"))
    assert sim.account(svc.upstream_id)["native"]["display_status"] == "disabled"
    svc = step(client, signer, worker, runtime, relay_body("service.unsuspend"))
    assert sim.account(svc.upstream_id)["status"] == "active"
    svc = step(client, signer, worker, runtime, relay_body(
        "service.change_package", options={**RELAY_OPTIONS, "Messages": 50000}))
    assert sim.account(svc.upstream_id)["limits"]["relay_messages"] == 50000
    expiry = dt.date.fromisoformat(sim.account(svc.upstream_id)["native"]["plan_expiration_date"])
    svc = step(client, signer, worker, runtime, relay_body(
        "service.renew", next_due_date=add_months(expiry, 12).isoformat()))
    assert sim.account(svc.upstream_id)["native"]["plan_expiration_date"] == add_months(expiry, 12).isoformat()
    assert svc.observed["paid_until"] == add_months(expiry, 12).isoformat()
    svc = step(client, signer, worker, runtime, relay_body("service.terminate"))
    assert sim.accounts() == [] and svc.observed_status == "deleted"

    # In no log record, no table, no stored upstream record, no later answer.
    assert password not in caplog.text
    assert password not in table_dump(database_url)
    assert password not in json.dumps(svc.observed)
    assert "secrets" not in post(client, signer, create, "msg_qbox_relay")["job"]
    assert all(job.reveal_once is None for job in jobs(runtime, RELAY_SERVICE))


def test_a_second_free_relay_for_the_customer_fails_with_a_clear_message(client, signer, worker, runtime, sim,
                                                                         tmp_path, settings, sandbox_sim, qbox_sim):
    # A free relay product next to the shipped ones (a copy of the configs with one more file).
    products = tmp_path / "products"
    products.mkdir()
    for path in Path(settings.products_dir).glob("*.yaml"):
        (products / path.name).write_text(path.read_text())
    (products / "qboxmail-relay-free.yaml").write_text(
        "id: qboxmail-relay-free\nbilling_product_ids: ['52']\nupstream: qboxmail\nlimits:\n"
        "  qboxmail_product: {value: relay}\n  relay_type: {value: transactional}\n  relay_plan: {value: free}\n")
    env = dev_products_env({"sandbox": sandbox_sim.url, "qboxmail": qbox_sim.url})
    runtime.catalog = load_catalog(products, environ=env)
    for service_id in ("5201", "5202"):
        post(client, signer, event_body("service.create", service_id, domain=f"s{service_id}.example",
                                        product_id="52", options={}))
        last = run_jobs(worker, runtime, service_id)
    assert jobs(runtime, "5201")[-1].state == "succeeded"
    assert last.state == "failed" and last.error_code == "upstream_validation" and last.attempts == 1
    assert last.error_message.startswith("Only one free relay account is allowed per customer.")
    assert len(sim.accounts()) == 1


# --- faults ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sim_options", [{"verification_delay": 0, "seed": 11}])
def test_under_faults_never_two_accounts_for_one_service(client, signer, worker, runtime, sim, monkeypatch):
    # Backoff waits between retries only slow the test down; what is retried is still real.
    monkeypatch.setattr(HttpClient, "_sleep", lambda self, seconds: None)
    runtime.settings.job_max_attempts = 100
    sim.faults(error_rate=0.3, latency_ms=100)

    svc = step(client, signer, worker, runtime, hosting_body("service.create"))
    relay_create = relay_body("service.create")
    post(client, signer, relay_create, "msg_qbox_faults")
    assert run_jobs(worker, runtime, RELAY_SERVICE).state == "succeeded"
    assert sorted(a["domain"] for a in sim.accounts()) == sorted([HOSTING_DOMAIN, RELAY_DOMAIN])
    answer = post(client, signer, relay_create, "msg_qbox_faults")["job"]
    relay_id = service(runtime, RELAY_SERVICE).upstream_id
    assert check_password(sim.sim.relays[int(relay_id)].password_hash, answer["secrets"]["relay_password"])

    step(client, signer, worker, runtime, hosting_body("service.suspend"))
    step(client, signer, worker, runtime, relay_body("service.suspend"))
    assert {a["status"] for a in sim.accounts()} == {"suspended"} and len(sim.accounts()) == 2
    step(client, signer, worker, runtime, hosting_body("service.unsuspend"))
    step(client, signer, worker, runtime, hosting_body(
        "service.change_package", options={**HOSTING_OPTIONS, "Total Mailboxes": 9}))
    assert sim.account(svc.upstream_id)["limits"]["mailboxes"] == 9 and len(sim.accounts()) == 2
    step(client, signer, worker, runtime, hosting_body("service.terminate"))
    step(client, signer, worker, runtime, relay_body("service.terminate"))
    assert sim.accounts() == []
    with runtime.db.read() as s:
        outcomes = s.execute(select(JobAttempt.outcome)).scalars().all()
    assert "retrying" in outcomes             # the faults did bite, and were recovered from
