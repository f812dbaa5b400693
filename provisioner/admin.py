"""What the admin API (and operators' tools) ask of the database and the catalog.

Plain functions over a session: filtered, paginated queries, a job retry, an
upstream connection test. ``provisioner.web.api`` only parses requests and
serialises what these return (``provisioner.web.schemas``).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from . import jobs
from .db import Database, utcnow
from .models import ApiKey, Event, Job, JobState, Service
from .products import Catalog
from .providers.errors import ProviderError
from .runtime import Runtime
from .web.errors import ApiError

log = logging.getLogger("provisioner.admin")

RECENT = 20          # events and jobs shown with a service
# last_used_at is bookkeeping: refreshing it at most this often spares a write per request.
TOUCH_INTERVAL = dt.timedelta(minutes=1)


@dataclass
class Page:
    items: Sequence[Any]
    page: int
    per_page: int
    total: int


class EventRecord(NamedTuple):
    event: Event
    job_id: str | None


@dataclass
class ServiceDetail:
    service: Service
    events: list[EventRecord]
    jobs: list[Job]


def _paginate(session: Session, query: Select, page: int, per_page: int, *, scalars: bool = True) -> Page:
    total = session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    result = session.execute(query.limit(per_page).offset((page - 1) * per_page))
    items = result.scalars().all() if scalars else result.all()
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

def list_services(session: Session, query: dict[str, Any]) -> Page:
    stmt = select(Service).order_by(Service.created_at, Service.id)
    if "domain" in query:
        stmt = stmt.where(Service.domain == query["domain"].lower())
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
    return _paginate(session, stmt, query["page"], query["per_page"])


def _job_id_of_event():
    # One job per event (intake enqueues it with the event); the first if ever more.
    return (select(Job.id).where(Job.event_id == Event.id)
            .order_by(Job.created_at, Job.id).limit(1).correlate(Event).scalar_subquery())


def get_service(session: Session, service_id: str) -> ServiceDetail:
    service = session.get(Service, service_id)
    if service is None:
        raise ApiError(404, "service_not_found", f"No service with id {service_id!r}.")
    events = session.execute(
        select(Event, _job_id_of_event()).where(Event.service_id == service_id)
        .order_by(Event.received_at.desc(), Event.id.desc()).limit(RECENT)
    ).all()
    recent_jobs = session.execute(
        select(Job).where(Job.service_id == service_id).options(selectinload(Job.attempt_log))
        .order_by(Job.created_at.desc(), Job.id.desc()).limit(RECENT)
    ).scalars().all()
    return ServiceDetail(service, [EventRecord(*row) for row in events], list(recent_jobs))


# --- jobs ----------------------------------------------------------------------------------------

def list_jobs(session: Session, query: dict[str, Any]) -> Page:
    stmt = select(Job).order_by(Job.created_at.desc(), Job.id.desc())
    if "state" in query:
        stmt = stmt.where(Job.state.in_(query["state"]))
    if "service_id" in query:
        stmt = stmt.where(Job.service_id == query["service_id"])
    return _paginate(session, stmt, query["page"], query["per_page"])


def get_job(session: Session, job_id: str, *, for_update: bool = False) -> Job:
    stmt = select(Job).where(Job.id == job_id).options(selectinload(Job.attempt_log))
    if for_update:
        stmt = stmt.with_for_update(of=Job)
    job = session.execute(stmt).scalar_one_or_none()
    if job is None:
        raise ApiError(404, "job_not_found", f"No job with id {job_id!r}.")
    return job


def retry_job(session: Session, job_id: str, *, extra_attempts: int) -> Job:
    """Queue a failed job again; any other state is a 409 (it is running or done)."""
    job = get_job(session, job_id, for_update=True)
    if job.state != JobState.FAILED:
        raise ApiError(409, "job_not_retryable",
                       f"Job {job_id!r} is {job.state}; only a failed job can be retried.")
    jobs.requeue(session, job, extra_attempts=extra_attempts)
    session.flush()
    return job


# --- events --------------------------------------------------------------------------------------

def list_events(session: Session, query: dict[str, Any]) -> Page:
    stmt = select(Event, _job_id_of_event()).order_by(Event.received_at.desc(), Event.id.desc())
    if "service_id" in query:
        stmt = stmt.where(Event.service_id == query["service_id"])
    if "type" in query:
        stmt = stmt.where(Event.type.in_(query["type"]))
    if "outcome" in query:
        stmt = stmt.where(Event.outcome.in_(query["outcome"]))
    page = _paginate(session, stmt, query["page"], query["per_page"], scalars=False)
    page.items = [EventRecord(*row) for row in page.items]
    return page


def get_event(session: Session, event_id: str) -> EventRecord:
    row = session.execute(select(Event, _job_id_of_event()).where(Event.id == event_id)).first()
    if row is None:
        raise ApiError(404, "event_not_found", f"No event with id {event_id!r}.")
    return EventRecord(*row)


# --- configuration: upstreams and products ---------------------------------------------------

def list_upstreams(catalog: Catalog, page: int, per_page: int) -> Page:
    # Names and provider kinds only: the rest of an upstream's block is settings and secrets.
    items = [{"name": name, "provider": str(config.get("provider", ""))}
             for name, config in sorted(catalog.upstreams.items())]
    return _in_memory_page(items, page, per_page)


def list_products(catalog: Catalog, page: int, per_page: int) -> Page:
    return _in_memory_page([catalog.products[key] for key in sorted(catalog.products)], page, per_page)


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
