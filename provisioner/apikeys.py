"""Admin API keys: created once, shown once, stored as a SHA-256 hash."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import utcnow
from .models import ApiKey
from .secrets import hash_api_key, new_api_key

SCOPES = ("admin", "read")


def create_api_key(session: Session, name: str, scope: str) -> tuple[ApiKey, str]:
    """A new key row and the key itself, which is never stored and cannot be shown again."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    key = new_api_key()
    row = ApiKey(name=name, scope=scope, prefix=key[:10], key_hash=hash_api_key(key), created_at=utcnow())
    session.add(row)
    session.flush()
    return row, key


def authenticate(session: Session, key: str) -> ApiKey | None:
    row = session.execute(
        select(ApiKey).where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))
    ).scalar_one_or_none()
    return row
