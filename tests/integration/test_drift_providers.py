"""Drift repair on every provider's simulator: change the upstream behind the provisioner's
back with ``/_sim/mutate``, run a reconcile pass, drain the converge jobs it queued, and
check the simulator's own state is repaired and the next pass finds nothing.

Each case creates services of the provider's example product through signed hooks
(billing product ids: sandbox 12, ResellerClub US 20, PolarisMail 30, mailbox.org 40,
Qboxmail hosting 50; see ``product_configs/``). The pass lists every configured
upstream, so the catalog is restricted to the provider under test.
"""
from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from sqlalchemy import select

from provisioner.devsetup import dev_products_env
from provisioner import jobs
from provisioner.models import Job, JobState, Service
from provisioner.products import load_catalog
from provisioner.providers.base import Capability, MailboxSpec
from provisioner.reconcile import collect_usage, run_pass
from provisioner.runtime import Runtime
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer
from tests.helpers import event_body

POSTAL = {"address": "1 Main St", "city": "Berlin", "state": "Berlin", "postcode": "10115",
          "phone": "+49.3012345678"}


@dataclass(frozen=True)
class Case:
    upstream: str                   # name in upstreams.yaml (and of the simulator)
    product_id: str                 # billing product id of the example product
    options: dict[str, Any]
    #: an upstream limits change the product would notice (None: no Capability.LIMITS)
    limits_drift: dict[str, Any] | None
    #: the simulator's API actions one page of ``list_accounts`` calls, once each
    list_actions: tuple[str, ...]
    sim_options: dict[str, Any] = field(default_factory=dict)
    client: dict[str, str] = field(default_factory=dict)
    #: why the listing cannot show a limits change (the pass then cannot see that drift)
    limits_unlisted: str = ""
    #: why the listing carries no usage (a pass then must not store any)
    usage_unlisted: str = ""


CASES = {
    "sandbox": Case("sandbox", "12", {"Total Mailboxes": 5, "Mailbox Quota (GB)": 10}, {"mailboxes": 99},
                    ("accounts.list",)),
    "resellerclub": Case(
        "resellerclub", "20", {"Total Mailboxes": 3}, {"mailboxes": 7},
        # every product line of upstreams.yaml is searched for each page
        ("enterpriseemail/us/search", "enterpriseemail/in/search", "eelite/us/search"), client=POSTAL,
        limits_unlisted="ResellerClub's search.json does not carry an order's account count, so a pass "
                        "cannot see the mailbox limit change (docs/providers/resellerclub.md)"),
    "polarismail": Case(
        "polarismail", "30", {"Total Mailboxes": 5, "Total Enhanced Mailboxes": 1, "Mailbox Quota (GB)": 10,
                              "Total Aliases": 2, "Total Distribution Lists": 1}, None, ("getAllDomains",),
        usage_unlisted="core bug: getAllDomains carries no usage, yet a pass stores zeros over the usage "
                       "the last converge read (reconcile.check_upstream; see the report)"),
    "mailboxorg": Case(
        "mailboxorg", "40", {"Light Mailboxes": 1, "Standard Mailboxes": 2}, {"standard_mailboxes": 9},
        ("account.list",),
        usage_unlisted="core bug: account.list carries no usage, yet a pass stores zeros over the usage "
                       "the last converge read (reconcile.check_upstream; see the report)"),
    "qboxmail": Case("qboxmail", "50", {"Plan": "basic", "Total Mailboxes": 5, "Mailbox Quota (GB)": 8},
                     {"mailboxes": 9}, ("domains.list", "delivery_accounts.list"),
                     sim_options={"verification_delay": 0}),
}


def _available(name: str) -> bool:
    return all(importlib.util.find_spec(f"provisioner.{kind}.{name}") is not None
               for kind in ("providers", "simulators"))


def _params(names, xfail: dict[str, str] | None = None) -> list:
    params = []
    for name in names:
        marks = [pytest.mark.skipif(not _available(name),
                                    reason=f"provisioner.providers.{name} or its simulator does not exist yet")]
        if (xfail or {}).get(name):
            marks.append(pytest.mark.xfail(strict=True, reason=xfail[name]))
        params.append(pytest.param(name, marks=marks))
    return params


PROVIDERS = _params(CASES)


