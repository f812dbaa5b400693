"""APScheduler 3 ticks run by every worker process.

Each process schedules its ticks in memory (APScheduler 3 cannot share a job
store between processes). The lease sweep is safe to run everywhere at once:
it only touches rows whose lease expired, under SKIP LOCKED on PostgreSQL.
"""
from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler

from . import jobs
from .runtime import Runtime

log = logging.getLogger("provisioner.scheduler")


def sweep_tick(runtime: Runtime) -> None:
    rescued = jobs.sweep_expired(runtime.db)
    if rescued:
        log.warning("lease sweep: %d job(s) handed back to the queue", rescued)


def purge_tick(runtime: Runtime) -> None:
    purged = jobs.purge_unrevealed(runtime.db)
    if purged:
        log.info("one-time secrets of %d job(s) were never read and have been erased", purged)


def build_scheduler(runtime: Runtime) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    interval = max(1.0, runtime.settings.job_lease_seconds / 3)
    scheduler.add_job(sweep_tick, "interval", seconds=interval, args=[runtime], id="lease-sweep",
                      name="rescue jobs whose worker died")
    scheduler.add_job(purge_tick, "interval", seconds=60, args=[runtime], id="secret-purge",
                      name="erase one-time secrets nobody read")
    return scheduler
