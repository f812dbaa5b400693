"""Receiving a billing hook: verify, validate, judge, store the event and its job.

``verify_signature`` tells which billing source signed the hook; ``judge``
makes every check an event must pass against the database and writes nothing;
``receive`` commits the event, the desired-state change and the job in one
transaction, so a 2xx is only ever sent for something durable; ``validate``
answers what ``receive`` would, storing nothing. The Flask view in
``provisioner.web.hooks`` only moves bytes and headers in and JSON out.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any, Mapping

from marshmallow import ValidationError as SchemaError
from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.exc import IntegrityError, OperationalError

from . import events as ev
from . import inputs, jobs
from .billing.keys import DEFAULT_SOURCE, service_key
from .billing.sources import BillingSource, authority_for
from .db import utcnow
from .lifecycle import CLIENT_DETAILS, apply_event
from .models import DesiredStatus, Event, Job, JobState, Service, SuspendedBy, new_id
from .products import OptionError, Product, compute_limits, downgrade_violations
from .providers import registry
from .providers.base import Capability, ClientInfo, Provider
from .providers.errors import ConfigurationError
from .runtime import Runtime
from .secrets import body_digest


TOLERANCE_SECONDS = 300


class HookError(Exception):
    """A rejected hook: HTTP status, error code, a clear message, optional field errors."""

    def __init__(self, status: int, code: str, message: str, fields: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields) if fields else None

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        return {"error": error}


#: the longest webhook-id stored (events.webhook_id)
MAX_WEBHOOK_ID = 255


def _secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (as the standardwebhooks library reads it)."""
    return base64.b64decode(secret.removeprefix("whsec_") + "==")


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks signature (without ``v1,``) of the exact bytes of ``body``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(_secret_key(secret), signed, hashlib.sha256).digest()).decode()


def verify_signature(sources: list[BillingSource], body: bytes, headers: Mapping[str, str],
                     now: float | None = None) -> BillingSource:
    """Standard Webhooks verification against every source's secrets (several per
    source during a rotation); the source whose secret verified is the hook's source."""
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if not lowered.get(h)]
    if missing:
        raise HookError(401, "invalid_signature", f"Missing header(s): {', '.join(missing)}.")
    webhook_id = lowered["webhook-id"]
    if len(webhook_id) > MAX_WEBHOOK_ID or inputs.BAD_CHARACTERS.search(webhook_id):
        raise HookError(400, "invalid_webhook_id",
                        f"webhook-id must be at most {MAX_WEBHOOK_ID} characters, without control characters.")
    try:
        # Whole seconds, as Standard Webhooks signs them ("nan", "1e9" or 1.5 are no instant).
        signed_at = int(lowered["webhook-timestamp"])
    except ValueError:
        raise HookError(401, "invalid_signature", "webhook-timestamp must be Unix seconds (a whole number).") from None
    if abs((now or time.time()) - signed_at) > TOLERANCE_SECONDS:
        raise HookError(401, "stale_timestamp",
                        f"webhook-timestamp is more than {TOLERANCE_SECONDS} s from the server's clock.")
    if not any(source.webhook_secrets for source in sources):
        raise HookError(401, "invalid_signature", "No webhook secret is configured.")
    # Every well-formed "v1,<base64>" entry is a candidate; malformed ones are skipped, so
    # one bad entry cannot hide a valid one (senders list several while rotating secrets).
    candidates = [sig for version, _, sig in (entry.partition(",") for entry in lowered["webhook-signature"].split())
                  if version == "v1" and sig]
    # The signature covers the body's bytes as sent: a signed body that is not UTF-8 is
    # verified, then refused for what it is (400 malformed_json), not as unsigned.
    for source in sources:
        for secret in source.webhook_secrets:
            if not candidates:
                break
            expected = sign(secret, webhook_id, signed_at, body)
            # As bytes: compare_digest refuses str holding anything but ASCII (a TypeError).
            if any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in candidates):
                return source
    raise HookError(401, "invalid_signature", "No valid signature for this body and webhook-id.")


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        data = inputs.loads(body)
    except inputs.InputError as exc:
        raise HookError(400, exc.code, exc.message, {exc.field: exc.message} if exc.field else None) from None
    if not isinstance(data, dict):
        raise HookError(400, "malformed_json", "The body must be a JSON object.")
    try:
        return ev.load_event(data)
    except SchemaError as exc:
        raise HookError(400, "invalid_event", "The event does not match the schema.",
                        ev.flatten_errors(exc.messages)) from None


