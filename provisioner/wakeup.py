"""Waking idle job runners the moment a job becomes runnable.

``Wakeup`` is a generation counter under a condition: a runner notes the generation
before it tries to claim and, finding nothing, sleeps until the generation moves or
its poll interval passes. A wake-up that lands between the empty claim and the sleep
is therefore not lost.

``Listener`` (PostgreSQL) is a thread with one psycopg connection of its own in
autocommit that ``LISTEN``s on ``provisioner.jobs.CHANNEL``; every notification, and
every (re)connection (notifications sent while it was away are gone), moves the
generation. When the connection breaks it reconnects with backoff; the runners' poll
keeps the queue moving meanwhile, and is all SQLite has.
"""
from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import make_url

from .db import error_summary

log = logging.getLogger("provisioner.worker")

CONNECT_TIMEOUT = 10      # seconds to open the listening connection
CHECK_STOP_EVERY = 1.0    # seconds between looks at the stop flag while listening
RECONNECT_CAP = 5.0       # seconds between reconnection tries, at most


class Wakeup:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    def generation(self) -> int:
        with self._condition:
            return self._generation

    def wake(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> bool:
        """Sleep until the generation differs from ``seen`` (True) or ``timeout`` passes."""
        with self._condition:
            return self._condition.wait_for(lambda: self._generation != seen, timeout)


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://...`` as libpq takes it (password included: never log it)."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener(threading.Thread):
    def __init__(self, database_url: str, channel: str, wakeup: Wakeup, stop: threading.Event):
        super().__init__(name="job-listener", daemon=True)
        self._conninfo = libpq_url(database_url)
        self._channel = channel
        self._wakeup = wakeup
        self._stopping = stop
        self.listening = threading.Event()   # set while LISTEN is in force (tests, benchmarks)

    def run(self) -> None:
        import psycopg

        failures = 0
        while not self._stopping.is_set():
            try:
                # Keepalives: a connection cut without a FIN is noticed within a minute.
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                     keepalives=1, keepalives_idle=30, keepalives_interval=10,
                                     keepalives_count=3) as conn:
                    conn.execute(f"LISTEN {self._channel}")
                    if failures:
                        log.info("job listener: listening again")
                    failures = 0
                    self.listening.set()
                    self._wakeup.wake()
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=CHECK_STOP_EVERY):
                            self._wakeup.wake()
            except Exception as exc:   # a database away or restarting: the poll covers for us
                self.listening.clear()
                failures += 1
                log.warning("job listener: %s; runners poll until it is back", error_summary(exc))
                self._stopping.wait(min(RECONNECT_CAP, 0.25 * 2 ** (failures - 1)))
        self.listening.clear()
