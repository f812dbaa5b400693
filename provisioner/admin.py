"""What the admin API (and operators' tools) ask of the database and the catalog.

Plain functions over a session: filtered, paginated queries, a job retry, an
upstream connection test. ``provisioner.web.api`` only parses requests and
serialises what these return (``provisioner.web.schemas``).

Every function takes the caller's ``Scope``: an operator key sees every billing
source, a source-scoped key only its own, and anything of another source is a
404 exactly like something that does not exist. A service is addressed by its
billing id (with ``source`` when several sources have that id) or by its key.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

from sqlalchemy import Select, and_, case, false, func, or_, select, true, update
from sqlalchemy.orm import Session, selectinload, undefer

from . import jobs
from .billing.keys import DEFAULT_SOURCE, service_key
from .billing.sources import AUTHORITY_BILLING, AUTHORITY_PROVISIONER
from .client import logins
from .db import Database, utcnow
from .lifecycle import lift_suspension, suspend
from .notifications import notify
from .models import (ApiKey, DesiredStatus, Event, Job, JobState, Notification, OperatorAction, ReconcileRun,
                     Service, SuspendedBy)
from .products import Catalog
from .providers.errors import ProviderError
from .runtime import Runtime
from .web.errors import ApiError

log = logging.getLogger("provisioner.admin")

RECENT = 20          # events and jobs shown with a service
# last_used_at is bookkeeping: refreshing it at most this often spares a write per request.
TOUCH_INTERVAL = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Scope:
    """What a caller may see: one billing source (a source-scoped API key) or all (None)."""
    source: str | None = None

    def allows(self, source: str | None) -> bool:
        return self.source is None or source == self.source


ALL_SOURCES = Scope()


@dataclass
class Page:
    items: Sequence[Any]
    page: int
    per_page: int
    total: int
    #: counted only up to a limit (``count_limit``): ``total`` is that limit, there are more
    more: bool = False


class EventRecord(NamedTuple):
    event: Event
    job_id: str | None


@dataclass
class ServiceDetail:
    service: Service
    events: list[EventRecord]
    jobs: list[Job]


def _paginate(session: Session, query: Select, page: int, per_page: int, *, scalars: bool = True,
              count_limit: int | None = None) -> Page:
    """One page and the total; with ``count_limit``, counting stops there (a person reads
    "more than 10,000"; counting 100,000 matches on every page view is what costs)."""
    counted = query.order_by(None)
    if count_limit is not None:
        counted = counted.limit(count_limit + 1)
    total = session.execute(select(func.count()).select_from(counted.subquery())).scalar_one()
    result = session.execute(query.limit(per_page).offset((page - 1) * per_page))
    items = result.scalars().all() if scalars else result.all()
    if count_limit is not None and total > count_limit:
        return Page(list(items), page, per_page, count_limit, more=True)
    return Page(list(items), page, per_page, total)


def _in_memory_page(items: list, page: int, per_page: int) -> Page:
    start = (page - 1) * per_page
    return Page(items[start:start + per_page], page, per_page, len(items))


# --- API keys ------------------------------------------------------------------------------

def touch_api_key(db: Database, key: ApiKey, now: dt.datetime | None = None) -> None:
    """Record that ``key`` was used, at most once per TOUCH_INTERVAL."""
    now = now or utcnow()
    if key.last_used_at is not None and now - key.last_used_at < TOUCH_INTERVAL:
        return
    with db.transaction() as session:
        # Conditional, so concurrent requests of one key write once.
        session.execute(update(ApiKey).where(
            ApiKey.id == key.id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - TOUCH_INTERVAL),
        ).values(last_used_at=now))


# --- services --------------------------------------------------------------------------------

# --- addressing a service ---------------------------------------------------------------------

def _not_found(service_id: str) -> ApiError:
    return ApiError(404, "service_not_found", f"No service with id {service_id!r}.")


def find_service(session: Session, service_id: str, scope: Scope = ALL_SOURCES, source: str | None = None,
                 *, for_update: bool = False) -> Service:
    """The service ``service_id`` names for this caller: its billing id within the
    key's source (or ``source``), else its key. 404 if the caller cannot see it; 409
    when an operator's billing id is ambiguous (never a guess)."""
    if source is not None and not scope.allows(source):
        raise _not_found(service_id)
    wanted = scope.source or source
    stmt = select(Service).where(Service.billing_id == service_id)
    if wanted is not None:
        stmt = stmt.where(Service.source == wanted)
    if for_update:
        stmt = stmt.with_for_update()
    found = list(session.execute(stmt.limit(10)).scalars())
    if not found and wanted is None:
        by_key = session.get(Service, service_id, with_for_update=for_update or None)
        found = [by_key] if by_key is not None else []
    if not found:
        raise _not_found(service_id)
    if len(found) > 1:
        sources = ", ".join(sorted(s.source for s in found))
        raise ApiError(409, "ambiguous_service",
                       f"Several billing sources have a service {service_id!r} ({sources}); "
                       "say which with ?source=NAME.", {"source": f"one of {sources}"})
    return found[0]


