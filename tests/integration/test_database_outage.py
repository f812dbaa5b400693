"""A database that is away (a restart, a failover) is weathered, not treated as a bug.

The e2e chaos run (tests/e2e/test_chaos_restart.py) restarts a real PostgreSQL;
these pin the pieces down on an address where nothing listens: job runners stay
alive and back off, scheduler ticks skip a round, and what counts as "unavailable"
is decided in one place.
"""
from __future__ import annotations

import logging
import socket
import time

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from provisioner.db import Database, error_summary, is_unavailable
from provisioner.scheduler import outage_tolerant
from provisioner.worker import OUTAGE_BACKOFF_CAP, Worker, outage_backoff


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unreachable(runtime):
    """The runtime's database swapped for a PostgreSQL nobody runs."""
    runtime.db = Database(f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/none?connect_timeout=2")
    yield runtime
    runtime.db.dispose()


def _refused(runtime) -> OperationalError:
    with pytest.raises(OperationalError) as exc:
        with runtime.db.read() as session:
            session.connection()
    return exc.value


def test_a_refused_connection_is_unavailable_a_bad_statement_is_not(unreachable):
    refused = _refused(unreachable)
    assert is_unavailable(refused)
    assert "refused" in error_summary(refused).lower() and "\n" not in error_summary(refused)
    assert not is_unavailable(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_unavailable(ValueError("a bug"))


def test_job_runners_stay_alive_and_back_off_while_the_database_is_away(unreachable, caplog):
    worker = Worker(unreachable, concurrency=2, name="outage-worker")
    caplog.set_level(logging.WARNING, logger="provisioner.worker")
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while sum("database unavailable" in r.getMessage() for r in caplog.records) < 4:
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            time.sleep(0.05)
        assert all(thread.is_alive() for thread in worker._threads)
    finally:
        worker.stop(timeout=10)
    # One line each round, never a stack trace: an outage is expected, not a bug.
    assert not [r for r in caplog.records if r.exc_info]


def test_outage_backoff_doubles_up_to_its_cap():
    delays = [outage_backoff(n) for n in range(1, 10)]
    assert delays[:3] == [0.25, 0.5, 1.0]
    assert delays == sorted(delays) and max(delays) == OUTAGE_BACKOFF_CAP


def test_a_tick_skips_its_round_when_the_database_is_away_and_fails_loudly_otherwise(unreachable, caplog):
    calls = []

    def needs_database(runtime):
        calls.append(1)
        with runtime.db.transaction() as session:
            session.connection()

    def has_a_bug(runtime):
        raise ZeroDivisionError

    caplog.set_level(logging.WARNING, logger="provisioner.scheduler")
    outage_tolerant(needs_database)(unreachable)          # logged, not raised
    assert calls == [1]
    assert any("needs_database skipped: database unavailable" in r.getMessage() for r in caplog.records)
    with pytest.raises(ZeroDivisionError):
        outage_tolerant(has_a_bug)(unreachable)
