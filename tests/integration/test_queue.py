"""The durable job queue on a real database (SQLite, or PostgreSQL in CI)."""
from __future__ import annotations

import datetime as dt
import random
import threading
import time

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from provisioner import jobs
from provisioner.db import utcnow
from provisioner.jobs import Outcome, backoff_delay
from provisioner.lease import Lease
from provisioner.models import Job, JobAttempt, Service
from provisioner.devsetup import dev_products_env
from provisioner.products import load_catalog
from provisioner.runtime import Runtime
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer
from provisioner.worker import Worker
from tests.conftest import PG_URL
from tests.helpers import StillClock, event_body, sim_state


def _job(runtime, job_id) -> Job:
    with runtime.db.read() as s:
        return s.get(Job, job_id)


def _attempts(runtime, job_id) -> list[JobAttempt]:
    with runtime.db.read() as s:
        return list(s.execute(select(JobAttempt).where(JobAttempt.job_id == job_id)
                              .order_by(JobAttempt.id)).scalars())


def _finish(runtime, claim, outcome):
    return jobs.finish(runtime.db, claim, outcome, backoff_base=0.01, backoff_cap=0.05, pending_timeout=60)


def test_backoff_grows_exponentially_with_bounded_jitter():
    rng = random.Random(7)
    for attempt, full in [(1, 2), (2, 4), (3, 8), (6, 64), (12, 300)]:
        delays = [backoff_delay(attempt, 2, 300, rng) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_one_job_per_service_runs_at_a_time(client, signer, runtime):
    signer.post(client, event_body("service.create", service_id="1"))
    signer.post(client, event_body("service.suspend", service_id="1"))
    signer.post(client, event_body("service.create", service_id="2", domain="two.example"))
    first = jobs.claim(runtime.db, "w1", 30)
    second = jobs.claim(runtime.db, "w2", 30)
    assert first.service_id == "1" and second.service_id == "2"
    assert jobs.claim(runtime.db, "w3", 30) is None  # service 1's next job waits for the first
    assert _finish(runtime, first, Outcome("succeeded")) == "succeeded"
    third = jobs.claim(runtime.db, "w3", 30)
    assert third.service_id == "1"


def test_jobs_of_one_service_run_in_order(client, signer, runtime):
    now = dt.datetime.now(dt.timezone.utc)
    ids = [signer.post(client, event_body(kind, occurred_at=now + dt.timedelta(seconds=i))).get_json()["job"]["id"]
           for i, kind in enumerate(["service.create", "service.suspend", "service.unsuspend"])]
    order = []
    while (claim := jobs.claim(runtime.db, "w", 30)) is not None:
        order.append(claim.job_id)
        _finish(runtime, claim, Outcome("succeeded"))
    assert order == ids


def test_retryable_errors_back_off_then_fail_when_attempts_run_out(client, signer, runtime):
    job_id = signer.post(client, event_body("service.create")).get_json()["job"]["id"]
    with runtime.db.transaction() as s:
        s.get(Job, job_id).max_attempts = 3
    for attempt in (1, 2, 3):
        claim = jobs.claim(runtime.db, "w", 30, now=utcnow() + dt.timedelta(seconds=attempt))
        assert claim is not None and claim.attempt == attempt
        state = _finish(runtime, claim, Outcome("retry", "upstream_unavailable", "try later", "HTTP 503"))
        job = _job(runtime, job_id)
        if attempt < 3:
            assert state == "retrying" and job.run_after > utcnow() - dt.timedelta(seconds=1)
    assert state == "failed"
    attempts = _attempts(runtime, job_id)
    assert [a.outcome for a in attempts] == ["retrying", "retrying", "failed"]
    assert all(a.error_message == "try later" for a in attempts)


def test_a_retrying_job_waits_for_its_backoff(client, signer, runtime):
    signer.post(client, event_body("service.create"))
    claim = jobs.claim(runtime.db, "w", 30)
    jobs.finish(runtime.db, claim, Outcome("retry", "x", "y"), backoff_base=60, backoff_cap=60, pending_timeout=60)
    assert jobs.claim(runtime.db, "w", 30) is None
    assert jobs.claim(runtime.db, "w", 30, now=utcnow() + dt.timedelta(seconds=61)) is not None


def test_expired_lease_is_swept_and_the_late_result_discarded(client, signer, runtime):
    job_id = signer.post(client, event_body("service.create")).get_json()["job"]["id"]
    claim = jobs.claim(runtime.db, "dead-worker", 0.01)
    time.sleep(0.05)
    assert jobs.sweep_expired(runtime.db) == 1
    job = _job(runtime, job_id)
    assert job.state == "retrying" and job.error_code == "worker_lost"
    assert not jobs.heartbeat(runtime.db, claim, 30)
    assert _finish(runtime, claim, Outcome("succeeded")) is None  # the lease is gone
    rescued = jobs.claim(runtime.db, "live-worker", 30)
    assert rescued.job_id == job_id and rescued.attempt == 2
    assert _finish(runtime, rescued, Outcome("succeeded")) == "succeeded"
    assert [a.outcome for a in _attempts(runtime, job_id)] == ["lost", "succeeded"]


def test_a_runner_whose_lease_ran_out_sends_nothing_upstream(client, signer, runtime, sandbox_sim, monkeypatch):
    """A runner cut off from the database cannot renew its lease; once too little of it is
    left (here: claimed a lease ago), its attempt stops before any upstream request, so
    it can never act beside the runner the job is handed to."""
    job_id = signer.post(client, event_body("service.create")).get_json()["job"]["id"]
    before = requests.get(f"{sandbox_sim.url}/_sim/calls", timeout=5).json()["total"]
    lease_seconds = runtime.settings.job_lease_seconds
    monkeypatch.setattr("provisioner.worker.Lease",
                        lambda seconds, age=0.0: Lease(seconds, age=age + lease_seconds))
    Worker(runtime).run_once()
    assert requests.get(f"{sandbox_sim.url}/_sim/calls", timeout=5).json()["total"] == before
    job = _job(runtime, job_id)
    assert (job.state, job.error_code) == ("retrying", "lease_expiring")
    monkeypatch.undo()
    time.sleep(0.1)                                  # its backoff (at most 0.05 s here)
    assert Worker(runtime).drain() >= 1 and _job(runtime, job_id).state == "succeeded"


def test_heartbeat_keeps_a_lease_alive(client, signer, runtime):
    signer.post(client, event_body("service.create"))
    claim = jobs.claim(runtime.db, "w", 0.2)
    for _ in range(3):
        time.sleep(0.1)
        assert jobs.heartbeat(runtime.db, claim, 0.2)
    assert jobs.sweep_expired(runtime.db) == 0


def test_permanent_errors_fail_at_once(settings, database_url, client, signer):
    # A simulator that wants an API key the product config does not send: 401 -> AuthError.
    server = SimulatorServer(create_simulator_app("sandbox", api_key="right-key")).start()
    try:
        runtime = Runtime(settings, catalog=load_catalog(settings.products_dir, environ=dev_products_env({"sandbox": server.url})))
        job_id = signer.post(client, event_body("service.create")).get_json()["job"]["id"]
        Worker(runtime).drain()
        job = _job(runtime, job_id)
        assert job.state == "failed" and job.attempts == 1
        assert job.error_code == "upstream_auth"
        assert "credentials" in job.error_message and "right-key" not in job.error_message
        runtime.close()
    finally:
        server.stop()


def test_asynchronous_activation_waits_without_using_attempts(settings, client, signer):
    clock = StillClock()
    server = SimulatorServer(create_simulator_app("sandbox", activation_delay=0.4, clock=clock)).start()
    try:
        runtime = Runtime(settings, catalog=load_catalog(settings.products_dir, environ=dev_products_env({"sandbox": server.url})))
        runtime.settings.job_backoff_base = 0.1
        job_id = signer.post(client, event_body("service.create", options={"Total Mailboxes": 3})).get_json()["job"]["id"]
        worker = Worker(runtime)
        worker.drain()
        job = _job(runtime, job_id)
        assert job.state == "retrying" and job.attempts == 0 and job.error_code == "upstream_pending"
        with runtime.db.read() as s:
            assert s.get(Service, "1042").observed_status == "pending"
        clock.now += 0.5                                      # the upstream finishes the account
        deadline = time.monotonic() + 5
        while _job(runtime, job_id).state != "succeeded" and time.monotonic() < deadline:
            worker.drain()
            time.sleep(0.05)
        job = _job(runtime, job_id)
        assert job.state == "succeeded" and job.attempts == 1
        assert [a["status"] for a in sim_state(server)] == ["active"]
        runtime.close()
    finally:
        server.stop()


def test_concurrent_workers_never_run_two_jobs_of_one_service(client, signer, runtime):
    for service in range(6):
        for kind in ("service.create", "service.suspend", "service.unsuspend"):
            signer.post(client, event_body(kind, service_id=str(service), domain=f"d{service}.example"))
    running: set[str] = set()
    overlaps: list[str] = []
    guard = threading.Lock()

    def work(name: str) -> None:
        while (claim := jobs.claim(runtime.db, name, 30)) is not None:
            with guard:
                if claim.service_id in running:
                    overlaps.append(claim.service_id)
                running.add(claim.service_id)
            time.sleep(0.01)
            with guard:
                running.discard(claim.service_id)
            _finish(runtime, claim, Outcome("succeeded"))

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert overlaps == []
    with runtime.db.read() as s:
        assert set(s.execute(select(Job.state)).scalars()) == {"succeeded"}


def test_worker_threads_converge_many_services(client, signer, runtime, sandbox_sim):
    for service in range(20):
        signer.post(client, event_body("service.create", service_id=str(service), domain=f"d{service}.example"))
    worker = Worker(runtime, concurrency=3)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with runtime.db.read() as s:
                if set(s.execute(select(Job.state)).scalars()) == {"succeeded"}:
                    break
            time.sleep(0.05)
    finally:
        worker.stop()
    accounts = sim_state(sandbox_sim)
    assert sorted(int(a["native"]["external_id"]) for a in accounts) == list(range(20))
    assert requests.get(f"{sandbox_sim.url}/_sim/calls", timeout=5).json()["calls"]["accounts.create"] == 20


def _load_queued(runtime, services: int, jobs_each: int = 1) -> None:
    """Services with queued jobs, written directly (intake is not what is under test)."""
    now = utcnow() - dt.timedelta(seconds=1)
    with runtime.db.transaction() as s:
        for n in range(services):
            s.add(Service(id=f"s{n}", billing_product_id="12", product_key="sandbox-mail", upstream="sandbox",
                          domain=f"s{n}.example", client_id="1", desired_status="active"))
        s.flush()
        for n in range(services):
            for k in range(jobs_each):
                s.add(Job(service_id=f"s{n}", reason="test", state="queued", attempts=0, max_attempts=3,
                          run_after=now + dt.timedelta(microseconds=k), created_at=now + dt.timedelta(microseconds=k)))


def test_concurrent_claims_never_take_one_job_twice(runtime):
    _load_queued(runtime, services=60, jobs_each=3)
    claimed: list[tuple[str, int]] = []
    running: set[str] = set()
    overlaps: list[str] = []
    guard = threading.Lock()
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            while (claim := jobs.claim(runtime.db, name, 30)) is not None:
                with guard:
                    claimed.append((claim.job_id, claim.attempt))
                    if claim.service_id in running:
                        overlaps.append(claim.service_id)
                    running.add(claim.service_id)
                with guard:
                    running.discard(claim.service_id)
                assert _finish(runtime, claim, Outcome("succeeded")) == "succeeded"
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert overlaps == []
    assert len(claimed) == 180 and len(set(claimed)) == 180  # every job once, at its first attempt
    assert {attempt for _, attempt in claimed} == {1}
    with runtime.db.read() as s:
        assert set(s.execute(select(Job.state)).scalars()) == {"succeeded"}
        assert s.execute(select(func.count()).select_from(JobAttempt)
                         .where(JobAttempt.outcome == "succeeded")).scalar() == 180


def test_the_database_refuses_a_second_running_job_of_one_service(runtime):
    _load_queued(runtime, services=1, jobs_each=2)
    with pytest.raises(IntegrityError):
        with runtime.db.transaction() as s:
            for job in s.execute(select(Job)).scalars():
                job.state = "running"


def test_an_idle_worker_stops_at_once_whatever_its_poll_interval(runtime):
    runtime.settings.worker_poll_interval = 30
    worker = Worker(runtime, concurrency=2)
    worker.start()
    time.sleep(0.3)  # both runners found nothing and sleep
    started = time.monotonic()
    worker.stop(timeout=10)
    assert time.monotonic() - started < 5
    assert not any(t.is_alive() for t in worker._threads)


@pytest.mark.skipif(not PG_URL, reason="LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll")
def test_a_job_queued_while_workers_idle_starts_long_before_their_next_poll(client, signer, runtime):
    runtime.settings.worker_poll_interval = 30
    worker = Worker(runtime, concurrency=2)
    worker.start()
    try:
        assert worker.listening.wait(10), "the worker never started listening"
        time.sleep(0.3)  # the runners found nothing and sleep for 30 s
        queued = time.monotonic()
        job_id = signer.post(client, event_body("service.create")).get_json()["job"]["id"]
        while _job(runtime, job_id).started_at is None and time.monotonic() - queued < 10:
            time.sleep(0.02)
        assert time.monotonic() - queued < 5, "the job waited for the poll: no wake-up on NOTIFY"
    finally:
        worker.stop()


@pytest.mark.skipif(not PG_URL, reason="LISTEN/NOTIFY is PostgreSQL's")
def test_without_the_listener_an_idle_worker_waits_for_its_poll(client, signer, runtime):
    """The other side of the test above: what the wake-up saves (so that one can fail)."""
    runtime.settings.worker_poll_interval = 3
    worker = Worker(runtime, concurrency=1, listen=False)
    worker.start()
    try:
        time.sleep(0.3)
        queued = time.monotonic()
        job_id = signer.post(client, event_body("service.create")).get_json()["job"]["id"]
        time.sleep(1)
        assert _job(runtime, job_id).started_at is None
        while _job(runtime, job_id).started_at is None and time.monotonic() - queued < 10:
            time.sleep(0.05)
        assert _job(runtime, job_id).started_at is not None  # the poll still finds it
    finally:
        worker.stop()


def test_a_retry_during_a_wait_for_activation_keeps_when_the_wait_began(client, signer, runtime):
    job_id = signer.post(client, event_body("service.create")).get_json()["job"]["id"]
    claim = jobs.claim(runtime.db, "w", 30)
    assert _finish(runtime, claim, Outcome("pending", "upstream_pending", "wait")) == "retrying"
    began = _job(runtime, job_id).pending_since
    assert began is not None and _job(runtime, job_id).attempts == 0
    claim = jobs.claim(runtime.db, "w", 30, now=utcnow() + dt.timedelta(seconds=400))
    assert _finish(runtime, claim, Outcome("retry", "upstream_unavailable", "later")) == "retrying"
    job = _job(runtime, job_id)
    assert job.pending_since == began and job.attempts == 1
    assert [a.outcome for a in _attempts(runtime, job_id)] == ["pending", "retrying"]
