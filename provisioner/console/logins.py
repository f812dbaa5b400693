"""Operator console sessions kept on the server (``ConsoleLogin`` rows), as the client area's.

The browser's cookie holds a random token; the row's id is a keyed hash of it, so
a copied database grants no session. A console login ends at sign-out, when its API
key is revoked (checked on every request), or when it goes unused for ``IDLE`` or
reaches ``ABSOLUTE``. The CSRF token of a session is derived from its token (an
HMAC), so it needs no storage and changes with every sign-in.

Plain functions over the Database, no Flask.
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from .. import apikeys
from ..admin import Scope
from ..db import Database, utcnow
from ..models import ApiKey, ConsoleLogin
from ..web import kept_logins

IDLE = dt.timedelta(minutes=30)
ABSOLUTE = dt.timedelta(hours=12)
SIGNED_OUT, EXPIRED, REVOKED = "signed_out", "expired", "revoked"


@dataclass(frozen=True)
class Operator:
    """Who is signed in: the API key's identity (never the key) and its reach."""
    key_id: int
    name: str
    prefix: str
    scope: str            # admin | read
    source: str | None    # a source-scoped key sees that source only
    csrf: str

    @property
    def can_write(self) -> bool:
        return self.scope == "admin"

    @property
    def reach(self) -> Scope:
        return Scope(self.source)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.prefix}…)"


def login_id(secret_key: str, token: str) -> str:
    return kept_logins.token_digest(secret_key, "console-login", token)


def csrf_for(secret_key: str, token: str) -> str:
    return kept_logins.token_digest(secret_key, "console-csrf", token)


def open_login(db: Database, secret_key: str, api_key: str | None = None, *, key_id: int | None = None,
               now: dt.datetime | None = None) -> tuple[str, ApiKey] | None:
    """A new session for a valid, unrevoked ``api_key`` (or the key with id ``key_id``, from a
    redeemed sign-in link): (cookie token, key row); None if there is no such working key."""
    now = now or utcnow()
    with db.transaction() as session:
        if api_key is not None:
            key = apikeys.authenticate(session, api_key)
        else:
            key = session.get(ApiKey, key_id)
            key = key if key is not None and key.revoked_at is None else None
        if key is None:
            return None
        token = secrets.token_urlsafe(32)
        kept_logins.delete_stale(session, ConsoleLogin, now)
        session.add(ConsoleLogin(id=login_id(secret_key, token), api_key_id=key.id, created_at=now,
                                 last_seen_at=now, expires_at=now + IDLE))
        session.expunge(key)
    return token, key


def check_login(db: Database, secret_key: str, token: str, *, now: dt.datetime | None = None) -> Operator | None:
    """The operator of a cookie's token if its session still works; moves its idle expiry."""
    now = now or utcnow()
    ident = login_id(secret_key, token)
    with db.read() as session:
        row = session.execute(select(ConsoleLogin, ApiKey).join(ApiKey, ApiKey.id == ConsoleLogin.api_key_id)
                              .where(ConsoleLogin.id == ident)).first()
    if row is None:
        return None
    login, key = row
    if login.ended_at is not None or login.expires_at <= now:
        return None
    if key.revoked_at is not None:
        end_login(db, secret_key, token, REVOKED, now=now)
        return None
    kept_logins.touch(db, ConsoleLogin, login, now, IDLE, ABSOLUTE)
    return Operator(key.id, key.name, key.prefix, key.scope, key.source, csrf_for(secret_key, token))


def end_login(db: Database, secret_key: str, token: str, reason: str = SIGNED_OUT,
              *, now: dt.datetime | None = None) -> None:
    kept_logins.end(db, ConsoleLogin, login_id(secret_key, token), reason, now or utcnow())

