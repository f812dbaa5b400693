"""A reconcile pass: due dates, upstream terms, drift, orphans and usage.

``run_pass`` judges every service at one instant (``at``, now by default; an
operator's what-if or a test passes another) and, unless ``dry_run``, acts:

- **due dates**, only where the provisioner owns the lifecycle (the service's
  billing source, or its product, says ``lifecycle_authority: provisioner``):
  an active service whose ``next_due_date`` plus ``suspend_grace_days`` has
  passed is suspended as overdue, unless billing's auto-suspend override
  exempts it; one suspended as overdue for ``terminate_after_days`` is listed
  for an operator (``terminate_requires_operator``, the default) or, where a
  product says so explicitly, terminated. Where billing owns it, nothing is
  suspended or terminated: a service billing keeps active while overdue is
  reported;
- **upstream terms**: a service whose upstream term ends before its paid-until
  date is converged (the converge step renews, never past what is paid);
- **drift**: each upstream's accounts are read page by page (never one call
  per service) and compared with desired state; drifted or missing ones get a
  converge job; accounts nobody owns are reported as orphans, never deleted;
- **usage**: what each listed account uses is stored on its service.

Every change goes through the same path as billing events: desired state
moves, a converge job is queued, and the billing system is notified. One
service whose check fails is reported (``check_failed``) and never stops the
pass for the others. A pass may be restricted to one billing source (started by
that source's API key): it judges only that source's services and reports no
orphans (they belong to no source).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from . import jobs
from .billing.sources import AUTHORITY_BILLING, authority_for
from .db import utcnow
from .events import DATE_WINDOW, in_window
from .lifecycle import OVERDUE_REASON, is_overdue_suspension, suspend
from .models import DesiredStatus, Job, JobState, ReconcileRun, Service, SuspendedBy
from .notifications import notify
from .products import Product
from .providers.base import AccountStatus, Capability, UpstreamAccount
from .providers.errors import ProviderError
from .runtime import Runtime

log = logging.getLogger("provisioner.reconcile")

# Kinds of finding, as counted in the report.
SUSPEND_OVERDUE = "suspend_overdue"
TERMINATE_OVERDUE = "terminate_overdue"
AWAITING_OPERATOR = "awaiting_operator_termination"
TERM_BEHIND = "upstream_expiry_before_paid_until"
DRIFT_STATUS = "drift_status"
DRIFT_LIMITS = "drift_limits"
DRIFT_MISSING = "drift_missing"
ORPHAN = "orphan"
# Billing owns the lifecycle and keeps the service active past its due date and grace.
BILLING_ACTIVE_OVERDUE = "billing_active_overdue"
# Overdue, but billing's auto-suspend override exempts it for now.
SUSPEND_OVERRIDDEN = "suspend_overridden"
# The service could not be judged (a broken row); the others were.
CHECK_FAILED = "check_failed"
DRIFT_KINDS = (DRIFT_STATUS, DRIFT_LIMITS, DRIFT_MISSING)


@dataclass
class Report:
    at: dt.datetime
    dry_run: bool
    source: str | None = None        # the one billing source judged, None: all
    services: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: service key -> why it could not be judged
    service_errors: dict[str, str] = field(default_factory=dict)
    orphans: list[dict[str, Any]] = field(default_factory=list)
    calls: Counter = field(default_factory=Counter)
    jobs_queued: int = 0
    usage_updated: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def add(self, kind: str, service_id: str) -> None:
        if service_id not in self.services[kind]:
            self.services[kind].append(service_id)

    def failed(self, service_id: str, what: str, exc: Exception) -> None:
        """Record that ``service_id`` could not be judged; the pass goes on."""
        log.warning("reconcile: %s of service %s failed: %s", what, service_id, type(exc).__name__, exc_info=True)
        self.add(CHECK_FAILED, service_id)
        self.service_errors[service_id] = f"{what} failed ({type(exc).__name__})"

    def as_dict(self) -> dict[str, Any]:
        counts = {kind: len(ids) for kind, ids in self.services.items()}
        if self.orphans:
            counts[ORPHAN] = len(self.orphans)
        return {
            "at": self.at.isoformat(), "dry_run": self.dry_run, "source": self.source, "counts": counts,
            "services": {kind: sorted(ids) for kind, ids in self.services.items()},
            "orphans": self.orphans, "calls": dict(self.calls), "jobs_queued": self.jobs_queued,
            "usage_updated": self.usage_updated, "errors": self.errors,
            "service_errors": dict(sorted(self.service_errors.items())),
            "duration_s": round(time.monotonic() - self.started, 3),
        }


def _queue_converge(session, runtime: Runtime, service_id: str, reason: str, report: Report) -> None:
    """A converge job, unless one is already waiting to run for this service."""
    waiting = session.execute(select(Job.id).where(
        Job.service_id == service_id, Job.state.in_(JobState.RUNNABLE)).limit(1)).first()
    if waiting is None:
        jobs.enqueue(session, service_id, reason=reason, max_attempts=runtime.settings.job_max_attempts)
        report.jobs_queued += 1


# --- due dates ---------------------------------------------------------------------------

def _exempt(service: Service, at: dt.datetime) -> bool:
    """Billing's auto-suspend override holds at ``at``."""
    if service.auto_suspend_enabled is not False:
        return False
    return service.auto_suspend_until is None or at.date() <= service.auto_suspend_until


