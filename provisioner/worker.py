"""The job runner: threads that claim converge jobs, run them and record the outcome.

Each running job's lease is renewed by one heartbeat thread; the scheduler
(``provisioner.scheduler``) sweeps leases of workers that died. Stopping lets
running jobs finish; a job cut short by a crash is rescued by the sweeper.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Callable

from sqlalchemy import or_, select

from . import jobs
from .db import error_summary, is_unavailable, utcnow
from .jobs import Claim, Outcome
from .lifecycle import converge, record_observation
from .metrics import JOB_DURATION
from .models import DesiredStatus, Service
from .notifications import notify_job_outcome
from .providers.errors import Pending, ProviderError
from .lease import Lease, holding
from .runtime import Runtime
from .wakeup import Listener, Wakeup

log = logging.getLogger("provisioner.worker")


def execute(runtime: Runtime, claim: Claim) -> Outcome:
    """Run one attempt of a converge job; never raises."""
    db = runtime.db
    try:
        with db.transaction() as session:
            service = session.get(Service, claim.service_id)
        provider = runtime.provider(service.upstream)

        def on_account(account) -> None:
            with db.transaction() as session:
                session.get(Service, claim.service_id).upstream_id = account.id
                if account.one_time_secrets:
                    jobs.keep_secrets(session, claim.job_id,
                                      runtime.box.encrypt(json.dumps(account.one_time_secrets)))

        result = converge(provider, service, runtime.box, on_account, lambda account_id: held_elsewhere(
            runtime, service, account_id))
        with db.transaction() as session:
            record_observation(session.get(Service, claim.service_id, with_for_update=True), result)
        detail = ", ".join(result.actions) or "no change"
        if result.pending:
            return Outcome("pending", "upstream_pending", Pending.safe_message,
                           f"{detail}; waiting for upstream activation", retry_after=_pending_poll(runtime))
        return Outcome("succeeded", detail=detail)
    except Pending as exc:
        return Outcome("pending", exc.code, exc.safe_message, exc.message, retry_after=exc.retry_after)
    except ProviderError as exc:
        return Outcome("retry" if exc.retryable else "failed", exc.code, exc.safe_message, exc.message,
                       retry_after=getattr(exc, "retry_after", None))
    except Exception as exc:  # a bug or a database outage: retry, and tell operators why
        if is_unavailable(exc):
            log.warning("job %s: database unavailable (%s)", claim.job_id, error_summary(exc))
        else:
            log.exception("job %s: unexpected error", claim.job_id)
        code, message = jobs.INTERNAL_ERROR
        return Outcome("retry", code, message, f"{type(exc).__name__}")


def held_elsewhere(runtime: Runtime, service: Service, account_id: str) -> bool:
    """Another service (of any billing source) holds upstream account ``account_id``."""
    with runtime.db.read() as session:
        return session.execute(select(Service.id).where(
            Service.upstream == service.upstream, Service.upstream_id == account_id, Service.id != service.id,
            or_(Service.desired_status != DesiredStatus.TERMINATED, Service.observed_status != "deleted"),
        ).limit(1)).first() is not None


def notify_outcome(runtime: Runtime, session, job) -> None:
    """Tell the billing system how a job ended (same transaction as the outcome)."""
    notify_job_outcome(session, runtime, job)


OUTAGE_BACKOFF_CAP = 5.0   # seconds between a job runner's tries while the database is away


def outage_backoff(rounds: int) -> float:
    """0.25 s, 0.5 s, 1 s ... up to OUTAGE_BACKOFF_CAP: quick to notice a database that
    is back, without hammering one that is not."""
    return min(OUTAGE_BACKOFF_CAP, 0.25 * 2 ** max(0, rounds - 1))


def _pending_poll(runtime: Runtime) -> float:
    return min(30.0, max(0.2, runtime.settings.job_backoff_base))


class Worker:
    def __init__(self, runtime: Runtime, concurrency: int = 2, name: str | None = None,
                 execute: Callable[[Runtime, Claim], Outcome] = execute, listen: bool = True):
        self.runtime = runtime
        self.execute = execute  # what one attempt runs (benchmarks swap in a no-op)
        # LISTEN/NOTIFY wakes idle runners on PostgreSQL; the poll stays as the fallback.
        self.listen = listen and runtime.db.dialect == "postgresql"
        self._wakeup = Wakeup()
        self._listener: Listener | None = None
        self.concurrency = concurrency
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        # Heartbeats outlive the runners so that jobs finishing during a stop keep their lease.
        self._heartbeat_stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._active: dict[str, tuple[Claim, Lease]] = {}   # job id -> its claim and lease clock
        self._active_lock = threading.Lock()

    # --- one job ------------------------------------------------------------
    def run_once(self, thread_name: str | None = None) -> bool:
        """Claim and run one job; False if none was runnable."""
        claim = jobs.claim(self.runtime.db, thread_name or self.name, self.runtime.settings.job_lease_seconds)
        if claim is None:
            return False
        self._run(claim, thread_name or self.name, chain=False)
        return True

    def _run(self, claim: Claim, thread_name: str, chain: bool) -> Claim | None:
        """Run one attempt and record it; with ``chain``, the runner's next job is claimed
        in the transaction that records this one (returned, or None)."""
        settings = self.runtime.settings
        age = (utcnow() - claim.claimed_at).total_seconds() if claim.claimed_at else 0.0
        lease = Lease(settings.job_lease_seconds, age=age)
        with self._active_lock:
            self._active[claim.job_id] = (claim, lease)
        started = time.monotonic()
        try:
            with holding(lease):
                outcome = self.execute(self.runtime, claim)
        finally:
            with self._active_lock:
                self._active.pop(claim.job_id, None)
        JOB_DURATION.observe(time.monotonic() - started)
        options = {"backoff_base": settings.job_backoff_base, "backoff_cap": settings.job_backoff_cap,
                   "pending_timeout": settings.job_pending_timeout,
                   "on_finished": lambda session, job: notify_outcome(self.runtime, session, job)}
        if not chain:
            jobs.finish(self.runtime.db, claim, outcome, **options)
            return None
        return jobs.finish_and_claim(self.runtime.db, claim, outcome, worker=thread_name,
                                     lease_seconds=settings.job_lease_seconds, **options)[1]

    def drain(self, timeout: float = 30.0) -> int:
        """Run jobs until none is runnable now (tests and one-shot use); returns how many ran."""
        ran = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.run_once():
            ran += 1
        return ran

    # --- threads --------------------------------------------------------------
    def _loop(self, index: int) -> None:
        thread_name = f"{self.name}/{index}"
        outage = 0          # consecutive rounds that could not reach the database
        claim: Claim | None = None   # claimed with the previous job's outcome, not run yet
        while claim is not None or not self._stop.is_set():
            try:
                if claim is None:
                    seen = self._wakeup.generation()
                    claim = jobs.claim(self.runtime.db, thread_name, self.runtime.settings.job_lease_seconds)
                    if claim is None:
                        self._wakeup.wait(seen, self.runtime.settings.worker_poll_interval)
                if claim is not None:
                    # While stopping, nothing new is claimed; the job in hand still runs.
                    current, claim = claim, None
                    claim = self._run(current, thread_name, chain=not self._stop.is_set())
                if outage:
                    log.info("worker %s: database reachable again", thread_name)
                outage = 0
            except Exception as exc:
                # Keep the worker alive whatever happens. A database that is away (a
                # restart, a failover) is expected: one line per round, backing off;
                # a job cut short meanwhile keeps its lease until the sweeper frees it.
                claim = None
                if is_unavailable(exc):
                    outage += 1
                    log.warning("worker %s: database unavailable (%s); retrying", thread_name,
                                error_summary(exc))
                    self._stop.wait(outage_backoff(outage))
                else:
                    log.exception("worker %s: error while claiming or recording a job", thread_name)
                    self._stop.wait(1.0)

    def _heartbeat(self) -> None:
        lease = self.runtime.settings.job_lease_seconds
        while not self._heartbeat_stop.wait(lease / 3):
            with self._active_lock:
                claims = list(self._active.values())
            for claim, held in claims:
                sent = time.monotonic()
                try:
                    if jobs.heartbeat(self.runtime.db, claim, lease):
                        held.renewed(at=sent)
                    else:
                        held.lost()
                        log.warning("job %s: lease lost", claim.job_id)
                except Exception as exc:
                    if is_unavailable(exc):
                        log.warning("job %s: heartbeat failed, database unavailable (%s)", claim.job_id,
                                    error_summary(exc))
                    else:
                        log.exception("job %s: heartbeat failed", claim.job_id)

    def start(self) -> None:
        self._stop.clear()
        self._heartbeat_stop.clear()
        self._threads = [threading.Thread(target=self._loop, args=(i,), name=f"job-runner-{i}", daemon=True)
                         for i in range(self.concurrency)]
        self._heartbeat_thread = threading.Thread(target=self._heartbeat, name="job-heartbeat", daemon=True)
        if self.listen:
            self._listener = Listener(self.runtime.db.url, jobs.CHANNEL, self._wakeup, self._stop)
            self._listener.start()
        for thread in (*self._threads, self._heartbeat_thread):
            thread.start()
        log.info("worker %s started with %d job runner(s) at %s", self.name, self.concurrency,
                 utcnow().isoformat(timespec="seconds"))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; wait for running jobs to finish (up to ``timeout``)."""
        self._stop.set()
        self._wakeup.wake()   # idle runners leave their wait now
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._heartbeat_stop.set()
        if self._listener is not None:
            self._listener.join(max(0.0, deadline - time.monotonic()))
        log.info("worker %s stopped", self.name)

    @property
    def listening(self) -> threading.Event:
        """Set while the PostgreSQL listener is in force (never set without one)."""
        return self._listener.listening if self._listener is not None else threading.Event()
