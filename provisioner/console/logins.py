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
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from .. import apikeys
from ..admin import Scope
from ..db import Database, utcnow
from ..models import ApiKey, ConsoleLogin

IDLE = dt.timedelta(minutes=30)
ABSOLUTE = dt.timedelta(hours=12)
TOUCH_EVERY = dt.timedelta(seconds=60)
KEEP_ENDED = dt.timedelta(days=1)
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


def _digest(secret_key: str, purpose: str, token: str) -> str:
    return hmac.new(secret_key.encode(), f"console-{purpose}:".encode() + token.encode(),
                    hashlib.sha256).hexdigest()


def login_id(secret_key: str, token: str) -> str:
    return _digest(secret_key, "login", token)


def csrf_for(secret_key: str, token: str) -> str:
    return _digest(secret_key, "csrf", token)


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
        session.execute(delete(ConsoleLogin).where(ConsoleLogin.expires_at < now - KEEP_ENDED))
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
    if now - login.last_seen_at >= TOUCH_EVERY:
        with db.transaction() as session:
            session.execute(update(ConsoleLogin).where(ConsoleLogin.id == ident, ConsoleLogin.ended_at.is_(None))
                            .values(last_seen_at=now, expires_at=min(now + IDLE, login.created_at + ABSOLUTE)))
    return Operator(key.id, key.name, key.prefix, key.scope, key.source, csrf_for(secret_key, token))


def end_login(db: Database, secret_key: str, token: str, reason: str = SIGNED_OUT,
              *, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    with db.transaction() as session:
        session.execute(update(ConsoleLogin)
                        .where(ConsoleLogin.id == login_id(secret_key, token), ConsoleLogin.ended_at.is_(None))
                        .values(ended_at=now, ended_reason=reason, expires_at=now))

