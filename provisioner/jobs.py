"""The durable job queue, kept in the database.

- ``claim`` takes the oldest runnable job whose service has no job running in one
  ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING`` on
  PostgreSQL (the job *and* its service row are locked, so claimers pass each other
  by); on SQLite the ``BEGIN IMMEDIATE`` transaction serialises claims instead. A
  partial unique index (one ``running`` job per service) is the last word on both.
- Making a job runnable now (``enqueue``, ``requeue``, the sweep) NOTIFYs
  ``provisioner_jobs`` on PostgreSQL in the same transaction, by a trigger on ``jobs``
  (migration 0009, so writers spend no round trip on it): listening workers wake at
  its COMMIT instead of at their next poll (see ``provisioner.wakeup``).
- A claimed job holds a lease (owner token + expiry) renewed by ``heartbeat``;
  ``sweep_expired`` hands jobs whose worker vanished back to the queue.
- ``finish`` records the outcome of one attempt: success, a retry after
  exponential backoff with jitter, a wait for asynchronous upstream activation,
  or failure (permanent errors at once, retryable ones when attempts run out).

No transaction is held while a job talks to an upstream.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import random
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import String, and_, bindparam, case, exists, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .db import Database, utcnow
from .metrics import JOBS_FINISHED
from .models import RUNNABLE_SQL, RUNNING_SQL, Job, JobAttempt, JobState, Service, new_id

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
    attempt_id: int | None = None   # its job_attempts row
    claimed_at: dt.datetime | None = None   # when this attempt began (for the log line)


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


def new_job(service_id: str, *, reason: str, max_attempts: int, event_id: str | None = None,
            state: str = JobState.QUEUED, report_outcome: bool = False) -> dict[str, Any]:
    """The column values of a new job, runnable now (or already finished as ``skipped``)."""
    now = utcnow()
    return {"id": new_id(), "service_id": service_id, "event_id": event_id, "kind": "converge",
            "reason": reason, "state": state, "attempts": 0, "max_attempts": max_attempts,
            "run_after": now, "created_at": now, "updated_at": now,
            "finished_at": now if state in JobState.FINISHED else None,
            "report_outcome": report_outcome and state not in JobState.FINISHED}


def enqueue(session: Session, service_id: str, *, reason: str, max_attempts: int,
            event_id: str | None = None, state: str = JobState.QUEUED, report_outcome: bool = False) -> Job:
    job = Job(**new_job(service_id, reason=reason, max_attempts=max_attempts, event_id=event_id,
                        state=state, report_outcome=report_outcome))
    session.add(job)
    return job


_INSERT_JOB = insert(Job.__table__)


def insert_job(session: Session, values: dict[str, Any]) -> None:
    """Insert ``new_job``'s values as one Core statement on the session's connection (the
    hook intake's path: the job is never read back, so no ORM object is made for it)."""
    session.connection().execute(_INSERT_JOB, values)


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


# The queue's hot path is SQLAlchemy Core on the tables: no identity map, no flush,
# no re-reads; each step is one statement where the database allows it.
JOBS, ATTEMPTS, SERVICES = Job.__table__, JobAttempt.__table__, Service.__table__
CHANNEL = "provisioner_jobs"   # NOTIFY'd on PostgreSQL when a job becomes runnable now
CLAIM_CONFLICT_RETRIES = 3


@functools.cache
def _claim_statements(postgresql: bool):
    """The claim: one UPDATE of the oldest runnable job whose service has nothing
    running, returning what the worker needs. On PostgreSQL the attempt row is
    inserted by the same statement (a data-modifying CTE): one round trip."""
    candidate, running = JOBS.alias("candidate"), JOBS.alias("running")
    # The states as literal SQL: they match the partial indexes' predicates (models.py).
    busy = exists().where(running.c.service_id == candidate.c.service_id, text(f"running.{RUNNING_SQL}"))
    pick = (select(candidate.c.id)
            .where(text(f"candidate.{RUNNABLE_SQL}"),
                   candidate.c.run_after <= bindparam("now"), ~busy)
            .order_by(candidate.c.run_after, candidate.c.created_at)
            .limit(1))
    if not postgresql:
        # Without ANALYZE statistics SQLite prefers ix_jobs_claim and sorts every queued
        # job; SQLAlchemy renders no table hints for SQLite, so the pick is spelled out.
        pick = text(f"SELECT candidate.id FROM jobs AS candidate INDEXED BY ix_jobs_runnable "
                    f"WHERE candidate.{RUNNABLE_SQL} AND candidate.run_after <= :now AND NOT EXISTS "
                    f"(SELECT 1 FROM jobs AS running WHERE running.service_id = candidate.service_id "
                    f"AND running.{RUNNING_SQL}) ORDER BY candidate.run_after, candidate.created_at LIMIT 1"
                    ).bindparams(bindparam("now", type_=JOBS.c.run_after.type)).columns(candidate.c.id)
    if postgresql:
        # Only the job row is locked (the service row too would join services in and
        # cost the walk down ix_jobs_runnable: the planner sorts every queued job then).
        # A job of a service whose other job is being claimed at this very moment gets
        # past NOT EXISTS; the unique index stops it and the claim tries again.
        pick = pick.with_for_update(of=candidate, skip_locked=True)
    now = bindparam("now", type_=JOBS.c.run_after.type)
    claimed = (update(JOBS).where(JOBS.c.id == pick.scalar_subquery())
               .values(state=JobState.RUNNING, attempts=JOBS.c.attempts + 1, lease_owner=bindparam("token"),
                       lease_expires_at=bindparam("expires", type_=JOBS.c.lease_expires_at.type),
                       started_at=func.coalesce(JOBS.c.started_at, now), updated_at=now)
               .returning(JOBS.c.id, JOBS.c.service_id, JOBS.c.attempts))
    attempt_values = {"number": bindparam("number"), "worker": bindparam("worker"), "started_at": now}
    if not postgresql:
        return claimed, insert(ATTEMPTS).values(job_id=bindparam("job_id"), **attempt_values)
    claimed = claimed.cte("claimed")
    attempt = (insert(ATTEMPTS)
               .from_select(["job_id", "number", "worker", "started_at"],
                            select(claimed.c.id, claimed.c.attempts, bindparam("worker", type_=String),
                                   now))
               .returning(ATTEMPTS.c.id, ATTEMPTS.c.job_id).cte("attempt"))
    return select(claimed.c.id, claimed.c.service_id, claimed.c.attempts, attempt.c.id.label("attempt_id")) \
        .join(attempt, attempt.c.job_id == claimed.c.id), None


def claim(db: Database, worker: str, lease_seconds: float, now: dt.datetime | None = None) -> Claim | None:
    """Take the oldest runnable job whose service has no job running, or None.

    PostgreSQL: a single autocommitted statement (``FOR UPDATE ... SKIP LOCKED`` on the
    job row, so concurrent claimers pass each other by). SQLite: the ``BEGIN
    IMMEDIATE`` transaction serialises claimers instead. Either way the partial unique
    index ``uq_jobs_one_running_per_service`` makes a second running job of one service
    impossible; a claim that races into it tries again."""
    for _ in range(CLAIM_CONFLICT_RETRIES):
        try:
            if db.dialect == "postgresql":
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    return _claim_on(conn, True, worker, lease_seconds, now)
            with db.writer_turn(), db.engine.begin() as conn:
                return _claim_on(conn, False, worker, lease_seconds, now)
        except IntegrityError:
            # Another claimer's job of the same service became running between this
            # statement's snapshot and its update: the next try sees it.
            continue
    return None


def _claim_on(conn, postgresql: bool, worker: str, lease_seconds: float,
              now: dt.datetime | None = None) -> Claim | None:
    """The claim on ``conn``, in whatever transaction it is in; IntegrityError on a race."""
    now = now or utcnow()
    token = f"{worker}/{uuid.uuid4().hex[:12]}"
    params = {"now": now, "token": token, "expires": now + dt.timedelta(seconds=lease_seconds), "worker": worker}
    statement, record_attempt = _claim_statements(postgresql)
    row = conn.execute(statement, params).first()
    if row is None:
        return None
    if postgresql:
        attempt_id = row.attempt_id
    else:
        attempt_id = conn.execute(record_attempt, {**params, "job_id": row.id,
                                                   "number": row.attempts}).inserted_primary_key[0]
    return Claim(job_id=row.id, service_id=row.service_id, token=token, attempt=row.attempts,
                 attempt_id=attempt_id, claimed_at=now)


def heartbeat(db: Database, claim_: Claim, lease_seconds: float) -> bool:
    """Extend the lease; False means it was lost (swept) and the work must not be recorded."""
    with db.writer_turn(), db.engine.begin() as conn:
        result = conn.execute(
            update(JOBS)
            .where(JOBS.c.id == claim_.job_id, JOBS.c.lease_owner == claim_.token,
                   JOBS.c.state == JobState.RUNNING)
            .values(lease_expires_at=utcnow() + dt.timedelta(seconds=lease_seconds))
        )
        return result.rowcount == 1


def _open_attempt(session: Session, job: Job) -> JobAttempt | None:
    """The job's attempt still in progress (waits for activation repeat a number)."""
    return session.execute(
        select(JobAttempt).where(JobAttempt.job_id == job.id, JobAttempt.finished_at.is_(None))
        .order_by(JobAttempt.id.desc()).limit(1)
    ).scalar_one_or_none()


# Callbacks get the job as recorded: an ORM ``Job`` from the sweep, from ``finish`` the
# row itself (attribute access, read-only; the columns of RECORDED, no secrets).
RECORDED = [JOBS.c[name] for name in (
    "id", "service_id", "event_id", "kind", "reason", "state", "attempts", "max_attempts", "error_code",
    "error_message", "report_outcome", "run_after", "created_at", "started_at", "finished_at")]
OnFailed = Callable[[Session, Any], None]
OnFinished = Callable[[Session, Any], None]


def _at(name: str):
    return bindparam(name, type_=JOBS.c.run_after.type)


@functools.cache
def _finish_statements() -> dict:
    """Built once: the UPDATE per outcome, guarded by the lease, and the attempt's."""
    held = and_(JOBS.c.id == bindparam("p_job_id"), JOBS.c.state == JobState.RUNNING,
                JOBS.c.lease_owner == bindparam("p_token"))
    common = {"lease_owner": None, "lease_expires_at": None, "error_code": bindparam("p_code", type_=String),
              "error_message": bindparam("p_message", type_=String), "updated_at": _at("p_now")}
    ended = {**common, "finished_at": _at("p_now"),
             "reveal_until": case((JOBS.c.reveal_once.is_not(None), _at("p_reveal_until")), else_=JOBS.c.reveal_until)}
    statements = {
        "succeeded": {**ended, "state": JobState.SUCCEEDED, "pending_since": None},
        # A wait that timed out keeps when it began (set now if it never was).
        "failed": {**ended, "state": JobState.FAILED,
                   "pending_since": func.coalesce(JOBS.c.pending_since, _at("p_pending_since"))},
        "retry": {**common, "state": JobState.RETRYING, "run_after": _at("p_run_after")},
        # Waiting for the upstream does not use up the job's attempts.
        "pending": {**common, "state": JobState.RETRYING, "attempts": JOBS.c.attempts - 1,
                    "pending_since": _at("p_pending_since"), "run_after": _at("p_run_after")},
    }
    values_of = statements
    statements = {kind: update(JOBS).where(held).values(values).returning(*RECORDED)
                  for kind, values in values_of.items()}
    statements["counters"] = (select(JOBS.c.attempts, JOBS.c.max_attempts, JOBS.c.pending_since)
                              .where(held).with_for_update())
    attempt_values = {"finished_at": _at("p_now"), "outcome": bindparam("p_outcome"),
                      "error_code": bindparam("p_code", type_=String),
                      "error_message": bindparam("p_message", type_=String),
                      "detail": bindparam("p_detail", type_=String)}
    statements["attempt"] = (update(ATTEMPTS).where(ATTEMPTS.c.id == bindparam("p_attempt_id"),
                                                    ATTEMPTS.c.finished_at.is_(None)).values(attempt_values))
    # A claim from before attempt ids were handed out: the job's newest open attempt.
    newest_open = (select(func.max(ATTEMPTS.c.id))
                   .where(ATTEMPTS.c.job_id == bindparam("p_job_id"), ATTEMPTS.c.finished_at.is_(None))
                   .scalar_subquery())
    statements["open_attempt"] = (update(ATTEMPTS).where(ATTEMPTS.c.id == newest_open)
                                  .values(attempt_values))
    # PostgreSQL: the job's and the attempt's UPDATE in one statement (one round trip);
    # the attempt is closed only if the job's lease held.
    for kind, values in values_of.items():
        # Constants as named binds: anonymous ones inside a CTE lose their values.
        values = {column: bindparam(f"set_{column}", value, type_=JOBS.c[column].type)
                  if value is None or isinstance(value, str) else value for column, value in values.items()}
        job = update(JOBS).where(held).values(values).returning(*RECORDED).cte("job")
        attempt = (update(ATTEMPTS).where(ATTEMPTS.c.id == bindparam("p_attempt_id"), ATTEMPTS.c.finished_at.is_(None),
                                          exists(select(job.c.id)))
                   .values(attempt_values).returning(ATTEMPTS.c.id).cte("attempt"))
        statements[f"{kind}+attempt"] = select(job).add_cte(attempt)
    return statements


def finish(db: Database, claim_: Claim, outcome: Outcome, *, backoff_base: float,
           backoff_cap: float, pending_timeout: float, rng: random.Random | None = None,
           on_failed: OnFailed | None = None, on_finished: OnFinished | None = None) -> str | None:
    """Record an attempt's outcome; returns the job's new state, or None if the lease was lost.

    ``on_failed(session, job)`` runs in the same transaction when the job fails for
    good; ``on_finished(session, job)`` when it succeeds or fails for good.

    A success or a failure is one ``UPDATE ... RETURNING`` guarded by the lease, plus
    the attempt's; a retry or a wait first reads (and locks) the job's counters."""
    with db.transaction() as session:
        return _record(session, claim_, outcome, backoff_base=backoff_base, backoff_cap=backoff_cap,
                       pending_timeout=pending_timeout, rng=rng, on_failed=on_failed, on_finished=on_finished)


def finish_and_claim(db: Database, claim_: Claim, outcome: Outcome, *, worker: str, lease_seconds: float,
                     **options) -> tuple[str | None, Claim | None]:
    """``finish``, and in the same transaction the claim of the runner's next job: one
    COMMIT (one disk flush) per job instead of two. Returns (the state ``finish``
    returns, the next claim or None).

    Should the claim race another claimer into the one-running-job index, the whole
    transaction is rolled back and the outcome recorded alone (callbacks run again in
    that transaction; the first one's writes were rolled back with it)."""
    try:
        with db.transaction() as session:
            state = _record(session, claim_, outcome, **options)
            return state, _claim_on(session.connection(), db.dialect == "postgresql", worker, lease_seconds)
    except IntegrityError:
        return finish(db, claim_, outcome, **options), None


def _record(session: Session, claim_: Claim, outcome: Outcome, *, backoff_base: float,
            backoff_cap: float, pending_timeout: float, rng: random.Random | None = None,
            on_failed: OnFailed | None = None, on_finished: OnFinished | None = None) -> str | None:
    statements = _finish_statements()
    now = utcnow()
    kind = outcome.kind
    # Parameter names never match a column's: SQLAlchemy would add those to the SET clause.
    params = {"p_job_id": claim_.job_id, "p_token": claim_.token, "p_now": now, "p_pending_since": None,
              "p_reveal_until": now + dt.timedelta(seconds=REVEAL_SECONDS)}
    conn = session.connection()   # Core on the session's transaction: callbacks share it
    if kind in ("retry", "pending"):
        row = conn.execute(statements["counters"], params).first()
        if row is None:
            return _lease_lost(claim_)
        if kind == "pending":
            params["p_pending_since"] = pending_since = row.pending_since or now
            waited = (now - pending_since).total_seconds()
            if waited > pending_timeout:
                kind = "failed"
                outcome = Outcome("failed", "upstream_pending_timeout",
                                  "The e-mail platform did not finish setting this up in time.",
                                  outcome.detail)
            else:
                # Polls slow down as the wait grows: activation may wait on the
                # customer's DNS for days.
                delay = min(PENDING_POLL_CAP, max(outcome.retry_after or backoff_base, waited / 10))
                params["p_run_after"] = now + dt.timedelta(seconds=delay)
        elif row.attempts >= row.max_attempts:
            kind = "failed"
        else:
            delay = backoff_delay(row.attempts, backoff_base, backoff_cap, rng)
            if outcome.retry_after:
                delay = max(delay, min(outcome.retry_after, backoff_cap))
            params["p_run_after"] = now + dt.timedelta(seconds=delay)
    params.update(p_code=outcome.code, p_message=outcome.message, p_detail=outcome.detail,
                  p_outcome={"retry": "retrying"}.get(kind, kind), p_attempt_id=claim_.attempt_id)
    if claim_.attempt_id is not None and conn.dialect.name == "postgresql":
        job = conn.execute(statements[f"{kind}+attempt"], params).first()
        if job is None:
            return _lease_lost(claim_)
    else:
        job = conn.execute(statements[kind], params).first()
        if job is None:
            return _lease_lost(claim_)
        conn.execute(statements["attempt" if claim_.attempt_id is not None else "open_attempt"], params)
    if on_failed and kind == "failed":
        on_failed(session, job)
    if on_finished and kind in ("succeeded", "failed"):
        on_finished(session, job)
    JOBS_FINISHED.labels(outcome=kind).inc()
    log.info("job %s service %s: %s", job.id, job.service_id,
             _outcome_words(job, kind, outcome, claim_.attempt, claim_.claimed_at or now, now))
    return job.state


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"


def _outcome_words(job: Any, kind: str, outcome: Outcome, attempt: int, started: dt.datetime,
                   now: dt.datetime) -> str:
    """``succeeded in 35ms (attempt 1)``: one attempt's end, for the job's log line
    (``job``: the row the finishing statement returned)."""
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


def _lease_lost(claim_: Claim) -> None:
    log.warning("job %s: lease lost before the attempt finished; its result is discarded", claim_.job_id)
    return None


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
