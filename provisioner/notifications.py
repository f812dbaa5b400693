"""Callbacks to the billing system: recorded with the change they report, delivered later.

``notify`` adds a row in the caller's transaction, so a callback exists exactly
when the change it reports was committed. ``deliver_due`` POSTs due rows to
``PROVISIONER_CALLBACK_URL``, signed per Standard Webhooks with
``PROVISIONER_CALLBACK_SECRET`` (the notification id is the ``webhook-id``, so a
receiver can drop a repeat), and retries failures with backoff until
``PROVISIONER_NOTIFY_MAX_ATTEMPTS``. Every row stays visible to operators.
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

from .db import utcnow
from .jobs import backoff_delay
from .models import Notification

log = logging.getLogger("provisioner.notifications")

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
CLAIM_SECONDS = 60.0        # a claimed batch is not picked up again for this long
TIMEOUT = (5.0, 15.0)


def notify(session: Session, runtime, type_: str, service_id: str | None, data: dict[str, Any]) -> None:
    """Record a callback (only when a callback URL is configured)."""
    if not runtime.settings.callback_url:
        return
    notification = Notification(type=type_, service_id=service_id, state=PENDING, attempts=0,
                                next_attempt_at=utcnow(), created_at=utcnow(), payload={})
    session.add(notification)
    session.flush()
    notification.payload = {"type": type_, "id": notification.id, "occurred_at": utcnow().isoformat(),
                            "service_id": service_id, "data": data}


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
    """Deliver once; (HTTP status, error) with error None on success."""
    settings = runtime.settings
    body = json.dumps(notification.payload)
    now = dt.datetime.now(dt.timezone.utc)
    headers = {"content-type": "application/json", "webhook-id": notification.id,
               "webhook-timestamp": str(int(now.timestamp()))}
    if settings.callback_secret:
        headers["webhook-signature"] = Webhook(settings.callback_secret).sign(notification.id, now, body)
    try:
        response = requests.post(settings.callback_url, data=body, headers=headers, timeout=TIMEOUT)
    except requests.RequestException as exc:
        return None, f"could not reach the callback URL ({type(exc).__name__})"
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"the callback URL answered HTTP {response.status_code}"


def deliver_due(runtime, now: dt.datetime | None = None) -> int:
    """Deliver what is due; returns how many were delivered."""
    if not runtime.settings.callback_url:
        return 0
    delivered = 0
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
    return delivered
