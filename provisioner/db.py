"""Database engine, sessions and the declarative base.

SQLite is the embedded default (one process: web, worker and scheduler);
PostgreSQL serves several processes on several machines. On SQLite every
transaction starts with ``BEGIN IMMEDIATE``: writers queue on the busy timeout
instead of failing when a read transaction later tries to write, which is what
makes the queue's claim step safe there without ``SKIP LOCKED``. Writers also
take turns before they begin (provisioner/sqlite_writers.py), so they queue rather
than poll each other in the busy handler.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import time
from typing import Iterator

from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from .sqlite_writers import WriterTurns

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given; use provisioner.db.utcnow()")
            value = value.astimezone(dt.timezone.utc)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (not a bad query).

    OperationalError is what the drivers raise for refused or cut connections and a
    server starting up or shutting down (psycopg also files serialization failures
    there, which are as worth a retry); a pool that cannot hand out a connection in
    time is the same to the caller. Such errors pass: callers retry, answer 503 or
    back off, rather than treating them as bugs."""
    if isinstance(exc, (OperationalError, PoolTimeout)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def error_summary(exc: BaseException) -> str:
    """The driver's first line of a database error, for a one-line log entry."""
    text = str(getattr(exc, "orig", None) or exc)
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            # Let SQLAlchemy, not the driver, decide when transactions begin.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # Reads (see Database.read) need no write lock; WAL lets them run beside a writer.
            read_only = conn.get_execution_options().get("provisioner_read_only")
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)
    _ping_after_idle(engine)
    return engine


#: a pooled connection taken again within this many seconds of its return is not pinged
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_after_idle(engine: Engine) -> None:
    """After a database restart every pooled connection is dead: one that sat in the pool
    is pinged when taken out and replaced if dead, so the first request afterwards does
    not fail. One back in use within PING_AFTER_IDLE_SECONDS is not (under load that
    ping would be a round trip per transaction); if the database went away in that
    second, the statement fails, SQLAlchemy replaces the pool's connections, and the
    caller's retry (intake, jobs) or a 503 answers it."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return              # just connected, or just used
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError("pooled connection failed its ping") from exc
        if alive is False:
            raise DisconnectionError("pooled connection failed its ping")


class Database:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self.ReadSession = sessionmaker(self.engine.execution_options(provisioner_read_only=True),
                                        expire_on_commit=False)
        self._writers = WriterTurns(url) if self.engine.dialect.name == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any exception."""
        with self.writer_turn():
            with self.Session() as session:
                with session.begin():
                    yield session

    def writer_turn(self) -> contextlib.AbstractContextManager:
        """Hold this database's write turn (SQLite; nothing on PostgreSQL) around a write
        transaction that does not come from ``transaction``."""
        return self._writers.turn() if self._writers is not None else contextlib.nullcontext()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A unit of work for reads: on SQLite it takes no write lock.

        Loaded objects stay usable after it ends (no expiry on commit)."""
        with self.ReadSession() as session:
            with session.begin():
                yield session

    def dispose(self) -> None:
        self.engine.dispose()
        if self._writers is not None:
            self._writers.close()
