"""A job attempt's lease as its runner sees it, so that a runner stops acting upstream
before another one may take the job over.

The sweeper hands a job back once its ``lease_expires_at`` has passed. A runner whose
heartbeats cannot reach the database (a restart, a network cut) does not learn that, yet
must not write upstream after the job may have gone to someone else: two converges of one
service would then race, and the older one could undo the newer. So every runner keeps its
own clock of the lease (renewed by each heartbeat that extended it), and before each
upstream request (provisioner.providers.http) asks whether enough of it is left for that
request to end in time; if not, the attempt stops with a retryable error and the job is
run again by whoever holds it next. Outside a job (reconcile passes, the client area)
nothing is checked.
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator

from .providers.errors import Unavailable

_CURRENT: contextvars.ContextVar["Lease | None"] = contextvars.ContextVar("provisioner_job_lease", default=None)


class LeaseExpiring(Unavailable):
    """Not enough of the attempt's lease is left to send an upstream request."""
    code = "lease_expiring"
    safe_message = "This change was interrupted; it is tried again."


class Lease:
    def __init__(self, seconds: float, *, age: float = 0.0, clock=time.monotonic):
        """``age``: how long ago the claim that took it was made."""
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._until = clock() - max(0.0, age) + seconds
        self._lost = False

    def renewed(self, at: float | None = None) -> None:
        """A heartbeat extended it (``at``: when that heartbeat was sent)."""
        with self._lock:
            self._until = max(self._until, (self._clock() if at is None else at) + self.seconds)

    def lost(self) -> None:
        """A heartbeat found the job taken away (swept)."""
        with self._lock:
            self._lost = True

    def left(self) -> float:
        with self._lock:
            return 0.0 if self._lost else self._until - self._clock()

    def needed_for(self, request_seconds: float) -> float:
        """Lease a request of ``request_seconds`` needs left when it is sent: at most half
        the lease, so a timeout longer than that still runs."""
        return min(request_seconds, self.seconds / 2)

    def check(self, needed: float, action: str) -> None:
        """Raise LeaseExpiring unless ``needed`` seconds (a request's timeout) are left."""
        left = self.left()                    # 0 once lost
        if left <= 0 or left < needed:
            raise LeaseExpiring(f"{action}: not sent, {max(0.0, left):.1f}s of the job's lease left "
                                f"(needs {needed:.1f}s); the job runs again", action=action)


@contextlib.contextmanager
def holding(lease: Lease) -> Iterator[Lease]:
    """Upstream requests made in this block (this thread) check ``lease`` first."""
    token = _CURRENT.set(lease)
    try:
        yield lease
    finally:
        _CURRENT.reset(token)


def check_current(request_seconds: float, action: str) -> None:
    """Called before every upstream request: inside a job, enough lease must be left for
    the request to end (``Lease.needed_for``)."""
    lease = _CURRENT.get()
    if lease is not None:
        lease.check(lease.needed_for(request_seconds), action)


def wait_allowed(request_seconds: float) -> float | None:
    """How long a request of ``request_seconds`` may still wait before it is sent and end
    within the job's lease (what ``check_current`` would need afterwards); None outside a
    job. Negative when it cannot be sent at all."""
    lease = _CURRENT.get()
    if lease is None:
        return None
    return lease.left() - lease.needed_for(request_seconds)
