"""Hooks delivered the way a billing system delivers them, every answer kept.

A delivery is signed afresh on each try (the timestamp must be recent) but keeps
its webhook-id and body, so a retry is a redelivery the provisioner must
recognise. 5xx answers and connection errors are retried until the hook is
accepted (2xx); any other answer ends the delivery and is kept in ``rejected``
for the test to report. Tries go to a random ``serve`` process, as behind a load
balancer.

This billing system is impatient: it waits at most ``retry_cap`` seconds between
tries whatever ``Retry-After`` says, so an outage is seen by many answers.
"""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from tests.e2e.lifecycles import Delivery
from tests.e2e.procs import HTTP_TIMEOUT


@dataclass(frozen=True)
class Answer:
    webhook_id: str
    duplicate: bool
    sent: float                  # time.monotonic() when the try was sent
    answered: float              # ... and when its answer (or error) came
    status: int | None           # None: the connection failed or timed out
    code: str | None = None      # error.code of a JSON error answer
    event_id: str | None = None  # of a 2xx answer
    retry_after: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class BillingSender:
    def __init__(self, fleet, *, threads: int = 8, retry_cap: float = 1.0, give_up_after: float = 300):
        self.fleet = fleet
        self.retry_cap = retry_cap
        self.give_up_after = give_up_after
        self.lock = threading.Lock()
        self.answers: list[Answer] = []
        self.accepted: dict[str, list[Answer]] = {}    # webhook-id -> its 2xx answers
        self.rejected: list[Answer] = []               # 4xx and other non-retried answers
        self.gave_up: list[Answer] = []
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="billing")
        self._local = threading.local()
        self._sessions: list[requests.Session] = []

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            with self.lock:
                self._sessions.append(self._local.session)
        return self._local.session

    def _try(self, delivery: Delivery, raw: str) -> Answer:
        url = random.choice(self.fleet.server_urls)
        body, headers = self.fleet.signed(raw, msg_id=delivery.event.webhook_id)
        sent = time.monotonic()
        try:
            resp = self._session().post(f"{url}/hooks/v1/events", data=body, headers=headers,
                                        timeout=HTTP_TIMEOUT)
        except requests.RequestException:
            return Answer(delivery.event.webhook_id, delivery.duplicate, sent, time.monotonic(), None)
        answered = time.monotonic()
        try:
            data = resp.json()
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        return Answer(delivery.event.webhook_id, delivery.duplicate, sent, answered, resp.status_code,
                      code=error.get("code"), event_id=data.get("event_id"),
                      retry_after=resp.headers.get("Retry-After"))

    def deliver(self, delivery: Delivery) -> Answer:
        """Send until accepted, refused (not 5xx) or ``give_up_after`` seconds passed."""
        raw = delivery.event.raw()
        deadline = time.monotonic() + self.give_up_after
        tries = 0
        while True:
            answer = self._try(delivery, raw)
            with self.lock:
                self.answers.append(answer)
                if answer.accepted:
                    self.accepted.setdefault(answer.webhook_id, []).append(answer)
                elif answer.status is not None and answer.status < 500:
                    self.rejected.append(answer)
            if answer.accepted or (answer.status is not None and answer.status < 500):
                return answer
            if time.monotonic() >= deadline:
                with self.lock:
                    self.gave_up.append(answer)
                return answer
            tries += 1
            time.sleep(min(self.retry_cap, 0.05 * 2 ** tries))

    def deliver_all(self, deliveries: list[Delivery]) -> list[Answer]:
        """Every delivery of one wave, concurrently; returns once each has ended."""
        return list(self._pool.map(self.deliver, deliveries))

    def accepted_count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self.lock:
            for session in self._sessions:
                session.close()