def _service_keys(service_id: str, scope: Scope, source: str | None) -> Select:
    """Keys of the services a billing-id filter means (every source the caller sees)."""
    stmt = select(Service.id).where(or_(Service.billing_id == service_id, Service.id == service_id))
    if scope.source or source:
        stmt = stmt.where(Service.source == (scope.source or source))
    return stmt


def _in_scope(stmt: Select, column, scope: Scope, query: dict[str, Any]) -> Select:
    """``stmt`` limited to the caller's source and the ``source`` filter, on ``column``."""
    if scope.source is not None:
        stmt = stmt.where(column == scope.source)
    if "source" in query:
        stmt = stmt.where(column == query["source"])
    return stmt


def list_services(session: Session, query: dict[str, Any], catalog: Catalog | None = None,
                  now: dt.datetime | None = None, scope: Scope = ALL_SOURCES,
                  provisioner_sources: Sequence[str] | None = None, *, sources: Sequence[str] = (DEFAULT_SOURCE,),
                  count_limit: int | None = None) -> Page:
    """``sources``: the billing sources a ``search`` for a bare billing id looks in."""
    stmt = _in_scope(select(Service).order_by(Service.created_at, Service.id), Service.source, scope, query)
    if "domain" in query:
        stmt = stmt.where(Service.domain == query["domain"].lower())
    if "search" in query:
        stmt = stmt.where(_service_search(query["search"], sources))
    if "product_key" in query:
        stmt = stmt.where(Service.product_key == query["product_key"])
    if query.get("failing"):
        stmt = stmt.where(_failing())
    if query.get("drifted"):
        stmt = stmt.where(_status_drift())
    if "status" in query:
        stmt = stmt.where(Service.desired_status.in_(query["status"]))
    if "observed_status" in query:
        stmt = stmt.where(Service.observed_status.in_(query["observed_status"]))
    if "client_id" in query:
        stmt = stmt.where(Service.client_id == query["client_id"])
    if "product_id" in query:
        stmt = stmt.where(Service.billing_product_id == query["product_id"])
    if "upstream" in query:
        stmt = stmt.where(Service.upstream == query["upstream"])
    if "expires_before" in query:
        stmt = stmt.where(Service.next_due_date < query["expires_before"])
    if "expires_after" in query:
        stmt = stmt.where(Service.next_due_date > query["expires_after"])
    if "awaiting_termination" in query:
        awaiting = awaiting_termination(catalog, now or utcnow(), provisioner_sources)
        stmt = stmt.where(Service.id.in_(awaiting) if query["awaiting_termination"]
                          else Service.id.not_in(awaiting))
    return _paginate(session, stmt, query["page"], query["per_page"], count_limit=count_limit)