@pytest.fixture(params=PROVIDERS)
def case(request) -> Case:
    return CASES[request.param]


@pytest.fixture
def upstream_sim(case):
    server = SimulatorServer(create_simulator_app(case.upstream, **case.sim_options)).start()
    yield server
    server.stop()


@pytest.fixture
def runtime(settings, case, upstream_sim, sandbox_sim):
    env = dev_products_env({"sandbox": sandbox_sim.url, case.upstream: upstream_sim.url})
    rt = Runtime(settings, catalog=load_catalog(settings.products_dir, environ=env))
    # A pass lists every configured upstream: only this one's simulator runs here.
    rt.catalog.upstreams = {case.upstream: rt.catalog.upstreams[case.upstream]}
    yield rt
    rt.close()


class Sim:
    def __init__(self, server: SimulatorServer):
        self.url = server.url

    def state(self) -> list[dict]:
        return requests.get(f"{self.url}/_sim/state", timeout=5).json()["accounts"]

    def account(self, account_id: str) -> dict | None:
        return next((a for a in self.state() if a["id"] == account_id and a["status"] != "deleted"), None)

    def mutate(self, account_id: str, **changes) -> None:
        response = requests.post(f"{self.url}/_sim/mutate", json={"account_id": account_id, **changes}, timeout=5)
        assert response.status_code == 200, response.text

    def calls(self) -> dict[str, int]:
        return requests.get(f"{self.url}/_sim/calls", timeout=5).json()["calls"]


@pytest.fixture
def sim(upstream_sim) -> Sim:
    return Sim(upstream_sim)


def create(client, signer, case: Case, service_id: str) -> None:
    body = event_body("service.create", service_id, domain=f"drift{service_id}.example.com",
                      product_id=case.product_id, options=case.options)
    body["client"].update(case.client)
    response = signer.post(client, body)
    assert response.status_code == 202, response.get_json()


def settle(worker, runtime, timeout: float = 15.0) -> None:
    """Drain until no job is left to run (an upstream still activating is polled again shortly)."""
    deadline = time.monotonic() + timeout
    while True:
        worker.drain()
        with runtime.db.read() as session:
            open_jobs = session.execute(select(Job.id, Job.state, Job.error_code).where(
                Job.state.not_in(JobState.FINISHED))).all()
        if not open_jobs:
            break
        assert time.monotonic() < deadline, open_jobs
        time.sleep(0.05)
    with runtime.db.read() as session:
        failed = session.execute(select(Job.service_id, Job.error_code, Job.error_message)
                                 .where(Job.state == JobState.FAILED)).all()
    assert not failed, failed


def services(runtime) -> dict[str, Service]:
    with runtime.db.read() as session:
        return {s.id: s for s in session.execute(select(Service)).scalars()}


def test_drift_is_reported_repaired_and_gone_on_the_next_pass(client, signer, worker, runtime, case, sim):
    kinds = ["status", "missing"] + (["limits"] if case.limits_drift and not case.limits_unlisted else [])
    ids = {kind: str(n) for n, kind in enumerate(["steady", *kinds], start=1)}
    for service_id in ids.values():
        create(client, signer, case, service_id)
    settle(worker, runtime)
    before = services(runtime)
    account = {kind: before[sid].upstream_id for kind, sid in ids.items()}
    assert all(account.values()) and len(set(account.values())) == len(ids)
    assert run_pass(runtime).report["counts"] == {}           # in sync to start with

    sim.mutate(account["status"], status="suspended")
    sim.mutate(account["missing"], status="deleted")
    if "limits" in kinds:
        sim.mutate(account["limits"], limits=case.limits_drift)
    assert runtime.provider(case.upstream).supports(Capability.LIMITS) == bool(case.limits_drift)

    report = run_pass(runtime).report
    assert report["services"].get("drift_status") == [ids["status"]]
    assert report["services"].get("drift_missing") == [ids["missing"]]
    if "limits" in kinds:
        assert report["services"].get("drift_limits") == [ids["limits"]]
    assert set(report["counts"]) == {f"drift_{kind}" for kind in kinds}, report
    assert report["jobs_queued"] == len(kinds) and report["errors"] == []
    assert report["orphans"] == []

    settle(worker, runtime)
    after = services(runtime)
    repaired = sim.account(after[ids["status"]].upstream_id)
    assert repaired["status"] == "active"
    recreated = after[ids["missing"]].upstream_id
    assert sim.account(recreated) is not None and sim.account(recreated)["status"] == "active"
    if "limits" in kinds:
        limits = sim.account(after[ids["limits"]].upstream_id)["limits"]
        for key, value in case.limits_drift.items():
            assert limits[key] == after[ids["limits"]].limits[key] != value
    assert sim.account(account["steady"])["status"] == "active"
    assert run_pass(runtime).report["counts"] == {}


