"""Callbacks to the billing system: recorded with the change they report, delivered later.

``notify`` adds a row in the caller's transaction, so a callback exists exactly
when the change it reports was committed; it goes to the service's own billing
source (billing.yaml's ``callback_url``, or ``PROVISIONER_CALLBACK_URL`` for the
``default`` source), never to another's. ``deliver_due`` POSTs due rows there,
signed per Standard Webhooks with the source's callback secret (the
notification id is the ``webhook-id``, so a receiver can drop a repeat), and
retries failures with backoff until ``PROVISIONER_NOTIFY_MAX_ATTEMPTS``. Every
row stays visible to operators.

``notify_job_outcome`` reports how a job ended: ``job.failed`` for every job
that fails for good, ``job.succeeded`` for jobs whose hook was answered 202
(the billing system has not heard the outcome otherwise).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from .billing.keys import DEFAULT_SOURCE
from .db import utcnow
from .jobs import backoff_delay
from .models import Event, Job, JobState, Notification, Service

log = logging.getLogger("provisioner.notifications")

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
CLAIM_SECONDS = 60.0        # a claimed batch is not picked up again for this long
TIMEOUT = (5.0, 15.0)


def notify(session: Session, runtime, type_: str, service_id: str | None, data: dict[str, Any]) -> None:
    """Record a callback about service ``service_id`` (its key) for its billing source,
    when that source has a callback URL. The payload names the service as the billing
    system knows it: ``service_id`` (its own id) and ``source``."""
    service = session.get(Service, service_id) if service_id else None
    source_name = service.source if service is not None else DEFAULT_SOURCE
    source = runtime.sources.get(source_name)
    if source is None or not source.callback_url:
        return
    notification = Notification(type=type_, source=source_name, service_id=service_id, state=PENDING,
                                attempts=0, next_attempt_at=utcnow(), created_at=utcnow(), payload={})
    session.add(notification)
    session.flush()
    notification.payload = {"type": type_, "id": notification.id, "occurred_at": utcnow().isoformat(),
                            "service_id": service.billing_id if service is not None else service_id,
                            "source": source_name, "data": data}


#: what a finished job did, in words safe for an end customer (by the event that queued it)
SUCCESS_MESSAGES = {
    "service.create": "The e-mail service is set up.",
    "service.suspend": "The e-mail service is suspended.",
    "service.unsuspend": "The e-mail service is active again.",
    "service.terminate": "The e-mail service has been removed.",
    "service.change_package": "The new package is in place.",
    "service.renew": "The renewal is recorded.",
    "service.change_password": "The new password is in place.",
    "service.update": "The changes are in place.",
}


def notify_job_outcome(session: Session, runtime, job: Job) -> None:
    """``job.failed`` for a job that failed for good; ``job.succeeded`` for one whose
    hook was answered 202. In the transaction that records the outcome."""
    failed = job.state == JobState.FAILED
    if not failed and not (job.state == JobState.SUCCEEDED and job.report_outcome):
        return
    event = session.get(Event, job.event_id) if job.event_id else None
    error = {"code": job.error_code, "message": job.error_message} if failed else None
    notify(session, runtime, "job.failed" if failed else "job.succeeded", job.service_id, {
        "job_id": job.id, "state": job.state, "reason": job.reason, "attempts": job.attempts,
        "event_id": event.id if event else None, "event_type": event.type if event else None,
        "webhook_id": event.webhook_id if event else None,
        "message": job.error_message if failed else SUCCESS_MESSAGES.get(job.reason, "The change is in place."),
        "error": error,
    })


def _claim_due(runtime, now: dt.datetime, limit: int = 20) -> list[Notification]:
    query = (select(Notification).where(Notification.state == PENDING, Notification.next_attempt_at <= now)
             .order_by(Notification.next_attempt_at).limit(limit))
    if runtime.db.dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    with runtime.db.transaction() as session:
        due = list(session.execute(query).scalars())
        for notification in due:
            # Hide them from other workers while this one delivers.
            notification.next_attempt_at = now + dt.timedelta(seconds=CLAIM_SECONDS)
        return due


def _post(runtime, notification: Notification) -> tuple[int | None, str | None]:
    """Deliver once to the notification's source; (HTTP status, error) with error None on success."""
    source = runtime.sources.get(notification.source)
    if source is None or not source.callback_url:
        return None, f"billing source {notification.source!r} has no callback URL any more"
    body = json.dumps(notification.payload)
    now = dt.datetime.now(dt.timezone.utc)
    headers = {"content-type": "application/json", "webhook-id": notification.id,
               "webhook-timestamp": str(int(now.timestamp()))}
    if source.callback_secret:
        headers["webhook-signature"] = Webhook(source.callback_secret).sign(notification.id, now, body)
    try:
        response = requests.post(source.callback_url, data=body, headers=headers, timeout=TIMEOUT)
    except requests.RequestException as exc:
        return None, f"could not reach the callback URL ({type(exc).__name__})"
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"the callback URL answered HTTP {response.status_code}"


def deliver_due(runtime, now: dt.datetime | None = None) -> int:
    """Deliver what is due; returns how many were delivered."""
    if not any(source.callback_url for source in runtime.sources.all()):
        return 0
    delivered = retrying = 0
    now = now or utcnow()
    for notification in _claim_due(runtime, now):
        status, error = _post(runtime, notification)
        with runtime.db.transaction() as session:
            row = session.get(Notification, notification.id)
            row.attempts += 1
            row.last_status = status
            row.last_error = error
            if error is None:
                row.state, row.delivered_at = DELIVERED, now
                delivered += 1
            elif row.attempts >= runtime.settings.notify_max_attempts:
                row.state = FAILED
                log.warning("notification %s (%s) given up after %d attempts: %s",
                            row.id, row.type, row.attempts, error)
            else:
                delay = backoff_delay(row.attempts, 5.0, 3600.0)
                row.next_attempt_at = now + dt.timedelta(seconds=delay)
                retrying += 1
    if delivered or retrying:
        log.info("callbacks: %d delivered, %d to be tried again later", delivered, retrying)
    return delivered
