"""Single-use console sign-in links: ``POST /api/v1/console/sso`` (the WHMCS module's
server-level ``AdminSingleSignOn``) answers ``{PUBLIC_URL}/admin/sso/{token}``.

A token is 256 random bits, lives 60 s and opens one console session, as the API key
that asked for it (its scope and source), once: only its keyed hash is stored, and
redeeming is one conditional UPDATE, so two redemptions cannot both succeed. Access
logs show the path as ``/admin/sso/[redacted]`` (``web.serving.redact``).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import NamedTuple

from sqlalchemy import delete, select, update

from ..db import Database, utcnow
from ..models import ConsoleSsoToken

LIFETIME = dt.timedelta(seconds=60)
KEEP_EXPIRED = dt.timedelta(days=1)
PATH = "/admin/sso/"


class Redeemed(NamedTuple):
    api_key_id: int
    next_path: str | None


def token_hash(secret_key: str, token: str) -> str:
    return hmac.new(secret_key.encode(), b"console-sso:" + token.encode(), hashlib.sha256).hexdigest()


def safe_next(path: str | None) -> str | None:
    """A console path to land on, or None: never another site."""
    if not path or len(path) > 255 or not path.startswith("/admin/") or "//" in path or "\\" in path:
        return None
    return path


def issue(db: Database, secret_key: str, api_key_id: int, next_path: str | None = None,
          *, now: dt.datetime | None = None) -> tuple[str, dt.datetime]:
    """A new token for ``api_key_id`` and when it expires."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    with db.transaction() as session:
        session.execute(delete(ConsoleSsoToken).where(ConsoleSsoToken.expires_at < now - KEEP_EXPIRED))
        session.add(ConsoleSsoToken(token_hash=token_hash(secret_key, token), api_key_id=api_key_id,
                                    next_path=safe_next(next_path), created_at=now, expires_at=now + LIFETIME))
    return token, now + LIFETIME


def redeem(db: Database, secret_key: str, token: str, *, now: dt.datetime | None = None) -> Redeemed | None:
    """The key and landing path of a valid, unused, unexpired token, used up now; else None."""
    now = now or utcnow()
    digest = token_hash(secret_key, token)
    with db.transaction() as session:
        used = session.execute(update(ConsoleSsoToken).where(
            ConsoleSsoToken.token_hash == digest, ConsoleSsoToken.used_at.is_(None),
            ConsoleSsoToken.expires_at > now).values(used_at=now))
        if not used.rowcount:
            return None
        row = session.execute(select(ConsoleSsoToken.api_key_id, ConsoleSsoToken.next_path)
                              .where(ConsoleSsoToken.token_hash == digest)).one()
    return Redeemed(row.api_key_id, row.next_path)
