"""APScheduler 3 ticks run by every worker process, each run once across the fleet.

APScheduler 3 cannot share a job store between processes, so every worker
schedules every tick in memory; a gated tick first inserts a unique
(task, time slot) row, and only the worker whose insert wins runs it. A tick
that dies mid-run is simply run again in the next slot by whoever wins that.
Housekeeping that is safe everywhere at once (the lease sweep, purging unread
secrets, delivering notifications under SKIP LOCKED) is not gated.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import socket
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from . import jobs
from .db import Database, error_summary, is_unavailable, utcnow
from .models import TickClaim
from .providers.http import quiet_responses
from .runtime import Runtime

log = logging.getLogger("provisioner.scheduler")


def tick_slot(now: dt.datetime, interval: float) -> int:
    return int(now.timestamp() // interval)


def claim_tick(db: Database, task: str, interval: float, worker: str,
               now: dt.datetime | None = None) -> int | None:
    """Claim this slot of ``task``; the claim's id, or None if another worker has it."""
    now = now or utcnow()
    try:
        with db.transaction() as session:
            claim = TickClaim(task=task, slot=tick_slot(now, interval), worker=worker, claimed_at=now)
            session.add(claim)
            session.flush()
            return claim.id
    except IntegrityError:
        return None


def finish_tick(db: Database, claim_id: int, outcome: str) -> None:
    with db.transaction() as session:
        session.execute(update(TickClaim).where(TickClaim.id == claim_id)
                        .values(finished_at=utcnow(), outcome=outcome[:255]))


def run_gated(runtime: Runtime, task: str, interval: float, fn: Callable[[], str | None],
              worker: str | None = None, now: dt.datetime | None = None) -> bool:
    """Run ``fn`` if this worker wins the current slot of ``task``; True if it ran."""
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    claim_id = claim_tick(runtime.db, task, interval, worker, now)
    if claim_id is None:
        return False
    try:
        outcome = fn() or "ok"
    except Exception as exc:
        log.exception("tick %s failed", task)
        outcome = f"error: {type(exc).__name__}"
    finish_tick(runtime.db, claim_id, outcome)
    return True


def sweep_tick(runtime: Runtime) -> None:
    from .worker import notify_outcome
    rescued = jobs.sweep_expired(runtime.db, on_failed=lambda session, job: notify_outcome(runtime, session, job))
    if rescued:
        log.warning("lease sweep: %d job(s) handed back to the queue", rescued)


def purge_tick(runtime: Runtime) -> None:
    purged = jobs.purge_unrevealed(runtime.db)
    if purged:
        log.info("one-time secrets of %d job(s) were never read and have been erased", purged)


def reconcile_tick(runtime: Runtime) -> None:
    from .reconcile import run_pass
    interval = runtime.settings.reconcile_interval

    def one_pass() -> str:
        with quiet_responses():
            run = run_pass(runtime, trigger="schedule")
        return f"run {run.id}: {run.state}"

    run_gated(runtime, "reconcile", interval, one_pass)


def usage_tick(runtime: Runtime) -> None:
    from .reconcile import collect_usage

    def one_pass() -> str:
        with quiet_responses():
            updated = collect_usage(runtime)
        if updated:
            log.info("usage pass: usage of %d service(s) updated", updated)
        return f"{updated} service(s) updated"

    run_gated(runtime, "usage", runtime.settings.usage_interval, one_pass)


def notify_tick(runtime: Runtime) -> None:
    from .notifications import deliver_due
    deliver_due(runtime)  # logs a line when it delivered or tried something


def outage_tolerant(tick: Callable[[Runtime], None]) -> Callable[[Runtime], None]:
    """A tick that meets an unreachable database logs one line and waits for its next
    run (APScheduler would log a stack trace every time, each second during a restart)."""
    @functools.wraps(tick)
    def run(runtime: Runtime) -> None:
        try:
            tick(runtime)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("tick %s skipped: database unavailable (%s)", tick.__name__, error_summary(exc))
    return run


def build_scheduler(runtime: Runtime) -> BackgroundScheduler:
    settings = runtime.settings
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})

    def every(tick, seconds: float, **options) -> None:
        scheduler.add_job(outage_tolerant(tick), "interval", seconds=seconds, args=[runtime], **options)

    every(sweep_tick, max(1.0, settings.job_lease_seconds / 3),
          id="lease-sweep", name="rescue jobs whose worker died")
    every(purge_tick, 60, id="secret-purge", name="erase one-time secrets nobody read")
    # Checked every tenth of its interval so a slot missed by one worker is taken by another.
    every(reconcile_tick, max(1.0, settings.reconcile_interval / 10),
          id="reconcile", name="expiry, suspension, renewals, drift and usage")
    every(usage_tick, max(1.0, settings.usage_interval / 10),
          id="usage", name="usage of upstreams whose listings carry none, account by account")
    every(notify_tick, settings.notify_interval, id="notify", name="deliver callbacks to the billing system")
    return scheduler
