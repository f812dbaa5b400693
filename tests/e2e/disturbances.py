"""What goes wrong during a chaos run, each in a background thread of its own.

- :class:`WorkerKiller` SIGKILLs one worker every few seconds and starts it again
  (a crash loop under a supervisor); the other workers are left alone, so they
  must live through everything else by themselves.
- :class:`FaultBursts` keeps faults on a simulator (errors, malformed answers,
  timeouts, latency) and adds a burst of 429s with Retry-After now and then.
- :class:`DatabaseRestart` stops the local PostgreSQL cluster (immediately: every
  connection is cut, like a crash) once a condition holds, keeps it down for a
  moment and starts it again, noting when it went down and came back.

Each records what it did for the report; an exception inside one is kept in
``error`` (the test fails on it) rather than lost in a thread.
"""
from __future__ import annotations

import datetime as dt
import random
import threading
import time
from typing import Any, Callable

import requests

from tests.e2e.procs import HTTP_TIMEOUT


class Disturbance(threading.Thread):
    def __init__(self, name: str):
        super().__init__(name=name, daemon=True)
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:       # reported by the test, not lost in the thread
            self.error = exc

    def work(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 60) -> None:
        self.stopping.set()
        self.join(timeout)


class WorkerKiller(Disturbance):
    def __init__(self, fleet, victim, *, every: tuple[float, float] = (2.0, 4.0), seed: int = 0):
        super().__init__("worker-killer")
        self.fleet, self.victim, self.every = fleet, victim, every
        self.rng = random.Random(seed)
        self.kills = 0

    def work(self) -> None:
        while not self.stopping.wait(self.rng.uniform(*self.every)):
            self.fleet.restart_worker(self.victim)
            self.kills += 1


class FaultBursts(Disturbance):
    """``base`` faults all along; ``burst`` on top for ``burst_for`` s every ``every`` s."""

    def __init__(self, sim_url: str, base: dict[str, Any], burst: dict[str, Any], *,
                 every: float = 6.0, burst_for: float = 1.5, name: str = "fault-bursts"):
        super().__init__(name)
        self.url = f"{sim_url}/_sim/faults"
        self.base, self.burst = base, burst
        self.every, self.burst_for = every, burst_for
        self.bursts = 0
        self.http = requests.Session()

    def _set(self, faults: dict[str, Any]) -> None:
        self.http.post(self.url, json=faults, timeout=HTTP_TIMEOUT).raise_for_status()

    def work(self) -> None:
        calm = {key: 0 for key in self.burst}
        self._set({"reset": True, **self.base})
        try:
            while not self.stopping.wait(self.every - self.burst_for):
                self._set(self.burst)
                self.bursts += 1
                self.stopping.wait(self.burst_for)
                self._set(calm)
        finally:
            self.http.close()

    def injected(self) -> dict[str, int]:
        resp = requests.get(self.url, timeout=HTTP_TIMEOUT)
        resp.raise_for_status()
        return resp.json()["injected"]


class DatabaseRestart(Disturbance):
    """One restart of ``cluster`` as soon as ``when()`` is true."""

    def __init__(self, cluster, when: Callable[[], bool], *, down_for: float = 3.0):
        super().__init__("database-restart")
        self.cluster, self.when, self.down_for = cluster, when, down_for
        self.stopping_at: float | None = None   # monotonic: stop requested
        self.down_at: float | None = None       # the server is gone
        self.starting_at: float | None = None   # start requested
        self.up_at: float | None = None         # accepting connections again
        self.up_wall: dt.datetime | None = None
        self.done = threading.Event()

    def work(self) -> None:
        try:
            while not self.when():
                if self.stopping.wait(0.05):
                    return
            self.stopping_at = time.monotonic()
            self.cluster.stop("immediate")
            self.down_at = time.monotonic()
            time.sleep(self.down_for)
            self.starting_at = time.monotonic()
            self.cluster.start()
            self.up_at = time.monotonic()
            self.up_wall = dt.datetime.now(dt.timezone.utc)
        finally:
            self.done.set()

    @property
    def outage_s(self) -> float | None:
        if self.stopping_at is None or self.up_at is None:
            return None
        return self.up_at - self.stopping_at