def _service_search(text: str, sources: Sequence[str]):
    """A console search: a domain starting with ``text``, or exactly a billing id (of one of
    ``sources``), a service key, a client id or an upstream id. Every branch is an index
    lookup (a domain prefix is a range of ix_services_domain), so the search stays fast
    with 100,000s of services; "contains" would read them all."""
    text = text.strip()
    prefix = text.lower()
    keys = {text, *(service_key(source, text) for source in sources)}
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    by_domain = and_(Service.domain >= prefix, Service.domain < prefix[:-1] + chr(min(ord(prefix[-1]) + 1, 0x10FFFF)),
                     Service.domain.like(f"{escaped}%", escape="\\")) if prefix else false()
    return or_(by_domain, Service.id.in_(sorted(keys)), Service.client_id == text, Service.upstream_id == text)


#: the observed status each desired status should end in
OBSERVED_FOR = {DesiredStatus.ACTIVE: "active", DesiredStatus.SUSPENDED: "suspended",
                DesiredStatus.TERMINATED: "deleted"}


def _status_drift():
    """Services seen upstream whose observed status is not what their desired status means
    (a quick drift; a reconcile pass also compares limits, domains and orphans)."""
    return and_(Service.observed_status.is_not(None),
                or_(*(and_(Service.desired_status == desired, Service.observed_status != observed)
                      for desired, observed in OBSERVED_FOR.items())))


def _failing():
    """Services with a failed or retrying job that no later job has succeeded after."""
    later = Job.__table__.alias("later")
    trouble = Job.__table__.alias("trouble")
    fixed = select(later.c.id).where(later.c.service_id == trouble.c.service_id,
                                     later.c.state == JobState.SUCCEEDED,
                                     later.c.created_at > trouble.c.created_at)
    return Service.id.in_(select(trouble.c.service_id).where(
        trouble.c.state.in_((JobState.FAILED, JobState.RETRYING)), ~fixed.exists()))


def _job_id_of_event():
    # One job per event (intake enqueues it with the event); the first if ever more.
    return (select(Job.id).where(Job.event_id == Event.id)
            .order_by(Job.created_at, Job.id).limit(1).correlate(Event).scalar_subquery())


def get_service(session: Session, service_id: str, scope: Scope = ALL_SOURCES,
                source: str | None = None) -> ServiceDetail:
    service = find_service(session, service_id, scope, source)
    events = session.execute(
        select(Event, _job_id_of_event()).where(Event.service_id == service.id)
        .order_by(Event.received_at.desc(), Event.id.desc()).limit(RECENT)
    ).all()
    recent_jobs = session.execute(
        select(Job).where(Job.service_id == service.id).options(selectinload(Job.attempt_log), *JOB_NAMES)
        .order_by(Job.created_at.desc(), Job.id.desc()).limit(RECENT)
    ).scalars().all()
    return ServiceDetail(service, [EventRecord(*row) for row in events], list(recent_jobs))


# --- jobs ----------------------------------------------------------------------------------------

#: load the service's source and billing id with a job (its answers name them)
JOB_NAMES = (undefer(Job.source), undefer(Job.billing_service_id))


def _scoped_jobs(stmt: Select, scope: Scope, query: dict[str, Any]) -> Select:
    if scope.source is not None or "source" in query:
        stmt = stmt.where(Job.service_id.in_(_in_scope(select(Service.id), Service.source, scope, query)))
    return stmt


#: the console's job order: what needs an operator first (failed, then retrying), newest first
TROUBLE_FIRST = case((Job.state == JobState.FAILED, 0), (Job.state == JobState.RETRYING, 1), else_=2)


def _job_filters(stmt: Select, query: dict[str, Any], scope: Scope) -> Select:
    if "state" in query:
        stmt = stmt.where(Job.state.in_(query["state"]))
    if "service_id" in query:
        stmt = stmt.where(Job.service_id.in_(_service_keys(query["service_id"], scope, query.get("source"))))
    if "upstream" in query:
        stmt = stmt.where(Job.service_id.in_(select(Service.id).where(Service.upstream == query["upstream"])))
    if "error_code" in query:
        stmt = stmt.where(Job.error_code == query["error_code"])
    if "created_after" in query:
        stmt = stmt.where(Job.created_at >= query["created_after"])
    return _scoped_jobs(stmt, scope, query)


