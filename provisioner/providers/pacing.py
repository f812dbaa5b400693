"""Client-side pacing of upstream calls: one token bucket per upstream per process.

An upstream's ``rate_limit: {per_second: R, burst: B}`` (upstreams.yaml) lets at most
``B`` calls go at once and ``R`` a second after that, from every runner thread and every
adapter instance of that upstream in this process: the buckets live in this module,
keyed by upstream name, and ``HttpClient`` picks its upstream's up when it is built
(``build_provider`` sets them from the config first). A call waits for its token before
it is sent; a wait longer than the caller can afford (the job's lease, the client's
``retry_after_cap``) is refused with ``RateLimited`` instead, so the job runs again later.

Without pacing every runner bursts, the upstream answers 429 with whole seconds of
``Retry-After``, and most of the allowed rate is lost in the backoff. A 429 that does come
(the limit is shared with other processes, the upstream counts differently) pauses the
whole bucket until its ``Retry-After``: the other threads stop hammering it too.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, RateLimited

#: the setting's keys, and the most a burst may be (a typo guard, not a real limit)
RATE_LIMIT_KEYS = ("per_second", "burst")
MAX_BURST = 10_000


@dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst: int


def _number(value: Any) -> float | None:
    """A finite number, also from a string (a ``${ENV}`` reference resolves to one)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def rate_limit_problems(raw: Any) -> list[tuple[str | None, str]]:
    """What is wrong with an upstream's ``rate_limit`` value, as (field or None, message)."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return [(None, "must be a mapping like {per_second: 20, burst: 20}")]
    problems: list[tuple[str | None, str]] = [
        (str(key), f"unknown key (known: {', '.join(RATE_LIMIT_KEYS)})")
        for key in raw if key not in RATE_LIMIT_KEYS]
    if raw.get("per_second") is None:
        problems.append(("per_second", "is required"))
    elif not (_number(raw["per_second"]) or 0) > 0:
        problems.append(("per_second", f"must be a positive number of calls per second "
                                       f"(got {raw['per_second']!r})"))
    if raw.get("burst") is not None:
        burst = _number(raw["burst"])
        if burst is None or burst != int(burst) or not 1 <= burst <= MAX_BURST:
            problems.append(("burst", f"must be a whole number from 1 to {MAX_BURST} (got {raw['burst']!r})"))
    return problems


def parse_rate_limit(upstream: str, raw: Any) -> RateLimit | None:
    """The upstream's limit (None when it has none); ConfigurationError naming the field.

    ``burst`` defaults to one second's worth of calls (at least one)."""
    problems = rate_limit_problems(raw)
    if problems:
        field, message = problems[0]
        where = "rate_limit" + (f".{field}" if field else "")
        raise ConfigurationError(f"upstream {upstream}: {where}: {message}")
    if raw is None:
        return None
    rate = _number(raw["per_second"])
    burst = _number(raw["burst"]) if raw.get("burst") is not None else max(1.0, math.floor(rate))
    return RateLimit(rate, int(burst))


class TokenBucket:
    """``limit.per_second`` tokens a second, at most ``limit.burst`` saved up.

    A caller reserves the next token under the lock (the count may go negative: that is
    the queue of callers already waiting) and sleeps outside it until its token is due,
    so there is no busy waiting and callers are served in order. A pause (a 429's
    ``Retry-After``) empties the bucket, stops the refill until it ends and sends every
    caller still asleep back to reserve again, so none of them goes during the pause.
    """

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.limit = limit
        self._tokens = float(limit.burst)
        self._stamp = clock()               # when _tokens was last brought up to date
        self._paused_until = float("-inf")
        self._pauses = 0                    # moves on every pause: reservations before it are void

    def set_limit(self, limit: RateLimit) -> None:
        """A reloaded config: keep the bucket (its holders) with the new figures."""
        with self._lock:
            self._refill(self._clock())
            self.limit = limit
            self._tokens = min(self._tokens, float(limit.burst))

    def _refill(self, now: float) -> None:
        start = max(self._stamp, self._paused_until)   # nothing refills during a pause
        if now > start:
            self._tokens = min(float(self.limit.burst), self._tokens + (now - start) * self.limit.per_second)
        self._stamp = max(self._stamp, now)

    def _wait_for_token(self, now: float) -> float:
        """Seconds from ``now`` until the next unreserved token (lock held, refilled)."""
        pause = max(0.0, self._paused_until - now)
        return pause + max(0.0, (1.0 - self._tokens) / self.limit.per_second)

    def acquire(self, max_wait: float, *, what: str = "an upstream call") -> float:
        """Take a token, sleeping until it is due; returns the seconds waited.

        Raises RateLimited (``retry_after``: when a token would come) if that is more
        than ``max_wait`` seconds away; nothing is taken then."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                wait = self._wait_for_token(now)
                allowed = max(0.0, max_wait - waited)
                if wait > allowed:
                    why = (f"the upstream asked for a pause (Retry-After) of {self._paused_until - now:.1f}s more"
                           if self._paused_until > now else
                           f"its rate limit ({self.limit.per_second:g}/s) has no call free for {wait:.1f}s")
                    raise RateLimited(f"{what}: not sent, {why}; at most {allowed:.1f}s could be waited",
                                      retry_after=wait)
                self._tokens -= 1.0
                pauses = self._pauses
            if wait <= 0:
                return waited
            self._sleep(wait)
            waited += wait
            with self._lock:
                if self._pauses == pauses:
                    return waited
            # paused while asleep: the reservation went with the emptied bucket

    def pause(self, seconds: float) -> None:
        """The upstream said to wait ``seconds`` (a 429's Retry-After): no call from this
        process goes before then, and the bucket starts again from empty."""
        if not seconds > 0:
            return
        with self._lock:
            now = self._clock()
            self._refill(now)
            until = now + seconds
            if until > self._paused_until:
                self._paused_until = until
                self._tokens = 0.0
                self._pauses += 1

    def snapshot(self) -> dict[str, float]:
        """Tokens now and seconds of pause left (tests, diagnostics)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            return {"tokens": self._tokens, "paused_for": max(0.0, self._paused_until - now)}


# --- one bucket per upstream in this process -------------------------------------------

_BUCKETS: dict[str, TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def configure(upstream: str, raw: Any) -> TokenBucket | None:
    """Set ``upstream``'s bucket from its ``rate_limit`` setting (None removes it).

    The same upstream configured again keeps its bucket, with the new figures, so that
    every client already holding it stays paced together."""
    limit = parse_rate_limit(upstream, raw)
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(upstream)
        if limit is None:
            _BUCKETS.pop(upstream, None)
            return None
        if bucket is None:
            bucket = _BUCKETS[upstream] = TokenBucket(limit)
        elif bucket.limit != limit:
            bucket.set_limit(limit)
        return bucket


def bucket_for(upstream: str) -> TokenBucket | None:
    """The process's bucket of ``upstream``, if it has a rate limit."""
    with _BUCKETS_LOCK:
        return _BUCKETS.get(upstream)


def forget(upstream: str) -> None:
    with _BUCKETS_LOCK:
        _BUCKETS.pop(upstream, None)