@dataclass(frozen=True)
class JobSnapshot:
    """A job as the transaction that stored (or found) it left it: what the hook's
    answer shows without reading the job again."""
    id: str
    state: str
    attempts: int
    error_code: str | None
    error_message: str | None
    report_outcome: bool
    reveal_once: bool              # it holds a once-shown secret

    @classmethod
    def of(cls, job: Job) -> "JobSnapshot":
        return cls(job.id, job.state, job.attempts or 0, job.error_code, job.error_message,
                   bool(job.report_outcome), job.reveal_once is not None)


@dataclass
class Receipt:
    event_id: str
    service_id: str        # the billing system's service id
    source: str            # the billing source it came from
    job: JobSnapshot
    created: bool          # False for a redelivery of an event already stored
    note: str | None = None  # what else happened, for the hook's log line

    @property
    def job_id(self) -> str:
        return self.job.id


@dataclass
class Verdict:
    """What intake decided about an event before writing anything."""
    key: str                         # the service's key (provisioner.billing.keys)
    service: Service | None          # the service as it is, None before its first create
    product: Product | None          # for events that set the product (create, change_package)
    limits: dict[str, Any] | None
    stale: bool                      # older than an event already applied: stored as skipped
    authority: str                   # who owns its lifecycle (billing | provisioner)


def _sanitised(event: dict[str, Any]) -> dict[str, Any]:
    """The event as stored: JSON-ready, with any password replaced by a marker."""
    service = dict(event["service"])
    if service.get("password"):
        service["password"] = "***"
    if service.get("next_due_date"):
        service["next_due_date"] = service["next_due_date"].isoformat()
    if service.get("auto_suspend"):
        override = dict(service["auto_suspend"])
        if override.get("until"):
            override["until"] = override["until"].isoformat()
        service["auto_suspend"] = override
    return {"type": event["type"], "occurred_at": event["occurred_at"].isoformat(),
            "service": service, "client": event.get("client")}


# The statements every hook runs, built once: Core on the session's connection, rows
# rather than ORM objects, and no statement (or cache key) to build per request.
_EXISTING_EVENT = select(Event.id, Event.body_digest, Event.service_id, Event.payload).where(
    Event.source == bindparam("source"), Event.webhook_id == bindparam("webhook_id"))
_DOMAIN_TAKEN = select(Service.id).where(
    Service.upstream == bindparam("upstream"), Service.domain == bindparam("domain"),
    Service.source != bindparam("source"), Service.id != bindparam("key"),
    Service.desired_status != DesiredStatus.TERMINATED).limit(1)
_INSERT_EVENT = insert(Event.__table__)
_SERVICE = select(Service.__table__).where(Service.id == bindparam("key"))
_SERVICE_FOR_UPDATE = _SERVICE.with_for_update()
_INSERT_SERVICE = insert(Service.__table__)


def _load_service(session, key: str, *, lock: bool) -> Service | None:
    """The service row (locked for the transaction with ``lock``) as an ORM object of
    the session (a new one: intake reads each service once per session), or None.

    Read with Core and attached without a second query: the ORM's load machinery costs
    more than the statement; changes still flush as an UPDATE of the columns that changed."""
    row = session.connection().execute(_SERVICE_FOR_UPDATE if lock else _SERVICE, {"key": key}).one_or_none()
    if row is None:
        return None
    service = Service(**row._mapping)
    make_transient_to_detached(service)   # as if loaded: no pending changes
    session.add(service)
    return service


def _new_service_values(service: Service) -> dict[str, Any]:
    """Every column of a new service (made by ``apply_event``, not in the session):
    what intake set, the column's default for the rest."""
    state = vars(service)
    values = {}
    for column in Service.__table__.columns:
        if column.key in state:
            values[column.key] = state[column.key]
        elif column.default is None:
            values[column.key] = None
        else:   # dict, utcnow, a constant: none of them reads the statement's context
            values[column.key] = column.default.arg(None) if column.default.is_callable else column.default.arg
    return values