def list_jobs(session: Session, query: dict[str, Any], scope: Scope = ALL_SOURCES, *,
              count_limit: int | None = None) -> Page:
    """Newest first; ``trouble_first``: failed, then retrying jobs before the rest (the console)."""
    order = (TROUBLE_FIRST,) if query.get("trouble_first") else ()
    stmt = select(Job).options(*JOB_NAMES).order_by(*order, Job.created_at.desc(), Job.id.desc())
    return _paginate(session, _job_filters(stmt, query, scope), query["page"], query["per_page"],
                     count_limit=count_limit)


def job_error_codes(session: Session, scope: Scope = ALL_SOURCES) -> list[tuple[str, int]]:
    """The error codes of failed and retrying jobs with how many each, most first."""
    stmt = _scoped_jobs(select(Job.error_code, func.count()).where(
        Job.state.in_((JobState.FAILED, JobState.RETRYING)), Job.error_code.is_not(None)), scope, {})
    rows = session.execute(stmt.group_by(Job.error_code).order_by(func.count().desc(), Job.error_code)).all()
    return [(code, count) for code, count in rows]


def failed_job_ids(session: Session, query: dict[str, Any], scope: Scope = ALL_SOURCES,
                   limit: int | None = None) -> list[str]:
    """The failed jobs a filter (``upstream``, ``error_code``, ``source``) selects, oldest
    first; the first ``limit`` of them if given."""
    query = {**query, "state": [JobState.FAILED]}
    stmt = _job_filters(select(Job.id).order_by(Job.created_at, Job.id), query, scope)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.execute(stmt).scalars())


def count_failed_jobs(session: Session, query: dict[str, Any], scope: Scope = ALL_SOURCES) -> int:
    """How many jobs ``failed_job_ids`` would give (what a bulk retry's confirmation says)."""
    query = {**query, "state": [JobState.FAILED]}
    stmt = _job_filters(select(func.count()).select_from(Job), query, scope)
    return session.execute(stmt).scalar_one()


def retry_failed_jobs(session: Session, query: dict[str, Any], *, extra_attempts: int,
                      scope: Scope = ALL_SOURCES, limit: int | None = None) -> list[Job]:
    """Queue again the failed jobs the filter selects (a bulk retry), the oldest ``limit``
    of them if given (one transaction stays bounded); the jobs queued."""
    queued = []
    for job_id in failed_job_ids(session, query, scope, limit):
        job = get_job(session, job_id, for_update=True, scope=scope)
        if job.state == JobState.FAILED:   # another operator may have retried it meanwhile
            jobs.requeue(session, job, extra_attempts=extra_attempts)
            queued.append(job)
    session.flush()
    return queued


def get_job(session: Session, job_id: str, *, for_update: bool = False, scope: Scope = ALL_SOURCES) -> Job:
    stmt = select(Job).where(Job.id == job_id).options(selectinload(Job.attempt_log), *JOB_NAMES)
    if for_update:
        stmt = stmt.with_for_update(of=Job)
    job = session.execute(stmt).scalar_one_or_none()
    if job is None or not scope.allows(job.source):
        raise ApiError(404, "job_not_found", f"No job with id {job_id!r}.")
    return job


def retry_job(session: Session, job_id: str, *, extra_attempts: int, scope: Scope = ALL_SOURCES) -> Job:
    """Queue a failed job again; any other state is a 409 (it is running or done)."""
    job = get_job(session, job_id, for_update=True, scope=scope)
    if job.state != JobState.FAILED:
        raise ApiError(409, "job_not_retryable",
                       f"Job {job_id!r} is {job.state}; only a failed job can be retried.")
    jobs.requeue(session, job, extra_attempts=extra_attempts)
    session.flush()
    return job


# --- events --------------------------------------------------------------------------------------

