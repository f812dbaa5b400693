"""Admin API keys: created once, shown once, stored as a SHA-256 hash.

A key without a source is an operator key over every billing source; a key
with one sees and acts on that source's services only (``admin.Scope``).
"""
from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .db import utcnow
from .models import ApiKey
from .secrets import hash_api_key, new_api_key

SCOPES = ("admin", "read")


class ApiKeyError(ValueError):
    """A key cannot be created or revoked as asked; the message says why."""


def create_api_key(session: Session, name: str, scope: str, source: str | None = None) -> tuple[ApiKey, str]:
    """A new key row and the key itself, which is never stored and cannot be shown again."""
    if scope not in SCOPES:
        raise ApiKeyError(f"scope must be one of {', '.join(SCOPES)}")
    if not name.strip():
        raise ApiKeyError("the key needs a name (who or what uses it)")
    key = new_api_key()
    row = ApiKey(name=name.strip(), scope=scope, source=source, prefix=key[:10], key_hash=hash_api_key(key),
                 created_at=utcnow())
    session.add(row)
    session.flush()
    return row, key


def authenticate(session: Session, key: str) -> ApiKey | None:
    row = session.execute(
        select(ApiKey).where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))
    ).scalar_one_or_none()
    return row


def list_api_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    stmt = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return list(session.execute(stmt).scalars())


def revoke_api_key(session: Session, ident: str) -> ApiKey:
    """Revoke the key with this id or prefix (as ``api-key list`` shows them); it stops
    working at once. Revoking a revoked key is an error, so a typo is never silent."""
    ident = ident.strip().rstrip("…")
    conditions = [ApiKey.prefix == ident]
    if ident.isdigit():
        conditions.append(ApiKey.id == int(ident))
    rows = list(session.execute(select(ApiKey).where(or_(*conditions))).scalars())
    if not rows:
        raise ApiKeyError(f"no API key with id or prefix {ident!r}")
    if len(rows) > 1:
        raise ApiKeyError(f"{ident!r} matches several keys; give the id from 'provisioner api-key list'")
    row = rows[0]
    if row.revoked_at is not None:
        raise ApiKeyError(f"key {row.prefix}… ({row.name!r}) was already revoked on "
                          f"{row.revoked_at.isoformat(timespec='seconds')}")
    row.revoked_at = utcnow()
    return row
