"""Receiving a billing hook: verify, validate, store the event and its job.

``verify_signature`` and ``receive`` are plain functions; the Flask view in
``provisioner.web.hooks`` only moves bytes and headers in and JSON out.
``receive`` commits the event, the desired-state change and the job in one
transaction, so a 2xx is only ever sent for something durable.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

from marshmallow import ValidationError as SchemaError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from . import events as ev
from . import jobs
from .db import utcnow
from .lifecycle import apply_event
from .models import DesiredStatus, Event, Job, JobState, Service, SuspendedBy
from .products import OptionError, compute_limits, downgrade_violations
from .runtime import Runtime
from .secrets import body_digest

log = logging.getLogger("provisioner.hooks")

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


def verify_signature(secrets: list[str], body: bytes, headers: Mapping[str, str],
                     now: float | None = None) -> None:
    """Standard Webhooks verification against every configured secret (rotation)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if not lowered.get(h)]
    if missing:
        raise HookError(401, "invalid_signature", f"Missing header(s): {', '.join(missing)}.")
    try:
        timestamp = float(lowered["webhook-timestamp"])
    except ValueError:
        raise HookError(401, "invalid_signature", "webhook-timestamp must be Unix seconds.") from None
    if abs((now or time.time()) - timestamp) > TOLERANCE_SECONDS:
        raise HookError(401, "stale_timestamp",
                        f"webhook-timestamp is more than {TOLERANCE_SECONDS} s from the server's clock.")
    if not secrets:
        raise HookError(401, "invalid_signature", "No webhook secret is configured.")
    for secret in secrets:
        try:
            Webhook(secret).verify(body, lowered, json_parse=False)
            return
        except WebhookVerificationError:
            continue
        except (ValueError, UnicodeDecodeError):
            # Malformed signature entries or a body that is not UTF-8.
            break
    raise HookError(401, "invalid_signature", "No valid signature for this body and webhook-id.")


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HookError(400, "malformed_json", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise HookError(400, "malformed_json", "The body must be a JSON object.")
    try:
        return ev.load_event(data)
    except SchemaError as exc:
        raise HookError(400, "invalid_event", "The event does not match the schema.",
                        ev.flatten_errors(exc.messages)) from None


@dataclass
class Receipt:
    event_id: str
    service_id: str
    job_id: str
    created: bool          # False for a redelivery of an event already stored


def _sanitised(event: dict[str, Any]) -> dict[str, Any]:
    """The event as stored: JSON-ready, with any password replaced by a marker."""
    service = dict(event["service"])
    if service.get("password"):
        service["password"] = "***"
    if service.get("next_due_date"):
        service["next_due_date"] = service["next_due_date"].isoformat()
    return {"type": event["type"], "occurred_at": event["occurred_at"].isoformat(),
            "service": service, "client": event.get("client")}


def _redelivery(runtime: Runtime, session, existing: Event, digest: str) -> Receipt:
    if existing.body_digest != digest:
        raise HookError(422, "idempotency_key_reused",
                        "This webhook-id was already used for a different body.")
    job = session.execute(select(Job).where(Job.event_id == existing.id)).scalar_one()
    if job.state == JobState.FAILED:
        jobs.requeue(session, job, extra_attempts=runtime.settings.job_max_attempts)
        log.info("event %s redelivered: failed job %s queued again", existing.id, job.id)
    return Receipt(existing.id, existing.service_id, job.id, created=False)


def _limits_for(runtime: Runtime, event: dict, service: Service | None):
    """The product and computed limits for events that set them, else (None, None)."""
    body = event["service"]
    if event["type"] not in (ev.CREATE, ev.CHANGE_PACKAGE):
        return None, None
    product = runtime.catalog.product_for_billing_id(body["product_id"])
    if product is None:
        raise HookError(422, "unknown_product",
                        f"No product is configured for billing product id {body['product_id']!r}.",
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


def _store(runtime: Runtime, session, webhook_id: str, digest: str, event: dict) -> Receipt:
    existing = session.execute(select(Event).where(Event.webhook_id == webhook_id)).scalar_one_or_none()
    if existing is not None:
        return _redelivery(runtime, session, existing, digest)

    body = event["service"]
    service = session.get(Service, body["id"], with_for_update=True)
    if service is None and event["type"] != ev.CREATE:
        raise HookError(404, "service_not_found",
                        f"Service {body['id']!r} was never created; send service.create first.")
    if (service is not None and service.desired_status == DesiredStatus.TERMINATED
            and event["type"] not in (ev.CREATE, ev.TERMINATE)):
        raise HookError(409, "service_terminated",
                        f"Service {body['id']!r} is terminated; only service.create can bring it back.")
    if (event["type"] == ev.UNSUSPEND and service.desired_status == DesiredStatus.SUSPENDED
            and service.suspended_by == SuspendedBy.OPERATOR):
        raise HookError(409, "suspended_by_operator",
                        f"Service {body['id']!r} was suspended by an operator "
                        f"({service.suspend_reason or 'no reason given'}); only an operator can lift it.")
    product, limits = _limits_for(runtime, event, service)

    occurred_at: dt.datetime = event["occurred_at"]
    stale = service is not None and service.last_event_at is not None and occurred_at < service.last_event_at
    if not stale:
        service = apply_event(service, event, product, limits, runtime.box)
        service.last_event_at = occurred_at
        session.add(service)
        session.flush()
    stored = Event(webhook_id=webhook_id, body_digest=digest, type=event["type"], service_id=body["id"],
                   occurred_at=occurred_at, received_at=utcnow(), payload=_sanitised(event),
                   outcome="skipped" if stale else "applied")
    session.add(stored)
    session.flush()
    job = jobs.enqueue(session, body["id"], reason=event["type"], event_id=stored.id,
                       max_attempts=runtime.settings.job_max_attempts,
                       state=JobState.SKIPPED if stale else JobState.QUEUED)
    if stale:
        log.info("event %s (%s) for service %s is older than one already applied: skipped",
                 stored.id, event["type"], body["id"])
    session.flush()
    return Receipt(stored.id, body["id"], job.id, created=True)


def receive(runtime: Runtime, webhook_id: str, raw_body: bytes, event: dict) -> Receipt:
    """Store a verified, validated event and its job in one transaction.

    Concurrent deliveries of one webhook-id (or concurrent first creates of one
    service) collide on a unique key; the loser retries and finds the winner's rows.
    """
    digest = body_digest(runtime.settings.secret_key, raw_body)
    last_error: Exception | None = None
    for attempt in range(5):
        try:
            with runtime.db.transaction() as session:
                return _store(runtime, session, webhook_id, digest, event)
        except IntegrityError as exc:
            last_error = exc
        except OperationalError as exc:
            # Serialization failures and deadlocks on PostgreSQL: try again.
            last_error = exc
            time.sleep(0.05 * (attempt + 1))
    raise last_error  # type: ignore[misc]
