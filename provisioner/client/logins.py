"""Client-area logins kept on the server, so a session can end before its cookie does.

The signed cookie alone would keep working for the rest of its hour after sign-out.
Each session therefore carries a random login token whose keyed hash is a
``ClientLogin`` row, checked on every request. A login ends:

- at sign-out (``signed_out``);
- when the service is signed in to again (``replaced``): opening the client area
  from the billing system anew ends every older session of that service, which is
  how a customer ends a session left open elsewhere;
- when an operator suspends or terminates the service (``suspended``, ``terminated``);
- when it goes unused for ``IDLE`` or reaches ``ABSOLUTE`` (``expired``).

Plain functions over a SQLAlchemy session or the Database, no Flask: the admin
API ends logins inside its own transactions.
"""
from __future__ import annotations

import datetime as dt
import secrets
from typing import NamedTuple

from sqlalchemy import update
from sqlalchemy.orm import Session

from ..db import Database, utcnow
from ..models import ClientLogin
from ..web import kept_logins

IDLE = dt.timedelta(hours=1)
ABSOLUTE = dt.timedelta(hours=12)

SIGNED_OUT, REPLACED, SUSPENDED, TERMINATED, EXPIRED = (
    "signed_out", "replaced", "suspended", "terminated", "expired")

#: what the customer reads when a session has ended (safe, and says what to do)
ENDED_MESSAGES = {
    REPLACED: "This client area session has ended because the service was signed in to again. "
              "Open the client area again from your billing account.",
    SUSPENDED: "This service has been suspended, so its client area session has ended. "
               "Please contact support.",
    TERMINATED: "This service is no longer available in the client area.",
}


class LoginCheck(NamedTuple):
    ok: bool
    reason: str | None = None      # why not, when not ok


def login_hash(secret_key: str, token: str) -> str:
    """The row id for a cookie's login token: an HMAC under the app's secret key."""
    return kept_logins.token_digest(secret_key, "client-login", token)


def open_login(db: Database, secret_key: str, service_id: str, *, now: dt.datetime | None = None) -> str:
    """A new login for ``service_id`` (ending its older ones); the token for the cookie."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    with db.transaction() as session:
        end_service_logins(session, service_id, REPLACED, now=now)
        kept_logins.delete_stale(session, ClientLogin, now)
        session.add(ClientLogin(id=login_hash(secret_key, token), service_id=service_id, created_at=now,
                                last_seen_at=now, expires_at=now + IDLE))
    return token


def check_login(db: Database, secret_key: str, token: str, service_id: str,
                *, now: dt.datetime | None = None) -> LoginCheck:
    """Whether the cookie's login still works for ``service_id``; moves its idle expiry."""
    now = now or utcnow()
    login_id = login_hash(secret_key, token)
    with db.read() as session:
        login = session.get(ClientLogin, login_id)
        if login is None or login.service_id != service_id:
            return LoginCheck(False, None)
        if login.ended_at is not None:
            return LoginCheck(False, login.ended_reason)
        if login.expires_at <= now:
            return LoginCheck(False, EXPIRED)
    kept_logins.touch(db, ClientLogin, login, now, IDLE, ABSOLUTE)
    return LoginCheck(True)


def end_login(db: Database, secret_key: str, token: str, reason: str = SIGNED_OUT,
              *, now: dt.datetime | None = None) -> None:
    kept_logins.end(db, ClientLogin, login_hash(secret_key, token), reason, now or utcnow())


def end_service_logins(session: Session, service_id: str, reason: str, *, now: dt.datetime | None = None) -> int:
    """End every working login of a service, in the caller's transaction; how many."""
    now = now or utcnow()
    result = session.execute(update(ClientLogin)
                             .where(ClientLogin.service_id == service_id, ClientLogin.ended_at.is_(None))
                             .values(ended_at=now, ended_reason=reason, expires_at=now))
    return result.rowcount or 0
