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
  converge job, unless its newest job failed for a reason a repeat would meet again
  (``held_after_failed_job``: reported, left for billing or an operator); accounts
  nobody owns are reported as orphans, never deleted;
- **usage and status**: what each listed account uses, and the status it shows, are
  stored on its service where they changed.

Every change goes through the same path as billing events: desired state
moves, a converge job is queued, and the billing system is notified. One
service whose check fails is reported (``check_failed``) and never stops the
pass for the others. A pass may be restricted to one billing source (started by
that source's API key): it judges only that source's services and reports no
orphans (they belong to no source).
"""
from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import time
from array import array
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, and_, cast, func, or_, select, update

from . import jobs
from .billing.sources import AUTHORITY_BILLING, authority_for
from .db import utcnow
from .events import DATE_WINDOW, in_window
from .lifecycle import OVERDUE_REASON, is_overdue_suspension, suspend
from .models import DesiredStatus, Job, JobState, ReconcileRun, Service, SuspendedBy
from .notifications import notify
from .products import Product
from .providers.base import AccountStatus, Capability, UpstreamAccount
from .providers.errors import Conflict, LimitExceeded, NotSupported, ProviderError, ValidationError
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
# Drifted, but its newest job failed for a reason repeating cannot cure (the upstream
# refused the service's parameters, e.g. a domain it rejected): no new job until billing
# or an operator changes something, so the pass does not fail (and report) it again.
HELD_AFTER_FAILURE = "held_after_failed_job"
DRIFT_KINDS = (DRIFT_STATUS, DRIFT_LIMITS, DRIFT_MISSING)
#: error codes of a failed job that a converge repeated unchanged would meet again
PERMANENT_FAILURES = frozenset({ValidationError.code, LimitExceeded.code, Conflict.code, NotSupported.code})


@dataclass
class Report:
    at: dt.datetime
    dry_run: bool
    source: str | None = None        # the one billing source judged, None: all
    #: kind -> the services found so (a dict used as an ordered set: adding is O(1))
    services: dict[str, dict[str, None]] = field(default_factory=lambda: defaultdict(dict))
    #: service key -> why it could not be judged
    service_errors: dict[str, str] = field(default_factory=dict)
    orphans: list[dict[str, Any]] = field(default_factory=list)
    calls: Counter = field(default_factory=Counter)
    jobs_queued: int = 0
    usage_updated: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    #: told how far the pass is (``run_pass`` stores it on the run's row); not in the report
    on_progress: Callable[[dict[str, Any]], None] | None = field(default=None, repr=False)
    progress: dict[str, Any] = field(default_factory=dict, repr=False)

    def step(self, what: str, **extra: Any) -> None:
        """The pass moves on to ``what`` (due dates, one upstream's listing)."""
        self.progress = {**{k: v for k, v in self.progress.items() if k == "upstreams"}, "step": what,
                         **extra, "pages": 0, "accounts": 0}
        self._tell()

    def page_read(self, accounts: int) -> None:
        self.progress["pages"] = self.progress.get("pages", 0) + 1
        self.progress["accounts"] = self.progress.get("accounts", 0) + accounts
        self._tell()

    def _tell(self) -> None:
        if self.on_progress is not None:
            self.on_progress(dict(self.progress))

    def add(self, kind: str, service_id: str) -> None:
        self.services[kind][service_id] = None

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


#: what the due-date check reads: rows, not ORM objects (a pass over a million services
#: holds few of them at a time)
_DUE_COLUMNS = (Service.id, Service.source, Service.desired_status, Service.next_due_date,
                Service.auto_suspend_enabled, Service.auto_suspend_until, Service.suspended_by,
                Service.suspend_reason, Service.suspended_at)
#: what the drift check reads of each service a page of the listing names; limits and usage
#: as their JSON text, decoded once per distinct text (a fleet shares a few plans)
_HOLDER_COLUMNS = (Service.id, Service.source, Service.upstream, Service.upstream_id, Service.desired_status,
                   Service.next_due_date, Service.observed_status,
                   cast(Service.limits, Text).label("limits"), cast(Service.usage, Text).label("usage"))


class _Decoded(dict):
    """JSON texts decoded once: text -> value (its values are shared; never change them)."""

    def __missing__(self, text: str | None) -> Any:
        value = json.loads(text) if text is not None else None
        if len(self) < 100_000:
            self[text] = value
        return value


def _scoped(stmt, source: str | None):
    return stmt if source is None else stmt.where(Service.source == source)


def _due_candidates(session, product: Product, at: dt.datetime, source: str | None):
    """The services of ``product`` a due-date finding can concern at ``at``: active past
    their due date and grace, or suspended for at least ``terminate_after_days``. The
    database narrows them down; ``_due_findings`` judges each."""
    policy = product.lifecycle
    stmt = select(*_DUE_COLUMNS).where(Service.product_key == product.id, or_(
        and_(Service.desired_status == DesiredStatus.ACTIVE,
             Service.next_due_date < at.date() - dt.timedelta(days=policy.suspend_grace_days)),
        and_(Service.desired_status == DesiredStatus.SUSPENDED,
             Service.suspended_at <= at - dt.timedelta(days=policy.terminate_after_days))))
    return session.execute(_scoped(stmt, source).execution_options(yield_per=1000))


def check_due_dates(runtime: Runtime, at: dt.datetime, report: Report) -> None:
    products = runtime.catalog.products
    findings: list[tuple[str, str]] = []     # (service, kind) to act on, once the reads are done
    with runtime.db.read() as session:
        unknown = _scoped(select(Service.id, Service.product_key).where(Service.product_key.not_in(list(products))),
                          report.source)
        for service_id, product_key in session.execute(unknown):
            report.add(CHECK_FAILED, service_id)
            report.service_errors[service_id] = f"product {product_key!r} is no longer configured"
        authorities: dict[tuple[str, str], str] = {}     # (source, product) -> authority, once per pass
        for product in products.values():
            for service in _due_candidates(session, product, at, report.source):
                pair = (service.source, product.id)
                try:
                    if pair not in authorities:
                        authorities[pair] = _authority(runtime, service, product)
                    kind = _due_findings(service, product, at, authorities[pair])
                except Exception as exc:   # one broken row must not stop the pass for everyone
                    report.failed(service.id, "the due-date check", exc)
                    continue
                if kind is None:
                    continue
                report.add(kind, service.id)
                if not report.dry_run and kind in ACTED_ON:
                    findings.append((service.id, kind))
    for service_id, kind in findings:
        try:
            _apply_due(runtime, service_id, kind, at, report)
        except Exception as exc:
            report.failed(service_id, "the due-date check", exc)


# --- drift, orphans, usage, terms ----------------------------------------------------------

def _drift(desired: str, limits: Any, account: UpstreamAccount, compare_limits: bool) -> list[str]:
    if account.status == AccountStatus.PENDING:
        return []  # still being set up: a job is (or was) on it
    kinds = []
    if account.status == AccountStatus.DELETED:
        if desired != DesiredStatus.TERMINATED:
            kinds.append(DRIFT_MISSING)
        return kinds
    if ((desired == DesiredStatus.ACTIVE and account.status != AccountStatus.ACTIVE)
            or (desired == DesiredStatus.SUSPENDED and account.status != AccountStatus.SUSPENDED)
            or desired == DesiredStatus.TERMINATED):
        kinds.append(DRIFT_STATUS)
    if compare_limits and desired != DesiredStatus.TERMINATED:
        shown = account.limits
        for key, value in (limits or {}).items():
            if key in shown and shown[key] != value:
                kinds.append(DRIFT_LIMITS)
                break
    return kinds


def _pages(runtime: Runtime, upstream: str, report: Report) -> Iterator[list[UpstreamAccount]]:
    """The upstream's accounts a page at a time, the next page read while this one is
    judged (the upstream's answer time and our own work overlap; one call at a time)."""
    provider = runtime.provider(upstream)
    per_page = runtime.settings.reconcile_page_size
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"reconcile-{upstream}") as reader:
        # The reader thread runs in this context: a quiet pass stays quiet there too.
        page, pending = 1, reader.submit(contextvars.copy_context().run, provider.list_accounts,
                                         page=1, per_page=per_page)
        while True:
            batch = pending.result()
            report.calls[upstream] += 1
            more = batch.has_more and bool(batch.items)
            if more:
                pending = reader.submit(contextvars.copy_context().run, provider.list_accounts,
                                        page=page + 1, per_page=per_page)
            try:
                yield batch.items
            except GeneratorExit:
                if more:
                    pending.cancel()
                raise
            if not more:
                return
            page += 1


@dataclass
class _UpstreamCheck:
    """What one upstream's listing showed, page by page."""
    upstream: str
    compare_limits: bool
    terms: bool
    lists_usage: bool
    busy: set[str]                  # services with a converge job waiting or running
    #: hash() of each account id that a judged live service holds: 8 bytes each, so a
    #: million fit in 8 MB (a collision could at worst hide one missing account for a pass)
    seen: array = field(default_factory=lambda: array("q"))
    drifted: dict[str, list[str]] = field(default_factory=dict)
    decoded: _Decoded = field(default_factory=_Decoded)


def _judge_page(session, check: _UpstreamCheck, accounts: list[UpstreamAccount], report: Report
                ) -> list[dict[str, Any]]:
    """Drift, terms and orphans of one page; returns the rows to write: usage that
    changed, and the observed status where the listing shows another one."""
    # By account id alone, the upstream checked here: with the upstream in the WHERE
    # clause SQLite walks the (upstream, created_at, id) listing index, every service of
    # the upstream per page, instead of looking the page's ids up.
    rows = session.connection().execute(select(*_HOLDER_COLUMNS).where(
        Service.upstream_id.in_([a.id for a in accounts])))
    holders = {row.upstream_id: row for row in rows if row.upstream == check.upstream}
    decoded = check.decoded
    changed = []
    for account in accounts:
        service = holders.get(account.id)
        if service is None:
            if account.status != AccountStatus.DELETED:
                report.orphans.append({"upstream": check.upstream, "id": account.id, "domain": account.domain,
                                       "status": account.status.value})
            continue
        if report.source is not None and service.source != report.source:
            continue            # another billing source's: not judged by this pass, not an orphan
        if service.desired_status != DesiredStatus.TERMINATED:
            check.seen.append(hash(account.id))
        try:
            kinds = [] if service.id in check.busy else _drift(
                service.desired_status, decoded[service.limits], account, check.compare_limits)
            if (check.terms and service.desired_status != DesiredStatus.TERMINATED and account.paid_until
                    and service.next_due_date and account.paid_until < service.next_due_date):
                kinds.append(TERM_BEHIND)
        except Exception as exc:   # one broken row must not stop the pass for everyone
            report.failed(service.id, "the drift check", exc)
            continue
        for kind in kinds:
            report.add(kind, service.id)
        if kinds:
            check.drifted[service.id] = kinds
        row: dict[str, Any] = {}
        if (service.id not in check.busy and service.desired_status != DesiredStatus.TERMINATED
                and account.status.value != service.observed_status):
            row["observed_status"] = account.status.value   # what the upstream shows now
        if account.status != AccountStatus.DELETED and check.lists_usage:
            used = account.usage.as_dict()
            if used != decoded[service.usage]:
                row["usage"] = used
        if row:
            row["id"] = service.id
            changed.append(row)
    return changed


def _missing(runtime: Runtime, check: _UpstreamCheck, listed_from: dt.datetime, report: Report) -> None:
    """Live services whose account the listing did not show, or that never got one, and
    that no job is working on. A service changed since the listing began is left to the
    next pass (its account may have been made after its page was read)."""
    seen = array("q", sorted(check.seen))
    check.seen = array("q")
    stmt = _scoped(select(Service.id, Service.upstream_id).where(
        Service.upstream == check.upstream, Service.desired_status != DesiredStatus.TERMINATED,
        Service.updated_at <= listed_from), report.source)
    with runtime.db.read() as session:
        for service_id, account_id in session.execute(stmt.execution_options(yield_per=5000)):
            if service_id in check.busy:
                continue
            if account_id is not None:
                key = hash(account_id)
                at = bisect_left(seen, key)
                if at < len(seen) and seen[at] == key:
                    continue
            report.add(DRIFT_MISSING, service_id)
            check.drifted[service_id] = [DRIFT_MISSING]


def _store_observed(runtime: Runtime, changed: list[dict[str, Any]], report: Report) -> None:
    """Write what a page showed: usage (with when it was read, even on a what-if pass
    judged at another instant) and observed statuses. Rows alike are written together."""
    read_at = utcnow()
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in changed:
        if "usage" in row:
            row["usage_at"] = read_at
        groups[tuple(sorted(row))].append(row)
    with runtime.db.transaction() as session:
        for rows in groups.values():
            session.execute(update(Service), rows)
    report.usage_updated += sum(1 for row in changed if "usage" in row)


def _held(session, service_ids: list[str]) -> dict[str, str]:
    """The services whose newest job failed for good with a PERMANENT_FAILURES code:
    service id -> that code."""
    held: dict[str, str] = {}
    for start in range(0, len(service_ids), 500):
        chunk = service_ids[start:start + 500]
        newest = (select(Job.service_id, func.max(Job.created_at).label("created_at"))
                  .where(Job.service_id.in_(chunk)).group_by(Job.service_id).subquery())
        rows = session.execute(select(Job.service_id, Job.state, Job.error_code).join(
            newest, and_(Job.service_id == newest.c.service_id, Job.created_at == newest.c.created_at)))
        for service_id, state, code in rows:
            if state == JobState.FAILED and code in PERMANENT_FAILURES:
                held[service_id] = code
    return held


def check_upstream(runtime: Runtime, upstream: str, at: dt.datetime, report: Report) -> None:
    """Drift, terms, orphans and usage of one upstream, its listing read page by page and
    judged against the database a page at a time. Only what changed is written."""
    provider = runtime.provider(upstream)
    if not provider.supports(Capability.BULK_LIST):
        report.errors.append(f"upstream {upstream}: no bulk listing, drift not checked")
        return
    # Services with a converge job waiting or running are being changed right now (an event,
    # this pass's own due-date step): what the upstream shows of them is not drift.
    with runtime.db.read() as session:
        busy = set(session.execute(select(Job.service_id).where(
            Job.state.in_((*JobState.RUNNABLE, JobState.RUNNING)))).scalars())
    check = _UpstreamCheck(upstream, provider.supports(Capability.LIMITS), provider.supports(Capability.TERMS),
                           provider.lists_usage, busy)
    listed_from = utcnow()
    try:
        for accounts in _pages(runtime, upstream, report):
            with runtime.db.read() as session:
                changed = _judge_page(session, check, accounts, report)
            if changed and not report.dry_run:
                _store_observed(runtime, changed, report)
            report.page_read(len(accounts))
    except ProviderError as exc:
        report.errors.append(f"upstream {upstream}: listing failed ({exc.code}); drift not judged")
        return
    _missing(runtime, check, listed_from, report)
    if not check.drifted:
        return
    with runtime.db.read() as session:
        held = _held(session, list(check.drifted))
    for service_id in held:
        report.add(HELD_AFTER_FAILURE, service_id)
    if report.dry_run:
        return
    with runtime.db.transaction() as session:
        for service_id, kinds in check.drifted.items():
            if service_id in held:
                continue
            _queue_converge(session, runtime, service_id, "reconcile:drift", report)
            if any(kind in DRIFT_KINDS for kind in kinds):
                notify(session, runtime, "service.drift", service_id, {"kinds": kinds})


def collect_usage(runtime: Runtime) -> int:
    """Read usage account by account where an upstream's listing carries none
    (a reconcile pass stores it for the others); returns how many were updated."""
    updated = 0
    for upstream in sorted(runtime.catalog.upstreams):
        provider = runtime.provider(upstream)
        if provider.lists_usage:
            continue
        with runtime.db.read() as session:
            services = list(session.execute(select(Service.id, Service.upstream_id, Service.usage).where(
                Service.upstream == upstream, Service.upstream_id.is_not(None),
                Service.desired_status != DesiredStatus.TERMINATED)).all())
        for service_id, account_id, stored in services:
            try:
                account = provider.get_account(account_id)
            except ProviderError as exc:
                log.warning("usage of service %s not read: %s", service_id, exc.code)
                continue
            used = account.usage.as_dict()
            if used == stored:
                continue            # the same figures: nothing to write
            with runtime.db.transaction() as session:
                session.execute(update(Service).where(Service.id == service_id).values(usage=used, usage_at=utcnow()))
            updated += 1
    return updated


# --- the pass --------------------------------------------------------------------------------

def evaluate(runtime: Runtime, at: dt.datetime, dry_run: bool, source: str | None = None,
             on_progress: Callable[[dict[str, Any]], None] | None = None) -> Report:
    report = Report(at=at, dry_run=dry_run, source=source, on_progress=on_progress)
    if source is None:
        upstreams = set(runtime.catalog.upstreams)      # all of them: orphans too
    else:
        with runtime.db.read() as session:
            upstreams = set(session.execute(
                select(Service.upstream).where(Service.source == source).distinct()).scalars())
    names = sorted(u for u in upstreams if u in runtime.catalog.upstreams)
    report.progress["upstreams"] = len(names)
    report.step("due dates")
    check_due_dates(runtime, at, report)
    for number, upstream in enumerate(names, 1):
        report.step("upstream", upstream=upstream, upstream_number=number)
        try:
            check_upstream(runtime, upstream, at, report)
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


#: a running pass writes its progress to its own row at most this often (seconds)
PROGRESS_EVERY = 1.0


def _progress_writer(runtime: Runtime, run_id: str) -> Callable[[dict[str, Any]], None]:
    """Store a running pass's progress as its report (``{"progress": {...}}``), at most once
    per ``PROGRESS_EVERY`` and only at a step or a page read: the run's own row, never a
    service's, so a pass that finds nothing still writes nothing to services. The final
    report replaces it."""
    last = [0.0]

    def write(progress: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY:
            return
        last[0] = now
        progress = {**progress, "updated_at": utcnow().isoformat()}
        try:
            with runtime.db.transaction() as session:
                session.execute(update(ReconcileRun).where(ReconcileRun.id == run_id,
                                                           ReconcileRun.state == "running")
                                .values(report={"progress": progress}))
        except Exception:            # progress is a courtesy: never fail the pass over it
            log.warning("reconcile run %s: progress not stored", run_id, exc_info=True)

    return write


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
        report = evaluate(runtime, at, dry_run, source, on_progress=_progress_writer(runtime, run_id)).as_dict()
        state = "finished"
    except Exception as exc:
        log.exception("reconcile run %s failed", run_id)
        report, state = {"errors": [f"the pass failed: {type(exc).__name__}"]}, "failed"
    with runtime.db.transaction() as session:
        run = session.get(ReconcileRun, run_id)
        run.state, run.report, run.finished_at = state, report, utcnow()
    summary = pass_summary(report)
    # A scheduled pass that did nothing (at most re-reporting what stands, such as
    # orphans) is not worth a line every interval.
    level = logging.INFO if trigger != "schedule" or state != "finished" or acted(report) else logging.DEBUG
    log.log(level, "reconcile run %s (%s%s, %s): %s", run_id, trigger, ", dry run" if dry_run else "", state,
            summary or "nothing to do")
    return run


#: findings that only report something standing until a person acts: a scheduled pass
#: finds them again every interval
STANDING = frozenset({ORPHAN, AWAITING_OPERATOR, BILLING_ACTIVE_OVERDUE, SUSPEND_OVERRIDDEN})


def acted(report: dict[str, Any]) -> bool:
    """Whether a pass changed or queued something, or could not judge something."""
    counts = report.get("counts") or {}
    return bool(set(counts) - STANDING or report.get("jobs_queued") or report.get("usage_updated")
                or report.get("errors"))


def pass_summary(report: dict[str, Any]) -> str:
    """What a pass found and did, with counts (empty when it found and did nothing):
    ``2 drift_limits, 1 orphan; 2 converge job(s) queued; usage of 3 service(s) updated``."""
    parts = []
    counts = report.get("counts") or {}
    if counts:
        parts.append(", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))
    if report.get("jobs_queued"):
        parts.append(f"{report['jobs_queued']} converge job(s) queued")
    if report.get("usage_updated"):
        parts.append(f"usage of {report['usage_updated']} service(s) updated")
    if report.get("errors"):
        parts.append(f"{len(report['errors'])} error(s): {'; '.join(report['errors'][:3])}")
    return "; ".join(parts)
