"""Helpers shared by the tests: event bodies, a Standard Webhooks signer, a clock the test
moves, simulator state, table dumps."""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import requests
from sqlalchemy import MetaData
from standardwebhooks.webhooks import Webhook

from provisioner.db import Database


def event_body(kind: str, service_id: str = "1042", *, domain: str = "example.com",
               product_id: str = "12", options: dict | None = None, occurred_at: dt.datetime | None = None,
               **service_fields) -> dict:
    occurred_at = occurred_at or dt.datetime.now(dt.timezone.utc)
    service = {"id": service_id, "product_id": product_id, "domain": domain,
               "config_options": options if options is not None else {"Total Mailboxes": 5,
                                                                       "Mailbox Quota (GB)": 10},
               "billing_cycle": "monthly",
               "next_due_date": (occurred_at.date() + dt.timedelta(days=30)).isoformat()}
    service.update(service_fields)
    return {"type": kind, "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
            "service": service,
            "client": {"id": "77", "email": "owner@example.com", "first_name": "Ada",
                       "last_name": "Lovelace", "company": "", "country": "DE"}}


class Signer:
    """Signs hook bodies the way a billing system does (Standard Webhooks)."""

    def __init__(self, secret: str):
        self.secret = secret

    def headers(self, raw: str, msg_id: str | None = None, timestamp: dt.datetime | None = None) -> dict:
        msg_id = msg_id or "msg_" + uuid.uuid4().hex
        timestamp = timestamp or dt.datetime.now(dt.timezone.utc)
        return {"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp.timestamp())),
                "webhook-signature": Webhook(self.secret).sign(msg_id, timestamp, raw),
                "content-type": "application/json"}

    def post(self, client, body: dict | str, *, msg_id: str | None = None, wait: int | None = None, **kw):
        raw = body if isinstance(body, str) else json.dumps(body)
        headers = self.headers(raw, msg_id)
        if wait is not None:
            headers["prefer"] = f"wait={wait}"
        if isinstance(client, str):  # a base URL: real HTTP
            return requests.post(f"{client}/hooks/v1/events", data=raw, headers=headers, timeout=40, **kw)
        return client.post("/hooks/v1/events", data=raw, headers=headers, **kw)


class StillClock:
    """Wall-clock seconds that move only when the test moves them, for a simulator's
    delays: what it has done by an adapter's first call must not hang on how fast this
    machine runs."""

    def __init__(self, now: float | None = None):
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


def sim_state(sim) -> list[dict]:
    return requests.get(f"{sim.url}/_sim/state", timeout=5).json()["accounts"]


def table_dump(database_url: str) -> str:
    """Every row of every table as text, for secret-leak checks."""
    database = Database(database_url)
    meta = MetaData()
    meta.reflect(database.engine)
    chunks = []
    with database.engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(table.select()):
                chunks.append(repr(tuple(row)))
    database.dispose()
    return "\n".join(chunks)
