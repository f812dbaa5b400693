"""Single sign-on into the client area (contract section 4).

The billing system asks ``POST /api/v1/services/{id}/sso`` (admin key) for a
link, ``{PROVISIONER_PUBLIC_URL}/client/sso/{token}``, and sends the customer
there. A token is 256 random bits, lives 60 s and opens one session once: only
its keyed hash is stored, and ``redeem`` marks it used with one conditional
UPDATE, so two concurrent redemptions cannot both succeed.

Redemption attempts are rate-limited per client IP (``RateLimiter``, in memory:
per process, which is enough to make guessing hopeless on top of the 256 bits).
"""
from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from typing import Callable

from sqlalchemy import delete, select, update

from ..db import utcnow
from ..models import DesiredStatus, Service, SsoToken
from ..runtime import Runtime

TOKEN_LIFETIME = dt.timedelta(seconds=60)
#: used and expired tokens are deleted this long after they expired
KEEP_EXPIRED = dt.timedelta(days=1)
PATH = "/client/sso/"


class SsoError(Exception):
    """The link cannot be issued: ``status`` 404 (no such service) or 409 (terminated)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def token_hash(secret_key: str, token: str) -> str:
    """What is stored for a token: an HMAC under the app's secret key."""
    return hmac.new(secret_key.encode(), b"client-sso:" + token.encode(), hashlib.sha256).hexdigest()


def issue_token(runtime: Runtime, service_id: str, *, now: dt.datetime | None = None
                ) -> tuple[str, dt.datetime]:
    """A new sign-in link for the service keyed ``service_id`` and when it expires (the
    admin API resolves a billing id within the caller's source to the key first).

    Raises SsoError for an unknown (404) or terminated (409) service."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    expires_at = now + TOKEN_LIFETIME
    with runtime.db.transaction() as session:
        service = session.get(Service, str(service_id))
        if service is None:
            raise SsoError(404, "service_not_found", f"No service with id {service_id!r}.")
        if service.desired_status == DesiredStatus.TERMINATED:
            raise SsoError(409, "service_terminated",
                           f"Service {service.billing_id} is terminated: it has no client area.")
        # Housekeeping: tokens long past their life are of no use to anyone.
        session.execute(delete(SsoToken).where(SsoToken.expires_at < now - KEEP_EXPIRED))
        session.add(SsoToken(token_hash=token_hash(runtime.settings.secret_key, token),
                             service_id=service.id, created_at=now, expires_at=expires_at))
    base = runtime.settings.public_url.rstrip("/")
    return f"{base}{PATH}{token}", expires_at


def redeem(runtime: Runtime, token: str, *, now: dt.datetime | None = None) -> str | None:
    """The service id ``token`` opens, marking it used; None if it is unknown, used,
    expired, or its service has been terminated meanwhile."""
    if not token or len(token) > 200:
        return None
    now = now or utcnow()
    digest = token_hash(runtime.settings.secret_key, token)
    with runtime.db.transaction() as session:
        claimed = session.execute(
            update(SsoToken)
            .where(SsoToken.token_hash == digest, SsoToken.used_at.is_(None), SsoToken.expires_at > now)
            .values(used_at=now)
            .execution_options(synchronize_session=False))
        if claimed.rowcount != 1:
            return None
        service_id = session.execute(
            select(SsoToken.service_id).where(SsoToken.token_hash == digest)).scalar_one()
        service = session.get(Service, service_id)
        if service is None or service.desired_status == DesiredStatus.TERMINATED:
            return None
        return service_id


class RateLimiter:
    """At most ``limit`` attempts per ``window`` seconds per key (a sliding window)."""

    def __init__(self, limit: int = 10, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self.limit, self.window, self.clock, self.max_keys = limit, window, clock, max_keys
        self._hits: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float | None:
        """Count one attempt; None if allowed, else seconds until the next one is."""
        now = self.clock()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys:
                    self._forget_idle(now)
                hits = self._hits[key] = collections.deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(0.0, hits[0] + self.window - now)
            hits.append(now)
            return None

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:      # still full: everyone is recent; start over
            self._hits.clear()