def _due_findings(service: Service, product: Product, at: dt.datetime, authority: str) -> str | None:
    policy = product.lifecycle
    if (service.desired_status == DesiredStatus.ACTIVE and service.next_due_date is not None
            and service.next_due_date + dt.timedelta(days=policy.suspend_grace_days) < at.date()):
        if authority == AUTHORITY_BILLING:
            return BILLING_ACTIVE_OVERDUE
        return SUSPEND_OVERRIDDEN if _exempt(service, at) else SUSPEND_OVERDUE
    if authority == AUTHORITY_BILLING:
        return None    # billing suspends and terminates by itself
    if (is_overdue_suspension(service) and service.suspended_at is not None
            and service.suspended_at + dt.timedelta(days=policy.terminate_after_days) <= at):
        return AWAITING_OPERATOR if policy.terminate_requires_operator else TERMINATE_OVERDUE
    return None


def _authority(runtime: Runtime, service: Service, product: Product) -> str:
    return authority_for(runtime.source(service.source), product)


#: findings a pass acts on (the others are reported only)
ACTED_ON = (SUSPEND_OVERDUE, TERMINATE_OVERDUE)


def _apply_due(runtime: Runtime, service_id: str, kind: str, at: dt.datetime, report: Report) -> None:
    """Act on a due-date finding, re-checking it under the service's row lock."""
    with runtime.db.transaction() as session:
        service = session.get(Service, service_id, with_for_update=True)
        product = runtime.catalog.products.get(service.product_key)
        if product is None or _due_findings(service, product, at, _authority(runtime, service, product)) != kind:
            return  # an event changed it meanwhile
        if kind == SUSPEND_OVERDUE:
            suspend(service, SuspendedBy.SCHEDULER, OVERDUE_REASON, at)
            notify(session, runtime, "service.suspended", service.id,
                   {"reason": OVERDUE_REASON, "next_due_date": service.next_due_date.isoformat()})
        else:
            service.desired_status = DesiredStatus.TERMINATED
            service.pending_password = None
            notify(session, runtime, "service.terminated", service.id,
                   {"reason": f"{OVERDUE_REASON} for {product.lifecycle.terminate_after_days} days"})
        _queue_converge(session, runtime, service.id, f"reconcile:{kind}", report)


def check_due_dates(runtime: Runtime, services: list[Service], at: dt.datetime, report: Report) -> None:
    authorities: dict[tuple[str, str], str] = {}     # (source, product) -> authority, once per pass
    for service in services:
        product = runtime.catalog.products.get(service.product_key)
        if product is None:
            report.add(CHECK_FAILED, service.id)
            report.service_errors[service.id] = f"product {service.product_key!r} is no longer configured"
            continue
        pair = (service.source, product.id)
        if pair not in authorities:
            authorities[pair] = _authority(runtime, service, product)
        try:
            kind = _due_findings(service, product, at, authorities[pair])
            if kind is None:
                continue
            report.add(kind, service.id)
            if not report.dry_run and kind in ACTED_ON:
                _apply_due(runtime, service.id, kind, at, report)
        except Exception as exc:   # one broken row must not stop the pass for everyone
            report.failed(service.id, "the due-date check", exc)


# --- drift, orphans, usage, terms ----------------------------------------------------------