def list_events(session: Session, query: dict[str, Any], scope: Scope = ALL_SOURCES) -> Page:
    stmt = _in_scope(select(Event, _job_id_of_event()).order_by(Event.received_at.desc(), Event.id.desc()),
                     Event.source, scope, query)
    if "service_id" in query:
        stmt = stmt.where(Event.service_id.in_(_service_keys(query["service_id"], scope, query.get("source"))))
    if "type" in query:
        stmt = stmt.where(Event.type.in_(query["type"]))
    if "outcome" in query:
        stmt = stmt.where(Event.outcome.in_(query["outcome"]))
    page = _paginate(session, stmt, query["page"], query["per_page"], scalars=False)
    page.items = [EventRecord(*row) for row in page.items]
    return page


def get_event(session: Session, event_id: str, scope: Scope = ALL_SOURCES) -> EventRecord:
    row = session.execute(select(Event, _job_id_of_event()).where(Event.id == event_id)).first()
    if row is None or not scope.allows(row[0].source):
        raise ApiError(404, "event_not_found", f"No event with id {event_id!r}.")
    return EventRecord(*row)


# --- configuration: upstreams and products ---------------------------------------------------

def list_upstreams(catalog: Catalog, page: int, per_page: int) -> Page:
    # Names and provider kinds only: the rest of an upstream's block is settings and secrets.
    items = [{"name": name, "provider": str(config.get("provider", ""))}
             for name, config in sorted(catalog.upstreams.items())]
    return _in_memory_page(items, page, per_page)


def list_products(catalog: Catalog, page: int, per_page: int, scope: Scope = ALL_SOURCES) -> Page:
    products = [catalog.products[key] for key in sorted(catalog.products)]
    if scope.source is not None:
        products = [product for product in products if product.sold_by(scope.source)]
    return _in_memory_page(products, page, per_page)


def check_upstream(runtime: Runtime, name: str) -> dict[str, Any]:
    """``{"ok": true}`` or ``{"ok": false, "error": {...}}`` from the adapter's test_connection."""
    if name not in runtime.catalog.upstreams:
        raise ApiError(404, "upstream_not_found", f"No upstream named {name!r} is configured.")
    try:
        runtime.provider(name).test_connection()
    except ProviderError as exc:
        log.warning("upstream %s: connection test failed: %s (%s)", name, exc.code, exc.message)
        # exc.message is the operator text (provider, action, status, masked upstream text).
        return {"ok": False, "error": {"code": exc.code, "message": exc.safe_message, "detail": exc.message}}
    except Exception:
        log.exception("upstream %s: connection test raised", name)
        return {"ok": False, "error": {"code": "internal_error",
                                       "message": "The connection test failed with an internal error."}}
    return {"ok": True}


# --- scheduler: awaiting termination, usage, operator suspensions, reconcile runs, callbacks ----

def awaiting_termination(catalog: Catalog | None, now: dt.datetime,
                         provisioner_sources: Sequence[str] | None = None) -> Select:
    """Ids of services suspended as overdue for their product's ``terminate_after_days``
    whose product leaves termination to an operator, where the provisioner owns the
    lifecycle (the reconcile report's ``awaiting_operator_termination``, as a query).

    ``provisioner_sources``: the billing sources whose lifecycle_authority is
    provisioner (None: every source)."""
    products = catalog.products.values() if catalog is not None else ()
    by_source = true() if provisioner_sources is None else Service.source.in_(list(provisioner_sources))
    due = [and_(Service.product_key == product.id,
                Service.suspended_at <= now - dt.timedelta(days=product.lifecycle.terminate_after_days),
                true() if product.lifecycle.lifecycle_authority == AUTHORITY_PROVISIONER else by_source)
           for product in products if product.lifecycle.terminate_requires_operator
           and product.lifecycle.lifecycle_authority != AUTHORITY_BILLING]
    # lifecycle.is_overdue_suspension in SQL
    overdue = or_(Service.suspended_by == SuspendedBy.SCHEDULER,
                  and_(Service.suspended_by == SuspendedBy.BILLING,
                       func.lower(func.coalesce(Service.suspend_reason, "")).contains("overdue")))
    return select(Service.id).where(Service.desired_status == DesiredStatus.SUSPENDED, overdue,
                                    or_(false(), *due))


