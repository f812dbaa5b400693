"""A limit on refused console sign-ins per client address, kept in the database.

A wrong API key on the sign-in form and a spent or unknown sign-in link count as
failures (``ConsoleSignInFailure``), so the limit is the same across every process and
machine. Only failures count: operators behind one address who sign in successfully
never lock each other out. Past ``FAILURE_LIMIT`` within ``FAILURE_WINDOW`` every
sign-in from that address is refused (429) until the oldest of them ages out. API keys
are 256-bit secrets, so this is a brake on guessing and on noise, not the defence.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from sqlalchemy import delete, select

from ..db import Database, utcnow
from ..models import ConsoleSignInFailure

FAILURE_LIMIT = 10
FAILURE_WINDOW = dt.timedelta(minutes=5)


def _client(secret_key: str, address: str) -> str:
    return hmac.new(secret_key.encode(), b"console-sign-in-address:" + address.encode(), hashlib.sha256).hexdigest()


def wait(db: Database, secret_key: str, address: str, *, now: dt.datetime | None = None) -> float | None:
    """None if ``address`` may try to sign in now, else the seconds until it may."""
    now = now or utcnow()
    with db.read() as session:
        recent = session.execute(
            select(ConsoleSignInFailure.at)
            .where(ConsoleSignInFailure.client == _client(secret_key, address),
                   ConsoleSignInFailure.at > now - FAILURE_WINDOW)
            .order_by(ConsoleSignInFailure.at.desc()).limit(FAILURE_LIMIT)).scalars().all()
    if len(recent) < FAILURE_LIMIT:
        return None
    return max(0.0, (recent[-1] + FAILURE_WINDOW - now).total_seconds())


def record_failure(db: Database, secret_key: str, address: str, *, now: dt.datetime | None = None) -> None:
    """Count one refused sign-in for ``address``; failures older than the window are dropped."""
    now = now or utcnow()
    with db.transaction() as session:
        session.execute(delete(ConsoleSignInFailure).where(ConsoleSignInFailure.at <= now - FAILURE_WINDOW))
        session.add(ConsoleSignInFailure(client=_client(secret_key, address), at=now))