def _drift(service: Service, account: UpstreamAccount, compare_limits: bool) -> list[str]:
    if account.status == AccountStatus.PENDING:
        return []  # still being set up: a job is (or was) on it
    kinds = []
    desired = service.desired_status
    if account.status == AccountStatus.DELETED:
        if desired != DesiredStatus.TERMINATED:
            kinds.append(DRIFT_MISSING)
        return kinds
    if ((desired == DesiredStatus.ACTIVE and account.status != AccountStatus.ACTIVE)
            or (desired == DesiredStatus.SUSPENDED and account.status != AccountStatus.SUSPENDED)
            or desired == DesiredStatus.TERMINATED):
        kinds.append(DRIFT_STATUS)
    if compare_limits and desired != DesiredStatus.TERMINATED and any(
            key in account.limits and account.limits[key] != value
            for key, value in (service.limits or {}).items()):
        kinds.append(DRIFT_LIMITS)
    return kinds


def _list_everything(runtime: Runtime, upstream: str, report: Report):
    provider = runtime.provider(upstream)
    page, per_page = 1, runtime.settings.reconcile_page_size
    while True:
        batch = provider.list_accounts(page=page, per_page=per_page)
        report.calls[upstream] += 1
        yield from batch.items
        if not batch.has_more or not batch.items:
            return
        page += 1


def check_upstream(runtime: Runtime, upstream: str, services: list[Service], at: dt.datetime,
                   report: Report) -> None:
    provider = runtime.provider(upstream)
    if not provider.supports(Capability.BULK_LIST):
        report.errors.append(f"upstream {upstream}: no bulk listing, drift not checked")
        return
    ours = {s.upstream_id: s for s in services if s.upstream_id}
    held: set[str] = set(ours)
    if report.source is not None:
        # Accounts of other sources' services are theirs, not orphans.
        with runtime.db.read() as session:
            held = set(session.execute(select(Service.upstream_id).where(
                Service.upstream == upstream, Service.upstream_id.is_not(None))).scalars())
    seen: set[str] = set()
    drifted: dict[str, list[str]] = {}
    usage: dict[str, dict[str, int]] = {}
    compare_limits = provider.supports(Capability.LIMITS)
    terms = provider.supports(Capability.TERMS)
    # Services with a converge job waiting or running are being changed right now (an event,
    # this pass's own due-date step): what the upstream shows of them is not drift.
    with runtime.db.read() as session:
        busy = set(session.execute(select(Job.service_id).where(
            Job.state.in_((*JobState.RUNNABLE, JobState.RUNNING)))).scalars())
    try:
        for account in _list_everything(runtime, upstream, report):
            service = ours.get(account.id)
            if service is None:
                if account.id not in held and account.status != AccountStatus.DELETED:
                    report.orphans.append({"upstream": upstream, "id": account.id, "domain": account.domain,
                                           "status": account.status.value})
                continue
            seen.add(account.id)
            try:
                kinds = [] if service.id in busy else _drift(service, account, compare_limits)
                if (terms and service.desired_status != DesiredStatus.TERMINATED and account.paid_until
                        and service.next_due_date and account.paid_until < service.next_due_date):
                    kinds.append(TERM_BEHIND)
            except Exception as exc:   # one broken row must not stop the pass for everyone
                report.failed(service.id, "the drift check", exc)
                continue
            for kind in kinds:
                report.add(kind, service.id)
            if kinds:
                drifted[service.id] = kinds
            if account.status != AccountStatus.DELETED and provider.lists_usage:
                usage[service.id] = account.usage.as_dict()
    except ProviderError as exc:
        report.errors.append(f"upstream {upstream}: listing failed ({exc.code}); drift not judged")
        return
    for service in services:
        live = service.desired_status != DesiredStatus.TERMINATED
        # Gone upstream, or never created (its create job failed) and nothing queued to fix it.
        gone = service.upstream_id and service.upstream_id not in seen and service.id not in busy
        never = not service.upstream_id and service.id not in busy
        if live and (gone or never):
            report.add(DRIFT_MISSING, service.id)
            drifted[service.id] = [DRIFT_MISSING]
    if report.dry_run:
        return
    with runtime.db.transaction() as session:
        for service_id, kinds in drifted.items():
            _queue_converge(session, runtime, service_id, "reconcile:drift", report)
            if any(kind in DRIFT_KINDS for kind in kinds):
                notify(session, runtime, "service.drift", service_id, {"kinds": kinds})
        read_at = utcnow()  # when it was read, even on a what-if pass judged at another instant
        for service_id, used in usage.items():
            service = session.get(Service, service_id)
            service.usage = used
            service.usage_at = read_at
            report.usage_updated += 1