@dataclass
class UsageRecord:
    service_id: str            # the billing id
    source: str
    usage: dict[str, Any]
    limits: dict[str, Any]
    #: when these figures were read upstream (a reconcile pass, the usage tick, or a
    #: converge job that saw the account); a pass reading the same figures leaves it
    collected_at: dt.datetime | None


def usage_record(service: Service) -> UsageRecord:
    return UsageRecord(service.billing_id, service.source, dict(service.usage or {}), dict(service.limits or {}),
                       service.usage_at)


def get_usage(session: Session, service_id: str, scope: Scope = ALL_SOURCES,
              source: str | None = None) -> UsageRecord:
    return usage_record(find_service(session, service_id, scope, source))


def list_usage(session: Session, query: dict[str, Any], scope: Scope = ALL_SOURCES) -> Page:
    """Every service's usage (a billing system's daily usage update), oldest service first."""
    stmt = _in_scope(select(Service).order_by(Service.created_at, Service.id), Service.source, scope, query)
    if "upstream" in query:
        stmt = stmt.where(Service.upstream == query["upstream"])
    if "product_id" in query:
        stmt = stmt.where(Service.billing_product_id == query["product_id"])
    if "client_id" in query:
        stmt = stmt.where(Service.client_id == query["client_id"])
    if "status" in query:
        stmt = stmt.where(Service.desired_status.in_(query["status"]))
    page = _paginate(session, stmt, query["page"], query["per_page"])
    page.items = [usage_record(service) for service in page.items]
    return page


def _operator_job(session: Session, service: Service, action: str, max_attempts: int) -> Job:
    job = jobs.enqueue(session, service.id, reason=f"operator:{action}", max_attempts=max_attempts)
    job.attempt_log = []  # a new job has none (and the answer lists them)
    session.flush()
    session.refresh(job, ["source", "billing_service_id"])
    return job


def _live_service(session: Session, service_id: str, scope: Scope, source: str | None) -> Service:
    service = find_service(session, service_id, scope, source, for_update=True)
    if service.desired_status == DesiredStatus.TERMINATED:
        raise ApiError(409, "service_terminated",
                       f"Service {service_id!r} is terminated; only service.create can bring it back.")
    return service


def operator_suspend(session: Session, service_id: str, reason: str, *, max_attempts: int,
                     now: dt.datetime | None = None, scope: Scope = ALL_SOURCES,
                     source: str | None = None) -> Job:
    """Suspend as an operator (only an operator lifts it) and queue the converge job."""
    service = _live_service(session, service_id, scope, source)
    suspend(service, SuspendedBy.OPERATOR, reason, now or utcnow())
    logins.end_service_logins(session, service.id, logins.SUSPENDED, now=now)
    return _operator_job(session, service, "suspend", max_attempts)


def operator_unsuspend(session: Session, service_id: str, *, max_attempts: int, scope: Scope = ALL_SOURCES,
                       source: str | None = None) -> Job:
    """Lift any suspension (operator, billing or overdue) and queue the converge job."""
    service = _live_service(session, service_id, scope, source)
    lift_suspension(service)
    return _operator_job(session, service, "unsuspend", max_attempts)


def operator_converge(session: Session, service_id: str, *, max_attempts: int, scope: Scope = ALL_SOURCES,
                       source: str | None = None) -> Job:
    """Queue a converge job now (an operator's "converge now"), whatever the service's state."""
    service = _live_service(session, service_id, scope, source)
    return _operator_job(session, service, "converge", max_attempts)


def refuse_termination(session: Session, service_id: str, reason: str, *, scope: Scope = ALL_SOURCES,
                       source: str | None = None, now: dt.datetime | None = None) -> Service:
    """An operator's "do not terminate" for a service awaiting termination: it stays
    suspended, now as an operator's suspension (only an operator lifts it), so it leaves
    the awaiting list and the scheduler never terminates it."""
    service = _live_service(session, service_id, scope, source)
    if service.desired_status != DesiredStatus.SUSPENDED:
        raise ApiError(409, "not_suspended", f"Service {service_id!r} is not suspended.")
    service.suspended_by = SuspendedBy.OPERATOR
    service.suspend_reason = f"termination refused: {reason}"[:255]
    service.suspended_at = service.suspended_at or now or utcnow()
    return service


