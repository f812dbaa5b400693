"""The durable job queue, kept in the database.

- ``claim`` takes the oldest runnable job whose service has no job running,
  under ``FOR UPDATE ... SKIP LOCKED`` on PostgreSQL (jobs *and* their service
  row are locked, so two workers never run two jobs of one service at once);
  on SQLite the ``BEGIN IMMEDIATE`` transaction serialises claims instead.
- A claimed job holds a lease (owner token + expiry) renewed by ``heartbeat``;
  ``sweep_expired`` hands jobs whose worker vanished back to the queue.
- ``finish`` records the outcome of one attempt: success, a retry after
  exponential backoff with jitter, a wait for asynchronous upstream activation,
  or failure (permanent errors at once, retryable ones when attempts run out).

No transaction is held while a job talks to an upstream.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
import uuid
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session, aliased

from .db import Database, utcnow
from .metrics import JOBS_FINISHED
from .models import Job, JobAttempt, JobState, Service

log = logging.getLogger("provisioner.jobs")

INTERNAL_ERROR = ("internal_error", "An internal error occurred; support has been notified.")
REVEAL_SECONDS = 3600.0   # how long a finished job keeps an unread one-time secret
PENDING_POLL_CAP = 300.0  # seconds between polls of an upstream still activating, at most
WORKER_LOST = ("worker_lost", "The job was interrupted before it finished.")


@dataclass(frozen=True)
class Claim:
    job_id: str
    service_id: str
    token: str          # the lease owner; only its holder may finish the job
    attempt: int


@dataclass
class Outcome:
    """What one attempt ended with, as the worker reports it."""
    kind: str                       # succeeded | retry | pending | failed
    code: str | None = None
    message: str | None = None      # safe for an end customer
    detail: str | None = None       # for operators; no secrets
    retry_after: float | None = None


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


def enqueue(session: Session, service_id: str, *, reason: str, max_attempts: int,
            event_id: str | None = None, state: str = JobState.QUEUED, report_outcome: bool = False) -> Job:
    now = utcnow()
    job = Job(service_id=service_id, event_id=event_id, reason=reason, state=state,
              attempts=0, max_attempts=max_attempts, run_after=now, created_at=now,
              report_outcome=report_outcome and state not in JobState.FINISHED)
    if state in JobState.FINISHED:
        job.finished_at = now
    session.add(job)
    return job


def report_outcome_later(db: Database, job_id: str) -> bool:
    """Ask for a job.succeeded / job.failed callback when ``job_id`` ends (its hook is
    being answered 202). False if it has already ended: the answer can report it."""
    with db.transaction() as session:
        result = session.execute(update(Job).where(Job.id == job_id, Job.state.not_in(JobState.FINISHED))
                                 .values(report_outcome=True))
        return result.rowcount == 1


def requeue(session: Session, job: Job, *, extra_attempts: int) -> Job:
    """Queue a failed job again (an operator's retry or a billing redelivery).

    Attempts keep counting so the attempt log stays readable; the job gets a
    fresh allowance on top of what it used.
    """
    job.state = JobState.QUEUED
    job.max_attempts = job.attempts + extra_attempts
    job.run_after = utcnow()
    job.finished_at = None
    job.pending_since = None
    job.lease_owner = None
    job.lease_expires_at = None
    return job


def claim(db: Database, worker: str, lease_seconds: float, now: dt.datetime | None = None) -> Claim | None:
    now = now or utcnow()
    running = aliased(Job)
    busy = exists().where(and_(running.service_id == Job.service_id,
                               running.state == JobState.RUNNING))
    query = (
        select(Job.id)
        .join(Service, Service.id == Job.service_id)
        .where(Job.state.in_(JobState.RUNNABLE), Job.run_after <= now, ~busy)
        .order_by(Job.run_after, Job.created_at)
        .limit(1)
    )
    if db.dialect == "postgresql":
        query = query.with_for_update(of=[Job, Service], skip_locked=True)
    with db.transaction() as session:
        job_id = session.execute(query).scalar()
        if job_id is None:
            return None
        job = session.get(Job, job_id)
        token = f"{worker}/{uuid.uuid4().hex[:12]}"
        job.state = JobState.RUNNING
        job.attempts += 1
        job.lease_owner = token
        job.lease_expires_at = now + dt.timedelta(seconds=lease_seconds)
        job.started_at = job.started_at or now
        session.add(JobAttempt(job_id=job.id, number=job.attempts, worker=worker, started_at=now))
        return Claim(job_id=job.id, service_id=job.service_id, token=token, attempt=job.attempts)


def heartbeat(db: Database, claim_: Claim, lease_seconds: float) -> bool:
    """Extend the lease; False means it was lost (swept) and the work must not be recorded."""
    with db.transaction() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == claim_.job_id, Job.lease_owner == claim_.token,
                   Job.state == JobState.RUNNING)
            .values(lease_expires_at=utcnow() + dt.timedelta(seconds=lease_seconds))
        )
        return result.rowcount == 1


def _open_attempt(session: Session, job: Job) -> JobAttempt | None:
    """The job's attempt still in progress (waits for activation repeat a number)."""
    return session.execute(
        select(JobAttempt).where(JobAttempt.job_id == job.id, JobAttempt.finished_at.is_(None))
        .order_by(JobAttempt.id.desc()).limit(1)
    ).scalar_one_or_none()


OnFailed = Callable[[Session, Job], None]
OnFinished = Callable[[Session, Job], None]


def finish(db: Database, claim_: Claim, outcome: Outcome, *, backoff_base: float,
           backoff_cap: float, pending_timeout: float, rng: random.Random | None = None,
           on_failed: OnFailed | None = None, on_finished: OnFinished | None = None) -> str | None:
    """Record an attempt's outcome; returns the job's new state, or None if the lease was lost.

    ``on_failed(session, job)`` runs in the same transaction when the job fails for
    good; ``on_finished(session, job)`` when it succeeds or fails for good."""
    now = utcnow()
    with db.transaction() as session:
        job = session.get(Job, claim_.job_id, with_for_update=True)
        if job is None or job.state != JobState.RUNNING or job.lease_owner != claim_.token:
            log.warning("job %s: lease lost before the attempt finished; its result is discarded",
                        claim_.job_id)
            return None
        attempt = _open_attempt(session, job)
        kind = outcome.kind
        if kind == "pending":
            job.pending_since = job.pending_since or now
            if (now - job.pending_since).total_seconds() > pending_timeout:
                kind = "failed"
                outcome = Outcome("failed", "upstream_pending_timeout",
                                  "The e-mail platform did not finish setting this up in time.",
                                  outcome.detail)
        elif kind == "retry" and job.attempts >= job.max_attempts:
            kind = "failed"

        job.lease_owner = None
        job.lease_expires_at = None
        job.error_code = outcome.code
        job.error_message = outcome.message
        if kind in ("succeeded", "failed") and job.reveal_once:
            job.reveal_until = now + dt.timedelta(seconds=REVEAL_SECONDS)
        if kind == "succeeded":
            job.state = JobState.SUCCEEDED
            job.finished_at = now
            job.pending_since = None
        elif kind == "failed":
            job.state = JobState.FAILED
            job.finished_at = now
            if on_failed:
                on_failed(session, job)
        elif kind == "pending":
            # Waiting for the upstream does not use up the job's attempts. Polls slow
            # down as the wait grows: activation may wait on the customer's DNS for days.
            job.attempts -= 1
            job.state = JobState.RETRYING
            waited = (now - job.pending_since).total_seconds()
            delay = min(PENDING_POLL_CAP, max(outcome.retry_after or backoff_base, waited / 10))
            job.run_after = now + dt.timedelta(seconds=delay)
        else:
            job.state = JobState.RETRYING
            delay = backoff_delay(job.attempts, backoff_base, backoff_cap, rng)
            if outcome.retry_after:
                delay = max(delay, min(outcome.retry_after, backoff_cap))
            job.run_after = now + dt.timedelta(seconds=delay)
        if on_finished and kind in ("succeeded", "failed"):
            on_finished(session, job)
        if attempt is not None:
            attempt.finished_at = now
            attempt.outcome = {"retry": "retrying"}.get(kind, kind)
            attempt.error_code = outcome.code
            attempt.error_message = outcome.message
            attempt.detail = outcome.detail
        JOBS_FINISHED.labels(outcome=kind).inc()
        log.info("job %s service %s: %s", job.id, job.service_id,
                 _outcome_words(job, kind, outcome, claim_.attempt, attempt.started_at if attempt else now, now))
        return job.state


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"


def _outcome_words(job: Job, kind: str, outcome: Outcome, attempt: int, started: dt.datetime,
                   now: dt.datetime) -> str:
    """``succeeded in 35ms (attempt 1)``: one attempt's end, for the job's log line."""
    took = _seconds(max(0.0, (now - started).total_seconds()))
    code = f" ({outcome.code})" if outcome.code else ""
    if kind in ("succeeded", "failed"):
        since = ""
        if attempt > 1 and job.created_at is not None:
            since = f", {_seconds(max(0.0, (now - job.created_at).total_seconds()))} since queued"
        return f"{kind}{code} in {took} (attempt {attempt}{since})"
    wait = _seconds(max(0.0, (job.run_after - now).total_seconds()))
    if kind == "pending":
        return f"waiting for the upstream{code}, next check in {wait} (attempt {attempt}, {took} so far)"
    return f"retrying{code} in {wait} (attempt {attempt} of {job.max_attempts} took {took})"


def keep_secrets(session: Session, job_id: str, token: str) -> None:
    """Hold a one-time secret (already encrypted) for the answer that reports the job."""
    job = session.get(Job, job_id)
    job.reveal_once = token
    job.reveal_until = None  # the reveal window opens when the job finishes


def take_secrets(db: Database, job_id: str) -> str | None:
    """The encrypted one-time secrets of a finished job, erased as they are taken."""
    with db.transaction() as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.reveal_once is None or job.state not in JobState.FINISHED:
            return None
        token, job.reveal_once, job.reveal_until = job.reveal_once, None, None
        return token


def purge_unrevealed(db: Database, now: dt.datetime | None = None) -> int:
    """Erase one-time secrets nobody read in time (the customer regenerates instead)."""
    with db.transaction() as session:
        result = session.execute(
            update(Job).where(Job.reveal_until < (now or utcnow()))
            .values(reveal_once=None, reveal_until=None))
        return result.rowcount


def sweep_expired(db: Database, now: dt.datetime | None = None, on_failed: OnFailed | None = None) -> int:
    """Hand jobs whose lease expired (their worker died) back to the queue."""
    now = now or utcnow()
    query = select(Job).where(Job.state == JobState.RUNNING, Job.lease_expires_at < now)
    if db.dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rescued = 0
    with db.transaction() as session:
        for job in session.execute(query).scalars():
            attempt = _open_attempt(session, job)
            if attempt is not None:
                attempt.finished_at = now
                attempt.outcome = "lost"
                attempt.error_code, attempt.error_message = WORKER_LOST
                attempt.detail = f"lease of {job.lease_owner} expired"
            job.error_code, job.error_message = WORKER_LOST
            job.lease_owner = None
            job.lease_expires_at = None
            if job.attempts >= job.max_attempts:
                job.state = JobState.FAILED
                job.finished_at = now
                if job.reveal_once:
                    job.reveal_until = now + dt.timedelta(seconds=REVEAL_SECONDS)
                if on_failed:
                    on_failed(session, job)
            else:
                job.state = JobState.RETRYING
                job.run_after = now
            rescued += 1
            log.warning("job %s: worker lost, %s", job.id, job.state)
    return rescued
