"""Pooled connections across a PostgreSQL restart (provisioner/db.py ``_ping_after_idle``):
one that sat in the pool is pinged and replaced, so the first transaction after a restart
succeeds; one back in use at once is not pinged, and a dead one fails that transaction
alone, the next one getting a fresh connection."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from provisioner import db as dbmod
from provisioner.db import Database


def _backend_pid(database: Database) -> int:
    with database.transaction() as session:
        return session.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_idle_in_the_pool_is_replaced_after_a_restart(pg_cluster, monkeypatch):
    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE_SECONDS", 0.2)
    database = Database(pg_cluster.create_database("pool_idle"))
    try:
        first = _backend_pid(database)
        assert _backend_pid(database) == first          # reused at once, not pinged away
        pg_cluster.restart(mode="fast")
        time.sleep(0.3)                                  # it sat idle: pinged, found dead
        assert _backend_pid(database) != first           # the first transaction succeeds
    finally:
        database.dispose()


def test_a_connection_reused_at_once_fails_one_transaction_then_the_pool_recovers(pg_cluster, monkeypatch):
    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE_SECONDS", 60.0)   # never pinged in this test
    database = Database(pg_cluster.create_database("pool_busy"))
    try:
        first = _backend_pid(database)
        pg_cluster.restart(mode="fast")
        with pytest.raises(OperationalError):
            _backend_pid(database)
        assert _backend_pid(database) != first
    finally:
        database.dispose()