def operator_terminate(session: Session, runtime: Runtime, service_id: str, *, confirm: str, reason: str,
                       scope: Scope = ALL_SOURCES, source: str | None = None) -> Job:
    """Terminate on an operator's explicit confirmation (``confirm`` repeats the service
    id): deletes the upstream account and its mail. The billing system is told."""
    service = _live_service(session, service_id, scope, source)
    if confirm.strip() != service.billing_id:
        raise ApiError(422, "confirmation_mismatch",
                       f"Terminating deletes the service's mail upstream: repeat its id {service.billing_id!r} "
                       "in confirm.", {"confirm": "must repeat the service id"})
    service.desired_status = DesiredStatus.TERMINATED
    service.pending_password = None
    logins.end_service_logins(session, service.id, logins.TERMINATED)
    notify(session, runtime, "service.terminated", service.id, {"reason": reason, "by": "operator"})
    log.warning("service %s: terminated by an operator (%s)", service.id, reason)
    return _operator_job(session, service, "terminate", runtime.settings.job_max_attempts)


def start_reconcile_run(session: Session, *, at: dt.datetime, dry_run: bool,
                        scope: Scope = ALL_SOURCES) -> ReconcileRun:
    """The row of an API-started pass, ``running`` until ``run_reconcile_in_background`` ends it.

    A source-scoped caller's pass judges that source's services only."""
    run = ReconcileRun(trigger="api", at=at, dry_run=dry_run, source=scope.source, state="running",
                       started_at=utcnow(), report={})
    session.add(run)
    session.flush()
    return run


def run_reconcile_in_background(runtime: Runtime, run_id: str, *, at: dt.datetime,
                                dry_run: bool, source: str | None = None) -> threading.Thread:
    """Run the pass of ``start_reconcile_run`` in a thread of this process."""
    from .reconcile import run_pass

    def target() -> None:
        try:
            run_pass(runtime, at=at, dry_run=dry_run, trigger="api", run_id=run_id, source=source)
        except Exception as exc:  # run_pass records its own failures; this is the database failing
            log.exception("reconcile run %s could not be run or recorded", run_id)
            try:
                with runtime.db.transaction() as session:
                    run = session.get(ReconcileRun, run_id)
                    if run is not None and run.state == "running":
                        run.state, run.finished_at = "failed", utcnow()
                        run.report = {"errors": [f"the pass failed: {type(exc).__name__}"]}
            except Exception:
                log.exception("reconcile run %s: could not record the failure", run_id)

    thread = threading.Thread(target=target, name=f"reconcile-{run_id[:8]}", daemon=True)
    thread.start()
    return thread


@dataclass
class RunRecord:
    """A reconcile run with its report as the caller may see it."""
    run: ReconcileRun
    report: dict[str, Any]


def _report_keys(report: dict[str, Any]) -> set[str]:
    keys = {key for ids in (report.get("services") or {}).values() for key in ids}
    return keys | set(report.get("service_errors") or {})


def _scoped_reports(session: Session, runs: list[ReconcileRun], scope: Scope) -> list[RunRecord]:
    """Reports cut down to the caller's source: its own services under their billing ids;
    no orphans (they belong to no source) and no other source's services."""
    if scope.source is None:
        return [RunRecord(run, run.report or {}) for run in runs]
    keys = set().union(*(_report_keys(run.report or {}) for run in runs)) if runs else set()
    mine: dict[str, str] = {}
    for chunk in [sorted(keys)[i:i + 500] for i in range(0, len(keys), 500)]:
        mine.update(session.execute(select(Service.id, Service.billing_id).where(
            Service.source == scope.source, Service.id.in_(chunk))).all())
    records = []
    for run in runs:
        report = dict(run.report or {})
        if "services" in report:
            services = {kind: sorted(mine[k] for k in ids if k in mine)
                        for kind, ids in report["services"].items()}
            services = {kind: ids for kind, ids in services.items() if ids}
            report["services"] = services
            report["counts"] = {kind: len(ids) for kind, ids in services.items()}
            report["orphans"] = []
            report["service_errors"] = {mine[k]: v for k, v in (report.get("service_errors") or {}).items()
                                        if k in mine}
        records.append(RunRecord(run, report))
    return records


