"""Single sign-on into the client area (contract section 4).

The billing system asks ``POST /api/v1/services/{id}/sso`` (admin key) for a
link, ``{PROVISIONER_PUBLIC_URL}/client/sso/{token}``, and sends the customer
there. A token is 256 random bits, lives 60 s and opens one session once: only
its keyed hash is stored, and ``redeem`` marks it used with one conditional
UPDATE, so two concurrent redemptions cannot both succeed.

Refused links are counted per client address in the database (``SsoFailure``),
so the limit is the same whatever the number of processes and machines, and
only failures count: customers behind one NAT who sign in successfully never
lock each other out, while guessing stays hopeless on top of the 256 bits.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import delete, select, update

from ..db import utcnow
from ..models import DesiredStatus, Service, SsoFailure, SsoToken
from ..runtime import Runtime
from ..web.failure_limit import FailureLimit

TOKEN_LIFETIME = dt.timedelta(seconds=60)
#: used and expired tokens are deleted this long after they expired
KEEP_EXPIRED = dt.timedelta(days=1)
PATH = "/client/sso/"
#: refused links allowed per client address within FAILURE_WINDOW
FAILURE_LIMIT = 10
FAILURE_WINDOW = dt.timedelta(seconds=60)
_FAILURES = FailureLimit(SsoFailure, b"client-sso-address:", FAILURE_LIMIT, FAILURE_WINDOW)


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


def failure_wait(runtime: Runtime, address: str, *, now: dt.datetime | None = None) -> float | None:
    """None if ``address`` may try a link now, else the seconds until it may (its
    ``FAILURE_LIMIT`` refusals within ``FAILURE_WINDOW`` have to age first)."""
    return _FAILURES.wait(runtime.db, runtime.settings.secret_key, address, now=now)


def record_failure(runtime: Runtime, address: str, *, now: dt.datetime | None = None) -> None:
    """Count one refused link for ``address``; failures older than the window are dropped."""
    _FAILURES.record(runtime.db, runtime.settings.secret_key, address, now=now)