def collect_usage(runtime: Runtime) -> int:
    """Read usage account by account where an upstream's listing carries none
    (a reconcile pass stores it for the others); returns how many were updated."""
    updated = 0
    for upstream in sorted(runtime.catalog.upstreams):
        provider = runtime.provider(upstream)
        if provider.lists_usage:
            continue
        with runtime.db.read() as session:
            services = list(session.execute(select(Service.id, Service.upstream_id).where(
                Service.upstream == upstream, Service.upstream_id.is_not(None),
                Service.desired_status != DesiredStatus.TERMINATED)).all())
        for service_id, account_id in services:
            try:
                account = provider.get_account(account_id)
            except ProviderError as exc:
                log.warning("usage of service %s not read: %s", service_id, exc.code)
                continue
            with runtime.db.transaction() as session:
                service = session.get(Service, service_id)
                service.usage, service.usage_at = account.usage.as_dict(), utcnow()
            updated += 1
    return updated


# --- the pass --------------------------------------------------------------------------------

def evaluate(runtime: Runtime, at: dt.datetime, dry_run: bool, source: str | None = None) -> Report:
    report = Report(at=at, dry_run=dry_run, source=source)

    def judged(stmt):
        return stmt if source is None else stmt.where(Service.source == source)

    with runtime.db.read() as session:
        services = list(session.execute(judged(select(Service))).scalars())
    check_due_dates(runtime, services, at, report)
    upstreams = {service.upstream for service in services} if source is not None else runtime.catalog.upstreams
    for upstream in sorted(u for u in upstreams if u in runtime.catalog.upstreams):
        # Re-read: the due-date step may just have changed some of them.
        with runtime.db.read() as session:
            current = list(session.execute(judged(select(Service).where(Service.upstream == upstream))).scalars())
        try:
            check_upstream(runtime, upstream, current, at, report)
        except ProviderError as exc:
            report.errors.append(f"upstream {upstream}: {exc.code}")
    return report


#: how far ahead of the server's clock an ``at`` may be and still count as now
AT_SKEW = dt.timedelta(minutes=1)


class InvalidInstant(ValueError):
    """An ``at`` a pass must not be judged at; ``status`` is the HTTP answer's."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def check_instant(at: dt.datetime | None, dry_run: bool, now: dt.datetime | None = None) -> None:
    """Refuse an ``at`` outside the date window (400) or, unless ``dry_run``, in the
    future (422): judging due dates ahead of time is a what-if, never an action (a
    far-future real pass would suspend and terminate everyone)."""
    if at is None:
        return
    if not in_window(at):
        raise InvalidInstant(400, "invalid_at", f"at: {DATE_WINDOW}")
    if not dry_run and at > (now or utcnow()) + AT_SKEW:
        raise InvalidInstant(422, "future_at_requires_dry_run",
                             "at is in the future: a pass judged ahead of time may only be a dry run "
                             "(set dry_run).")


def run_pass(runtime: Runtime, *, at: dt.datetime | None = None, dry_run: bool = False,
             trigger: str = "cli", run_id: str | None = None, source: str | None = None) -> ReconcileRun:
    """Run one pass and store its report; ``run_id`` continues a run created by the API.

    ``source`` restricts it to one billing source's services. ``at`` is not checked
    here (tests judge future instants to play time forward); the API and the command
    line refuse what ``check_instant`` refuses."""
    at = at or utcnow()
    with runtime.db.transaction() as session:
        run = session.get(ReconcileRun, run_id) if run_id else None
        if run is None:
            run = ReconcileRun(trigger=trigger, at=at, dry_run=dry_run, source=source, state="running",
                               started_at=utcnow())
            session.add(run)
            session.flush()
        run_id = run.id
    try:
        report = evaluate(runtime, at, dry_run, source).as_dict()
        state = "finished"
    except Exception as exc:
        log.exception("reconcile run %s failed", run_id)
        report, state = {"errors": [f"the pass failed: {type(exc).__name__}"]}, "failed"
    with runtime.db.transaction() as session:
        run = session.get(ReconcileRun, run_id)
        run.state, run.report, run.finished_at = state, report, utcnow()
    log.info("reconcile run %s (%s%s): %s", run_id, trigger, ", dry run" if dry_run else "",
             report.get("counts", report.get("errors")))
    return run
