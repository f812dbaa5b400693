"""What the client area's and the console's sessions kept on the server share.

Each is a row (``ClientLogin``, ``ConsoleLogin``) whose id is a keyed hash of the
cookie's random token, so a copied database grants no session; its idle expiry
moves on use, written at most once every ``TOUCH_EVERY``, never past the absolute
limit; an ended login keeps its reason; rows that stopped working are deleted
``KEEP_ENDED`` later. The modules over each table decide who may sign in and why
a login ends.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from ..db import Database

#: last_seen_at is written at most this often (a write per page view would be a waste)
TOUCH_EVERY = dt.timedelta(seconds=60)
#: ended and expired logins are deleted this long after they stopped working
KEEP_ENDED = dt.timedelta(days=1)


def token_digest(secret_key: str, purpose: str, token: str) -> str:
    """An HMAC of a cookie's token under the app's secret key, for one purpose."""
    return hmac.new(secret_key.encode(), f"{purpose}:".encode() + token.encode(), hashlib.sha256).hexdigest()


def delete_stale(session: Session, model, now: dt.datetime) -> None:
    """Housekeeping: logins that stopped working a while ago serve no one."""
    session.execute(delete(model).where(model.expires_at < now - KEEP_ENDED))


def touch(db: Database, model, login, now: dt.datetime, idle: dt.timedelta,
          absolute: dt.timedelta) -> None:
    """Move a working login's idle expiry, if it was last written ``TOUCH_EVERY`` ago."""
    if now - login.last_seen_at < TOUCH_EVERY:
        return
    with db.transaction() as session:
        session.execute(update(model).where(model.id == login.id, model.ended_at.is_(None))
                        .values(last_seen_at=now, expires_at=min(now + idle, login.created_at + absolute)))


def end(db: Database, model, login_id: str, reason: str, now: dt.datetime) -> None:
    """End a login (if it still works), keeping why."""
    with db.transaction() as session:
        session.execute(update(model).where(model.id == login_id, model.ended_at.is_(None))
                        .values(ended_at=now, ended_reason=reason, expires_at=now))
