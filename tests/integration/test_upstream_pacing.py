"""An upstream's rate_limit against a real (in-process) sandbox simulator: every thread and
every adapter of the upstream in the process draws on one bucket, and a 429 from the
upstream stops all of them until its Retry-After, not only the thread that got it."""
from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from provisioner.providers import pacing
from provisioner.providers.errors import RateLimited
from provisioner.providers.registry import build_provider
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer

UPSTREAM = "paced-sandbox"


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(create_simulator_app("sandbox", api_key="k")) as running:
        yield running
    pacing.forget(UPSTREAM)


def sim(server: SimulatorServer, path: str, body: dict | None = None) -> dict:
    client = server.app.test_client()
    return (client.post(f"/_sim/{path}", json=body) if body is not None else client.get(f"/_sim/{path}")).get_json()


def adapters(server: SimulatorServer, count: int, rate_limit: dict) -> list:
    config = {"provider": "sandbox", "base_url": server.url + "/api/v1", "api_key": "k", "timeout": 5,
              "rate_limit": rate_limit}
    return [build_provider(UPSTREAM, dict(config)) for _ in range(count)]


def in_threads(calls: list) -> list:
    """Run each call in its own thread; what each returned or raised."""
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_threads_and_adapters_of_one_upstream_draw_on_one_bucket(server):
    # 6 calls saved up and practically no refill: whoever makes them, the 7th has to wait
    # far longer than a client waits (retry_after_cap), so it is refused before it is sent.
    first, second = adapters(server, 2, {"per_second": 0.001, "burst": 6})
    try:
        for provider in (first, second):
            provider.http.retry_after_cap = 1.0
        list_accounts = [lambda p=p: p.http.request("GET", "/accounts", action="accounts.list").status
                         for p in (first, second) for _ in range(3)]
        assert in_threads(list_accounts) == [200] * 6
        refused = in_threads([lambda: first.http.request("GET", "/accounts", action="accounts.list"),
                              lambda: second.http.request("GET", "/accounts", action="accounts.list")])
        assert all(isinstance(r, RateLimited) and r.retry_after > 900 for r in refused), refused
        assert sim(server, "calls")["total"] == 6          # the refused calls never went out
    finally:
        first.close(), second.close()


def test_a_429_pauses_every_thread_of_the_process_until_its_retry_after(server):
    # The upstream allows a call every 10 s: the second call gets 429 with Retry-After: 10.
    sim(server, "faults", {"rate_limit_per_s": 0.1})
    first, second = adapters(server, 2, {"per_second": 1000, "burst": 1000})   # pacing alone would let all go
    try:
        for provider in (first, second):
            provider.http.retry_after_cap = 2.0            # wait no longer than 2 s in the client
        assert first.http.request("GET", "/accounts", action="accounts.list").status == 200
        with pytest.raises(RateLimited) as limited:
            first.http.request("GET", "/accounts", action="accounts.list")
        assert limited.value.status == 429 and limited.value.retry_after == 10
        assert 9 < first.http.rate_limit.snapshot()["paused_for"] <= 10
        # other threads, through another adapter of the upstream, wait for the pause too:
        # it is longer than they may wait, so they are refused without calling
        others = in_threads([lambda: second.http.request("GET", "/accounts", action="accounts.list")
                             for _ in range(4)])
        assert all(isinstance(r, RateLimited) and r.status is None and 8 < r.retry_after < 10.1 and "Retry-After" in r.message
                   for r in others), others
        faults = sim(server, "faults")
        assert sim(server, "calls")["total"] == 2 and faults["injected"]["rate_limited"] == 1
    finally:
        first.close(), second.close()
