"""Writers of one SQLite database take turns, across threads and processes.

SQLite lets one transaction write at a time; the others wait in its busy handler,
which polls with sleeps of up to 100 ms, so under load a hook could wait half a
second while the database sat idle. Here a writer first takes this process's lock
(threads queue in order) and then an ``flock`` on a file beside the database
(processes queue in the kernel, woken the moment it is released). Nothing else
changes: ``BEGIN IMMEDIATE`` and the busy timeout stay, for writers that come
another way. PostgreSQL needs none of this.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from typing import Iterator

from sqlalchemy.engine import make_url


class WriterTurns:
    """One per Database: ``turn()`` holds the database's write turn (re-entrant)."""

    def __init__(self, url: str):
        database = make_url(url).database
        in_memory = not database or database == ":memory:" or database.startswith("file::memory:")
        self.lock_path = None if in_memory else f"{os.path.abspath(database)}-writers.lock"
        self._lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._fd_pid = 0            # a forked child must not share its parent's lock

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        with self._lock:
            self._depth += 1
            try:
                if self._depth == 1:
                    self._take_file_lock()
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release_file_lock()

    def _take_file_lock(self) -> None:
        if self.lock_path is None:
            return
        if self._fd is not None and self._fd_pid != os.getpid():
            self._fd = None         # the parent's descriptor: its lock is the parent's too
        if self._fd is None:
            try:
                self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._fd_pid = os.getpid()
            except OSError:
                self.lock_path = None    # a read-only directory: the busy handler alone
                return
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def _release_file_lock(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._fd_pid == os.getpid():
                os.close(self._fd)
            self._fd = None