def list_reconcile_runs(session: Session, query: dict[str, Any], scope: Scope = ALL_SOURCES) -> Page:
    stmt = select(ReconcileRun).order_by(ReconcileRun.started_at.desc(), ReconcileRun.id.desc())
    if scope.source is not None:
        # Every-source passes (the schedule's) and this source's own; never another's.
        stmt = stmt.where(or_(ReconcileRun.source.is_(None), ReconcileRun.source == scope.source))
    if "state" in query:
        stmt = stmt.where(ReconcileRun.state.in_(query["state"]))
    if "trigger" in query:
        stmt = stmt.where(ReconcileRun.trigger.in_(query["trigger"]))
    page = _paginate(session, stmt, query["page"], query["per_page"])
    page.items = _scoped_reports(session, list(page.items), scope)
    return page


def get_reconcile_run(session: Session, run_id: str, scope: Scope = ALL_SOURCES) -> RunRecord:
    run = session.get(ReconcileRun, run_id)
    if run is None or (run.source is not None and not scope.allows(run.source)):
        raise ApiError(404, "reconcile_run_not_found", f"No reconcile run with id {run_id!r}.")
    return _scoped_reports(session, [run], scope)[0]


def list_notifications(session: Session, query: dict[str, Any], scope: Scope = ALL_SOURCES) -> Page:
    stmt = _in_scope(select(Notification).order_by(Notification.created_at.desc(), Notification.id.desc()),
                     Notification.source, scope, query)
    if "state" in query:
        stmt = stmt.where(Notification.state.in_(query["state"]))
    if "type" in query:
        stmt = stmt.where(Notification.type.in_(query["type"]))
    if "service_id" in query:
        stmt = stmt.where(or_(Notification.service_id == query["service_id"], Notification.service_id.in_(
            _service_keys(query["service_id"], scope, query.get("source")))))
    return _paginate(session, stmt, query["page"], query["per_page"])


def get_notification(session: Session, notification_id: str, scope: Scope = ALL_SOURCES) -> Notification:
    notification = session.get(Notification, notification_id)
    if notification is None or not scope.allows(notification.source):
        raise ApiError(404, "notification_not_found", f"No notification with id {notification_id!r}.")
    return notification


def requeue_notification(session: Session, notification_id: str, *, scope: Scope = ALL_SOURCES,
                         now: dt.datetime | None = None) -> Notification:
    """Deliver a callback that was given up on once more, now; any other state is a 409."""
    from .notifications import FAILED, PENDING
    notification = get_notification(session, notification_id, scope)
    if notification.state != FAILED:
        raise ApiError(409, "notification_not_failed",
                       f"Callback {notification_id!r} is {notification.state}; only a failed one can be requeued.")
    notification.state, notification.next_attempt_at = PENDING, now or utcnow()
    session.flush()
    return notification


# --- the record of operator actions ---------------------------------------------------------------

def record_action(session: Session, *, key_id: int | None, actor: str, key_prefix: str, action: str, via: str,
                  service: Service | None = None, job_id: str | None = None, reason: str | None = None,
                  source: str | None = None) -> OperatorAction:
    """Note who (the API key's name and prefix) did what, in the caller's transaction."""
    row = OperatorAction(at=utcnow(), api_key_id=key_id, actor=actor, key_prefix=key_prefix, via=via,
                         action=action, service_id=service.id if service is not None else None,
                         source=service.source if service is not None else source, job_id=job_id,
                         reason=(reason or None) and reason[:2000])
    session.add(row)
    return row


def list_actions(session: Session, service_key: str, limit: int = RECENT) -> list[OperatorAction]:
    return list(session.execute(
        select(OperatorAction).where(OperatorAction.service_id == service_key)
        .order_by(OperatorAction.at.desc(), OperatorAction.id.desc()).limit(limit)).scalars())