@pytest.mark.parametrize("case", _params(
    [name for name, c in CASES.items() if c.limits_unlisted],
    xfail={name: c.limits_unlisted for name, c in CASES.items()}), indirect=True)
def test_limits_drift_the_listing_cannot_show(client, signer, worker, runtime, case, sim):
    create(client, signer, case, "1")
    settle(worker, runtime)
    sim.mutate(services(runtime)["1"].upstream_id, limits=case.limits_drift)
    assert run_pass(runtime).report["services"].get("drift_limits") == ["1"]


def test_a_pass_makes_one_list_call_per_page_not_one_per_service(client, signer, worker, runtime, case, sim):
    n, page_size = 9, 4
    for service_id in range(1, n + 1):
        create(client, signer, case, str(service_id))
    settle(worker, runtime)
    runtime.settings.reconcile_page_size = page_size
    before = sim.calls()
    report = run_pass(runtime).report
    made = {action: count - before.get(action, 0) for action, count in sim.calls().items()
            if count != before.get(action, 0)}
    pages = math.ceil(n / page_size)
    assert report["counts"] == {} and report["errors"] == []
    assert report["calls"] == {case.upstream: pages}
    # Each page: the provider's list request(s), once; no call about any one service.
    assert made == {action: pages for action in case.list_actions}


def _needs_mailboxes(runtime, case: Case) -> None:
    if not runtime.provider(case.upstream).supports(Capability.MAILBOXES):
        pytest.skip(f"{case.upstream}: no mailboxes to count")


def _mailbox(runtime, case: Case, local_part: str) -> tuple[str, dict[str, int]]:
    """Add a mailbox upstream (as the customer would); the account id and its usage upstream."""
    provider = runtime.provider(case.upstream)
    account = services(runtime)["1"].upstream_id
    provider.create_mailbox(account, MailboxSpec(local_part=local_part, password="Counted-Pw-123456!", name="C"))
    return account, provider.get_account(account).usage.as_dict()


COUNTED = ("mailboxes", "aliases", "distribution_lists")


@pytest.mark.parametrize("case", _params(CASES), indirect=True)
def test_a_pass_never_overwrites_usage_with_what_it_did_not_read(client, signer, worker, runtime, case, sim):
    _needs_mailboxes(runtime, case)
    create(client, signer, case, "1")
    settle(worker, runtime)
    _, upstream = _mailbox(runtime, case, "counted")
    with runtime.db.transaction() as session:            # a converge job reads the usage...
        jobs.enqueue(session, "1", reason="test", max_attempts=3)
    settle(worker, runtime)
    assert services(runtime)["1"].usage["mailboxes"] == upstream["mailboxes"] == 1
    assert run_pass(runtime).report["counts"] == {}       # ...and a pass must not lose it
    stored = services(runtime)["1"].usage
    assert {key: stored.get(key) for key in COUNTED} == {key: upstream.get(key) for key in COUNTED}


@pytest.mark.parametrize("case", _params(CASES), indirect=True)
def test_the_scheduler_collects_usage_changed_since_the_last_converge(client, signer, worker, runtime, case, sim):
    _needs_mailboxes(runtime, case)
    create(client, signer, case, "1")
    settle(worker, runtime)
    _, upstream = _mailbox(runtime, case, "counted")
    assert upstream["mailboxes"] == 1
    report = run_pass(runtime).report
    assert report["counts"] == {}
    if runtime.provider(case.upstream).lists_usage:
        assert report["usage_updated"] == 1                 # from the pass's own listing
    else:
        assert report["usage_updated"] == 0 and collect_usage(runtime) == 1   # the usage tick
    stored = services(runtime)["1"].usage
    assert {key: stored.get(key) for key in COUNTED} == {key: upstream.get(key) for key in COUNTED}
