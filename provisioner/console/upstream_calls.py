"""Upstream health from the providers' own HTTP calls: the Prometheus counters and
histogram that ``providers.http`` keeps (``UPSTREAM_CALLS``, ``UPSTREAM_DURATION``).

Those live in the process that made the calls, so these figures are this process's
only (other web and worker processes keep their own; a Prometheus server scraping
each of them sees them all). The figures cover a recent window: each read keeps a
snapshot of the counters (at most one per ``EVERY``), and the newest one older than
``SPAN`` is the base the rates and latencies are counted from; before there is one,
the base is the process's start. Latencies are estimated from the histogram's
buckets as Prometheus's ``histogram_quantile`` does (linear within a bucket).
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from .. import metrics

SPAN = 300.0          # seconds: the window the figures cover, once the process is that old
EVERY = 5.0           # seconds between kept snapshots
KEEP = int(SPAN / EVERY) + 2


@dataclass(frozen=True)
class Totals:
    """One upstream's counters at one moment: calls, failed calls, and the duration
    histogram's cumulative counts by upper bound (seconds, the last one +Inf)."""
    calls: float
    errors: float
    buckets: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class CallHealth:
    upstream: str
    calls: int
    errors: int
    per_minute: float
    p50_ms: float | None
    p95_ms: float | None
    p95_over: bool = False    # the 95th percentile lies past the histogram's last bound

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class Figures:
    pid: int
    seconds: float            # how long the figures cover
    since_start: bool         # the window is the process's whole life so far
    rows: list[CallHealth]
    last_bound_ms: float


def read_totals() -> dict[str, Totals]:
    """The counters now, per upstream (summed over actions)."""
    calls: dict[str, float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    for metric in metrics.UPSTREAM_CALLS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                upstream = sample.labels["provider"]
                calls[upstream] += sample.value
                if sample.labels["outcome"] != "ok":
                    errors[upstream] += sample.value
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for metric in metrics.UPSTREAM_DURATION.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                buckets[sample.labels["provider"]][float(sample.labels["le"])] += sample.value
    return {name: Totals(calls[name], errors[name], tuple(sorted(buckets.get(name, {}).items())))
            for name in set(calls) | set(buckets)}


def quantile(share: float, buckets: list[tuple[float, float]]) -> tuple[float | None, bool]:
    """(seconds, past the last bound) of the ``share`` quantile of cumulative ``buckets``."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None, False
    rank = share * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower, True
            inside = count - below
            return (lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)), False
        lower, below = bound, count
    return lower, True


def _minus(now: Totals, base: Totals | None) -> tuple[float, float, list[tuple[float, float]]]:
    if base is None:
        return now.calls, now.errors, list(now.buckets)
    earlier = dict(base.buckets)
    return (now.calls - base.calls, now.errors - base.errors,
            [(bound, count - earlier.get(bound, 0.0)) for bound, count in now.buckets])


class Window:
    """Snapshots of the counters over the last ``SPAN``; thread-safe (views run in threads)."""

    def __init__(self, clock=time.monotonic, started: float | None = None, read=read_totals):
        self._clock, self._read = clock, read
        self._started = metrics.STARTED if started is None else started
        self._snaps: deque[tuple[float, dict[str, Totals]]] = deque(maxlen=KEEP)
        self._lock = threading.Lock()

    def figures(self) -> Figures:
        now, totals = self._clock(), self._read()
        with self._lock:
            if not self._snaps or now - self._snaps[-1][0] >= EVERY:
                self._snaps.append((now, totals))
            # the base: the newest snapshot at least SPAN old, else the oldest one kept
            while len(self._snaps) > 1 and now - self._snaps[1][0] >= SPAN:
                self._snaps.popleft()
            base_at, base = self._snaps[0]
        if now - base_at < EVERY:          # no earlier snapshot: since the process started
            base_at, base = self._started, {}
        seconds = max(now - base_at, 1e-9)
        rows = []
        for name in sorted(totals):
            calls, errors, buckets = _minus(totals[name], base.get(name))
            if calls <= 0:
                continue
            p50, _ = quantile(.5, buckets)
            p95, over = quantile(.95, buckets)
            rows.append(CallHealth(name, int(calls), int(errors), calls / seconds * 60,
                                   None if p50 is None else p50 * 1000, None if p95 is None else p95 * 1000, over))
        return Figures(os.getpid(), seconds, base_at == self._started, rows,
                       metrics.UPSTREAM_BUCKETS[-1] * 1000)


#: the web process's window (one per process, as the counters are)
WINDOW = Window()
