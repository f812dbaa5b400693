"""A limit on refused sign-ins per client address, kept in the database so that it is
the same across every process and machine. Only failures count: people behind one
address who sign in successfully never lock each other out. Past ``limit`` failures
within ``window`` the address waits until the oldest of them ages out. Addresses are
stored as keyed hashes, never as themselves.

Used by the client area's sign-in links (``client.sso``) and the console's sign-in
(``console.throttle``), each with a table of its own (a row: ``client``, ``at``)."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from ..db import Database, utcnow


@dataclass(frozen=True)
class FailureLimit:
    model: Any                 # the ORM class of the failures' table
    purpose: bytes             # keys the address hash to this limit
    limit: int
    window: dt.timedelta

    def _client(self, secret_key: str, address: str) -> str:
        return hmac.new(secret_key.encode(), self.purpose + address.encode(), hashlib.sha256).hexdigest()

    def wait(self, db: Database, secret_key: str, address: str, *, now: dt.datetime | None = None) -> float | None:
        """None if ``address`` may try now, else the seconds until it may."""
        now = now or utcnow()
        with db.read() as session:
            recent = session.execute(
                select(self.model.at)
                .where(self.model.client == self._client(secret_key, address), self.model.at > now - self.window)
                .order_by(self.model.at.desc()).limit(self.limit)).scalars().all()
        if len(recent) < self.limit:
            return None
        return max(0.0, (recent[-1] + self.window - now).total_seconds())

    def record(self, db: Database, secret_key: str, address: str, *, now: dt.datetime | None = None) -> None:
        """Count one failure for ``address``; failures older than the window are dropped."""
        now = now or utcnow()
        with db.transaction() as session:
            session.execute(delete(self.model).where(self.model.at <= now - self.window))
            session.add(self.model(client=self._client(secret_key, address), at=now))
