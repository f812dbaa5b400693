"""The console's overview: what came in, what failed, what waits, per upstream, as plain queries.

Every figure is read from the database, so it covers every web and worker process
(the Prometheus counters of ``provisioner.metrics`` live in the process that counts).
A source-scoped caller's figures are its source's only. Time series are counted per
bucket with the indexes on ``events.received_at`` and ``job_attempts.started_at``.
"""
from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import admin
from ..models import Event, Job, JobAttempt, JobState, Service

#: attempts read for the upstream health table (the newest, within the last hour)
HEALTH_SAMPLE = 20_000
FAILURE_GROUPS = 20
TROUBLE = ("failed", "retrying", "lost")


@dataclass
class Bucket:
    label: str
    start: dt.datetime
    hooks: int = 0
    attempts: int = 0
    failures: int = 0          # attempts that failed, or will be retried


@dataclass
class FailureGroup:
    upstream: str
    error_code: str
    count: int
    newest: Job | None = None


@dataclass
class UpstreamHealth:
    upstream: str
    attempts: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.attempts if self.attempts else 0.0


@dataclass
class Overview:
    job_states: dict[str, int]
    totals: dict[str, Bucket]              # last hour / day / week
    days: list[Bucket]                     # the last 7 days, oldest first
    failures: list[FailureGroup]
    health: list[UpstreamHealth]
    awaiting_termination: int
    runs: list[Any] = field(default_factory=list)


def _services_of(scope: admin.Scope):
    return select(Service.id).where(Service.source == scope.source)


def _count_hooks(session: Session, scope: admin.Scope, start: dt.datetime, end: dt.datetime) -> int:
    stmt = select(func.count()).select_from(Event).where(Event.received_at >= start, Event.received_at < end)
    if scope.source is not None:
        stmt = stmt.where(Event.source == scope.source)
    return session.execute(stmt).scalar_one()


def _count_attempts(session: Session, scope: admin.Scope, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    stmt = (select(JobAttempt.outcome, func.count()).where(JobAttempt.started_at >= start,
                                                           JobAttempt.started_at < end)
            .group_by(JobAttempt.outcome))
    if scope.source is not None:
        stmt = stmt.where(JobAttempt.job_id.in_(select(Job.id).where(Job.service_id.in_(_services_of(scope)))))
    rows = dict(session.execute(stmt).all())
    return sum(rows.values()), sum(rows.get(outcome, 0) for outcome in TROUBLE)


def _bucket(session: Session, scope: admin.Scope, label: str, start: dt.datetime, end: dt.datetime) -> Bucket:
    attempts, failures = _count_attempts(session, scope, start, end)
    return Bucket(label, start, _count_hooks(session, scope, start, end), attempts, failures)


def _job_states(session: Session, scope: admin.Scope) -> dict[str, int]:
    stmt = select(Job.state, func.count()).group_by(Job.state)
    if scope.source is not None:
        stmt = stmt.where(Job.service_id.in_(_services_of(scope)))
    found = dict(session.execute(stmt).all())
    return {state: found.get(state, 0) for state in JobState.ALL}


def _failure_groups(session: Session, scope: admin.Scope) -> list[FailureGroup]:
    stmt = (select(Service.upstream, Job.error_code, func.count())
            .join(Service, Service.id == Job.service_id)
            .where(Job.state.in_((JobState.FAILED, JobState.RETRYING)))
            .group_by(Service.upstream, Job.error_code)
            .order_by(func.count().desc(), Service.upstream, Job.error_code).limit(FAILURE_GROUPS))
    if scope.source is not None:
        stmt = stmt.where(Service.source == scope.source)
    groups = [FailureGroup(upstream, code or "", count) for upstream, code, count in session.execute(stmt).all()]
    for group in groups:
        newest = (select(Job).join(Service, Service.id == Job.service_id).options(*admin.JOB_NAMES)
                  .where(Job.state.in_((JobState.FAILED, JobState.RETRYING)), Service.upstream == group.upstream,
                         Job.error_code.is_(None) if not group.error_code else Job.error_code == group.error_code)
                  .order_by(Job.updated_at.desc(), Job.id.desc()).limit(1))
        if scope.source is not None:
            newest = newest.where(Service.source == scope.source)
        group.newest = session.execute(newest).scalar_one_or_none()
    return groups


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def _health(session: Session, scope: admin.Scope, since: dt.datetime) -> list[UpstreamHealth]:
    stmt = (select(Service.upstream, JobAttempt.outcome, JobAttempt.started_at, JobAttempt.finished_at)
            .join(Job, Job.id == JobAttempt.job_id).join(Service, Service.id == Job.service_id)
            .where(JobAttempt.started_at >= since, JobAttempt.finished_at.is_not(None))
            .order_by(JobAttempt.started_at.desc()).limit(HEALTH_SAMPLE))
    if scope.source is not None:
        stmt = stmt.where(Service.source == scope.source)
    by_upstream: dict[str, tuple[list[float], list[int]]] = {}
    for upstream, outcome, started, finished in session.execute(stmt).all():
        durations, errors = by_upstream.setdefault(upstream, ([], [0]))
        durations.append((finished - started).total_seconds() * 1000)
        if outcome in TROUBLE:
            errors[0] += 1
    return [UpstreamHealth(name, len(durations), errors[0], _percentile(durations, .5), _percentile(durations, .95))
            for name, (durations, errors) in sorted(by_upstream.items())]


def overview(session: Session, scope: admin.Scope, now: dt.datetime, *, awaiting: Any) -> Overview:
    """``awaiting``: ``admin.awaiting_termination``'s query of service ids."""
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    days = []
    for back in range(6, -1, -1):
        start = day_start - dt.timedelta(days=back)
        days.append(_bucket(session, scope, start.strftime("%a %d"), start,
                            min(start + dt.timedelta(days=1), now + dt.timedelta(seconds=1))))
    totals = {label: _bucket(session, scope, label, now - span, now + dt.timedelta(seconds=1))
              for label, span in (("last hour", dt.timedelta(hours=1)), ("last day", dt.timedelta(days=1)),
                                  ("last week", dt.timedelta(days=7)))}
    waiting = select(func.count()).select_from(Service).where(Service.id.in_(awaiting))
    if scope.source is not None:
        waiting = waiting.where(Service.source == scope.source)
    runs = admin.list_reconcile_runs(session, {"page": 1, "per_page": 5}, scope).items
    return Overview(_job_states(session, scope), totals, days, _failure_groups(session, scope),
                    _health(session, scope, now - dt.timedelta(hours=1)), session.execute(waiting).scalar_one(),
                    list(runs))
