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

from ..db import Database
from ..models import ConsoleSignInFailure
from ..web.failure_limit import FailureLimit

FAILURE_LIMIT = 10
FAILURE_WINDOW = dt.timedelta(minutes=5)
_LIMIT = FailureLimit(ConsoleSignInFailure, b"console-sign-in-address:", FAILURE_LIMIT, FAILURE_WINDOW)


def wait(db: Database, secret_key: str, address: str, *, now: dt.datetime | None = None) -> float | None:
    """None if ``address`` may try to sign in now, else the seconds until it may."""
    return _LIMIT.wait(db, secret_key, address, now=now)


def record_failure(db: Database, secret_key: str, address: str, *, now: dt.datetime | None = None) -> None:
    """Count one refused sign-in for ``address``; failures older than the window are dropped."""
    _LIMIT.record(db, secret_key, address, now=now)