def _binds(table, prefix: str) -> dict[str, Any]:
    return {column.key: bindparam(prefix + column.key) for column in table.columns}


def _prefixed(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {prefix + key: value for key, value in values.items()}


# On PostgreSQL the writes of a hook are one statement: data-modifying CTEs insert
# the new service and the event, the outer INSERT the job (foreign keys are checked
# at the end of the statement, when all three rows exist). One round trip instead
# of three; SQLite has no DML in CTEs and runs them one by one.
_JOB_COLUMNS = tuple(jobs.new_job("s", reason="r", max_attempts=1))
_INSERT_JOB_WITH_EVENT = (
    insert(Job.__table__).values({key: bindparam("j_" + key) for key in _JOB_COLUMNS})
    .add_cte(insert(Event.__table__).values(_binds(Event.__table__, "e_")).cte("new_event")))
# Columns a first create leaves empty stay out of it: psycopg caches the parsing of
# statements of at most 50 parameters only.
_EMPTY_AT_CREATE = frozenset({"suspend_reason", "suspended_by", "suspended_at", "upstream_id",
                              "observed_status", "usage_at", "converged_at"})
_INSERT_JOB_WITH_EVENT_AND_SERVICE = _INSERT_JOB_WITH_EVENT.add_cte(
    insert(Service.__table__).values({key: bind for key, bind in _binds(Service.__table__, "s_").items()
                                      if key not in _EMPTY_AT_CREATE}).cte("new_service"))


def _write(session, new_service: dict[str, Any] | None, event: dict[str, Any], job: dict[str, Any]) -> None:
    """Insert the new service (if any), the event and its job on the session's connection."""
    connection = session.connection()
    if connection.dialect.name == "postgresql" and (
            new_service is None or all(new_service[key] is None for key in _EMPTY_AT_CREATE)):
        params = {**_prefixed(event, "e_"), **_prefixed(job, "j_")}
        if new_service is None:
            connection.execute(_INSERT_JOB_WITH_EVENT, params)
        else:
            service = {key: value for key, value in new_service.items() if key not in _EMPTY_AT_CREATE}
            connection.execute(_INSERT_JOB_WITH_EVENT_AND_SERVICE, {**params, **_prefixed(service, "s_")})
        return
    if new_service is not None:
        connection.execute(_INSERT_SERVICE, new_service)
    connection.execute(_INSERT_EVENT, event)
    jobs.insert_job(session, job)


def _existing_event(session, source: BillingSource, webhook_id: str):
    """The stored event of this webhook-id (the columns a redelivery needs), or None."""
    return session.connection().execute(_EXISTING_EVENT, {"source": source.name,
                                                          "webhook_id": webhook_id}).one_or_none()


def _check_redelivery(existing, digest: str) -> None:
    if existing.body_digest != digest:
        raise HookError(422, "idempotency_key_reused",
                        "This webhook-id was already used for a different body.")


def _redelivery(runtime: Runtime, session, source: BillingSource, existing, digest: str) -> Receipt:
    _check_redelivery(existing, digest)
    job = session.execute(select(Job).where(Job.event_id == existing.id)).scalar_one()
    note = None
    if job.state == JobState.FAILED:
        jobs.requeue(session, job, extra_attempts=runtime.settings.job_max_attempts)
        note = "its failed job queued again"
    billing_id = (existing.payload.get("service") or {}).get("id", existing.service_id)
    return Receipt(existing.id, str(billing_id), source.name, JobSnapshot.of(job), created=False, note=note)


def _limits_for(runtime: Runtime, source: BillingSource, event: dict, service: Service | None):
    """The product and computed limits for events that set them, else (None, None)."""
    body = event["service"]
    if event["type"] not in (ev.CREATE, ev.CHANGE_PACKAGE):
        return None, None
    product = runtime.catalog.product_for_billing_id(body["product_id"], source.name)
    if product is None:
        raise HookError(422, "unknown_product",
                        f"No product is configured for billing product id {body['product_id']!r}"
                        + ("" if source.name == DEFAULT_SOURCE else f" of billing source {source.name!r}") + ".",
                        {"service.product_id": "unknown product"})
    if service is not None and service.upstream and service.upstream != product.upstream \
            and service.desired_status != DesiredStatus.TERMINATED:
        raise HookError(422, "upstream_change_not_supported",
                        f"Product {product.id!r} is served by another upstream; moving a live "
                        "service between upstreams is not supported.")
    try:
        limits = compute_limits(product, body.get("config_options") or {})
    except OptionError as exc:
        names = ", ".join(sorted(exc.fields))
        raise HookError(422, "invalid_option", f"Configurable option(s) out of range: {names}.",
                        {f"service.config_options.{k}": v for k, v in exc.fields.items()}) from None
    if (event["type"] == ev.CHANGE_PACKAGE and service is not None
            and product.lifecycle.downgrade == "reject"):
        violations = downgrade_violations(product, limits, service.usage or {})
        if violations:
            raise HookError(422, "downgrade_below_usage",
                            "The new package does not fit current usage: " + "; ".join(violations.values()) + ".",
                            {f"limits.{k}": v for k, v in violations.items()})
    return product, limits


def _domain_taken_by_another_source(session, source: BillingSource, upstream: str, domain: str,
                                    key: str) -> bool:
    """A live service of another billing source has ``domain`` on ``upstream``: the two
    would find (and adopt, and delete) the same upstream account. The answer names
    neither the other source nor its service."""
    return session.connection().execute(_DOMAIN_TAKEN, {
        "upstream": upstream, "domain": domain, "source": source.name, "key": key}).first() is not None


def _check_update(runtime: Runtime, session, source: BillingSource, event: dict, service: Service,
                  key: str) -> None:
    body = event["service"]
    if body["product_id"] != service.billing_product_id:
        raise HookError(422, "product_change_requires_change_package",
                        f"service.update cannot change the product (billing product "
                        f"{service.billing_product_id!r} to {body['product_id']!r}); send "
                        "service.change_package.", {"service.product_id": "differs from the service's product"})
    domain = body.get("domain")
    if domain is None or domain == service.domain:
        return
    config = runtime.catalog.upstreams.get(service.upstream)
    if config is None:
        raise HookError(422, "upstream_not_configured",
                        f"The service's upstream {service.upstream!r} is no longer configured; its domain "
                        "cannot be changed.", {"service.domain": "upstream not configured"})
    kind = str(config.get("provider", ""))
    if Capability.RENAME_DOMAIN not in registry.provider_class(kind).capabilities:
        raise HookError(422, "domain_change_not_supported",
                        f"The upstream {service.upstream!r} ({kind}) cannot rename a service's domain "
                        f"in place; {service.domain} stays. Order a new service for {domain} instead.",
                        {"service.domain": f"{kind} cannot rename a domain"})
    if _domain_taken_by_another_source(session, source, service.upstream, domain, key):
        raise HookError(409, "domain_in_use",
                        f"{domain} is already served on this upstream for another billing source.",
                        {"service.domain": "in use"})


def _provider(runtime: Runtime, upstream: str | None) -> Provider | None:
    """The upstream's adapter (built without any call), or None when it is not
    configured or cannot be built: the job then reports that, as it always did."""
    if not upstream:
        return None
    try:
        return runtime.provider(upstream)
    except ConfigurationError:
        return None


def _same(a: Any, b: Any) -> bool:
    return str(a).strip().lower() == str(b).strip().lower()


def _check_upstream_can(runtime: Runtime, event: dict, service: Service | None, product: Product | None,
                        limits: dict[str, Any] | None, new_account: bool) -> None:
    """Refuse what the provider declares it would refuse before any upstream call:
    client details a new account needs, limits it does not take, a change of a limit
    fixed at creation, a password it would not set. The adapter keeps its own checks."""
    kind = event["type"]
    upstream = product.upstream if product is not None else (service.upstream if service is not None else None)
    provider = _provider(runtime, upstream)
    if provider is None:
        return
    name = provider.kind
    if kind == ev.CREATE and new_account:
        client = event.get("client") or {}
        info = ClientInfo(id=str(client.get("id", "")),
                          **{field: str(client.get(field) or "") for field in CLIENT_DETAILS})
        missing = provider.missing_client_fields(info)
        if missing:
            raise HookError(422, "client_details_missing",
                            f"The e-mail platform ({name}) needs the client's {', '.join(missing)} to open "
                            "the account; complete the client's billing profile and send the event again.",
                            {f"client.{field}": "required by this upstream" for field in missing})
    if limits is not None:
        problems = provider.limit_problems(limits)
        if problems:
            raise HookError(422, "limits_not_supported",
                            f"The e-mail platform ({name}, upstream {upstream!r}) cannot take this "
                            "product's limits: "
                            + " ".join(f"{k}: {v}" for k, v in sorted(problems.items())),
                            {f"limits.{k}": v for k, v in problems.items()})
    # A create for a live service is an update of it too (lifecycle.apply_event).
    if (kind in (ev.CREATE, ev.CHANGE_PACKAGE) and service is not None and limits is not None
            and service.upstream == upstream and not new_account):
        current = service.limits or {}
        fixed = sorted(k for k in provider.fixed_limits
                       if k in current and k in limits and not _same(current[k], limits[k]))
        if fixed:
            changes = ", ".join(f"{k} ({current[k]} to {limits[k]})" for k in fixed)
            raise HookError(422, "fixed_limit_change",
                            f"The e-mail platform ({name}) cannot change an existing account's "
                            f"{changes}; order a new service instead.",
                            {f"limits.{k}": "fixed once the account exists" for k in fixed})
    # Before the account exists the create takes the password instead (and may replace it).
    if kind == ev.CHANGE_PASSWORD and service is not None and not new_account \
            and event["service"].get("password") and provider.supports(Capability.PASSWORD):
        problem = provider.password_problem(event["service"]["password"], dict(service.limits or {}))
        if problem:
            raise HookError(422, "password_not_accepted", problem, {"service.password": problem})


def judge(runtime: Runtime, session, source: BillingSource, event: dict, *, lock: bool) -> Verdict:
    """Every check an event must pass, against the database as it is; writes nothing.

    Raises HookError with the answer to give. ``lock`` takes the service's row lock
    (intake, which then writes); ``validate`` judges without it."""
    body = event["service"]
    kind = event["type"]
    key = service_key(source.name, body["id"])
    service = _load_service(session, key, lock=lock)
    if service is not None and (service.source, service.billing_id) != (source.name, body["id"]):
        raise HookError(409, "service_key_taken",
                        f"Service {body['id']!r} cannot be told apart from another billing source's "
                        f"service (both would be {key!r}); give it another id.")
    if service is None and kind != ev.CREATE:
        raise HookError(404, "service_not_found",
                        f"Service {body['id']!r} was never created; send service.create first.")
    live = service is not None and service.desired_status != DesiredStatus.TERMINATED
    if service is not None and not live and kind not in (ev.CREATE, ev.TERMINATE):
        raise HookError(409, "service_terminated",
                        f"Service {body['id']!r} is terminated; only service.create can bring it back.")
    if (kind == ev.UNSUSPEND and service.desired_status == DesiredStatus.SUSPENDED
            and service.suspended_by == SuspendedBy.OPERATOR):
        raise HookError(409, "suspended_by_operator",
                        f"Service {body['id']!r} was suspended by an operator "
                        f"({service.suspend_reason or 'no reason given'}); only an operator can lift it.")
    if kind == ev.CREATE and live and service.domain != body["domain"]:
        raise HookError(409, "service_exists",
                        f"Service {body['id']!r} already exists with the domain {service.domain}; a create "
                        f"cannot change it to {body['domain']}. Send service.update to rename it.",
                        {"service.domain": f"the service has {service.domain}"})
    if kind == ev.UPDATE:
        _check_update(runtime, session, source, event, service, key)
    product, limits = _limits_for(runtime, source, event, service)
    if kind == ev.CREATE and not live and _domain_taken_by_another_source(
            session, source, product.upstream, body["domain"], key):
        raise HookError(409, "domain_in_use",
                        f"{body['domain']} is already served on this upstream for another billing source.",
                        {"service.domain": "in use"})
    occurred_at: dt.datetime = event["occurred_at"]
    stale = service is not None and service.last_event_at is not None and occurred_at < service.last_event_at
    if not stale:
        # A create makes a new account unless a live service already has one upstream.
        _check_upstream_can(runtime, event, service, product, limits,
                            new_account=not live or service.upstream_id is None)
    current = product or (runtime.catalog.products.get(service.product_key) if service is not None else None)
    return Verdict(key=key, service=service, product=product, limits=limits, stale=stale,
                   authority=authority_for(source, current))


def _store(runtime: Runtime, session, source: BillingSource, webhook_id: str, digest: str,
           event: dict, report_outcome: bool) -> Receipt:
    existing = _existing_event(session, source, webhook_id)
    if existing is not None:
        return _redelivery(runtime, session, source, existing, digest)
    verdict = judge(runtime, session, source, event, lock=True)
    body = event["service"]
    occurred_at: dt.datetime = event["occurred_at"]
    new_service = None
    if not verdict.stale:
        service = apply_event(verdict.service, event, verdict.product, verdict.limits, runtime.box,
                              key=verdict.key, source=source.name, authority=verdict.authority)
        service.last_event_at = occurred_at
        if verdict.service is None:
            new_service = _new_service_values(service)
        else:
            session.flush()
    # The event and the job as Core inserts: neither is read back here, and the ORM's
    # bookkeeping for them would cost more than the inserts.
    event_id = new_id()
    job = jobs.new_job(verdict.key, reason=event["type"], event_id=event_id,
                       max_attempts=runtime.settings.job_max_attempts,
                       state=JobState.SKIPPED if verdict.stale else JobState.QUEUED,
                       report_outcome=report_outcome)
    _write(session, new_service, dict(
        id=event_id, source=source.name, webhook_id=webhook_id, body_digest=digest, type=event["type"],
        service_id=verdict.key, occurred_at=occurred_at, received_at=utcnow(),
        payload=_sanitised(event), outcome="skipped" if verdict.stale else "applied"), job)
    snapshot = JobSnapshot(job["id"], job["state"], 0, None, None, job["report_outcome"], False)
    return Receipt(event_id, body["id"], source.name, snapshot, created=True,
                   note="older than an event already applied" if verdict.stale else None)


def receive(runtime: Runtime, source: BillingSource, webhook_id: str, raw_body: bytes, event: dict,
            *, report_outcome: bool = False) -> Receipt:
    """Store a verified, validated event and its job in one transaction.

    ``report_outcome``: the answer will be 202 (no ``Prefer: wait``), so a new job
    asks for its outcome callback in the same transaction.

    Concurrent deliveries of one webhook-id (or concurrent first creates of one
    service) collide on a unique key; the loser retries and finds the winner's rows.
    """
    digest = body_digest(runtime.settings.secret_key, raw_body)
    last_error: Exception | None = None
    for attempt in range(5):
        try:
            with runtime.db.transaction() as session:
                return _store(runtime, session, source, webhook_id, digest, event, report_outcome)
        except IntegrityError as exc:
            last_error = exc
        except OperationalError as exc:
            # Serialization failures and deadlocks on PostgreSQL: try again.
            last_error = exc
            time.sleep(0.05 * (attempt + 1))
    raise last_error  # type: ignore[misc]


def validate(runtime: Runtime, source: BillingSource, webhook_id: str, raw_body: bytes, event: dict) -> None:
    """Judge an event exactly as ``receive`` would, storing nothing and consuming no
    webhook-id; raises the HookError ``receive`` would answer with."""
    digest = body_digest(runtime.settings.secret_key, raw_body)
    with runtime.db.read() as session:
        existing = _existing_event(session, source, webhook_id)
        if existing is not None:
            _check_redelivery(existing, digest)   # a redelivery is answered, not judged again
            return
        judge(runtime, session, source, event, lock=False)
