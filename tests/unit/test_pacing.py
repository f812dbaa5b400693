"""Client-side pacing of upstream calls (provisioner/providers/pacing.py): one token bucket
per upstream per process, calls wait for their token within what the job's lease allows,
and a 429's Retry-After pauses the whole bucket."""
from __future__ import annotations

import re

import pytest

from provisioner.lease import Lease, holding, wait_allowed
from provisioner.products import check_configs
from provisioner.providers import pacing
from provisioner.providers.errors import ConfigurationError, RateLimited
from provisioner.providers.http import HttpClient
from provisioner.providers.pacing import RateLimit, TokenBucket, parse_rate_limit
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer


class Clock:
    """A monotonic clock that moves only when something sleeps on it."""

    def __init__(self):
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def bucket(per_second: float, burst: int, clock: Clock) -> TokenBucket:
    return TokenBucket(RateLimit(per_second, burst), clock=clock, sleep=clock.sleep)


def test_a_burst_goes_at_once_then_calls_wait_for_the_refill():
    clock = Clock()
    b = bucket(2.0, 3, clock)
    assert [b.acquire(10) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert clock.slept == []
    assert b.acquire(10) == pytest.approx(0.5)          # 2 a second: the next in half a second
    assert b.acquire(10) == pytest.approx(0.5)
    assert clock.slept == [0.5, 0.5]


def test_an_idle_bucket_saves_up_no_more_than_its_burst():
    clock = Clock()
    b = bucket(5.0, 2, clock)
    b.acquire(10), b.acquire(10)
    clock.now += 3600                                   # an idle hour
    assert b.snapshot()["tokens"] == pytest.approx(2.0)
    assert [b.acquire(10) for _ in range(2)] == [0.0, 0.0]
    assert b.acquire(10) == pytest.approx(0.2)


def test_callers_already_waiting_queue_up_behind_each_other():
    clock = Clock()
    b = bucket(4.0, 1, clock)
    b.acquire(10)
    b._sleep = lambda seconds: clock.slept.append(round(seconds, 6))   # three callers reserve, none has slept yet
    for _ in range(3):
        b.acquire(10)
    assert clock.slept == [0.25, 0.5, 0.75]


def test_a_wait_longer_than_allowed_is_refused_and_takes_nothing():
    clock = Clock()
    b = bucket(1.0, 1, clock)
    b.acquire(10)
    with pytest.raises(RateLimited) as refused:
        b.acquire(0.4, what="sandbox accounts.create")
    assert refused.value.retryable and refused.value.retry_after == pytest.approx(1.0)
    assert "sandbox accounts.create: not sent, its rate limit (1/s) has no call free for 1.0s" in refused.value.message
    assert clock.slept == []
    assert b.acquire(1.0) == pytest.approx(1.0)         # the refused caller reserved nothing


def test_a_pause_holds_every_call_until_it_ends_and_restarts_from_empty():
    clock = Clock()
    b = bucket(10.0, 10, clock)
    b.acquire(10)
    b.pause(3.0)                                         # a 429 with Retry-After: 3
    assert b.snapshot() == {"tokens": 0.0, "paused_for": 3.0}
    with pytest.raises(RateLimited) as refused:
        b.acquire(2.0)
    assert refused.value.retry_after == pytest.approx(3.1)
    assert b.acquire(10) == pytest.approx(3.1)           # the pause, then the first refilled token
    b.pause(0.5)
    b.pause(0.2)                                         # a shorter pause does not cut the longer one
    assert b.snapshot()["paused_for"] == pytest.approx(0.5)


def test_a_pause_sends_callers_asleep_back_to_wait_for_its_end():
    clock = Clock()
    b = bucket(10.0, 1, clock)
    b.acquire(10)
    real_sleep = clock.sleep

    def sleep_through_a_429(seconds: float) -> None:
        real_sleep(seconds)
        if len(clock.slept) == 1:
            b.pause(2.0)                                 # another thread got a 429 meanwhile

    b._sleep = sleep_through_a_429
    waited = b.acquire(10)
    assert clock.slept == [0.1, 2.1]                    # its token was void: the pause, then a new one
    assert waited == pytest.approx(2.2)


def test_a_call_waits_only_as_long_as_the_jobs_lease_allows():
    clock = Clock()
    assert wait_allowed(5.0) is None                     # outside a job: no lease to respect
    lease = Lease(30.0, clock=clock)
    with holding(lease):
        assert wait_allowed(5.0) == pytest.approx(25.0)
        assert wait_allowed(60.0) == pytest.approx(15.0)  # a long timeout needs half the lease
        clock.now += 28
        assert wait_allowed(5.0) < 0


def test_a_paced_client_raises_rate_limited_rather_than_wait_past_the_lease():
    server = SimulatorServer(create_simulator_app("sandbox", api_key="k")).start()
    clock = Clock()
    try:
        http = HttpClient("sandbox", server.url + "/api/v1", timeout=2, headers={"Authorization": "Bearer k"},
                          retry_after_cap=60, rate_limit=bucket(0.1, 1, clock))   # a call every 10 s
        with holding(Lease(30.0, clock=clock)):
            for _ in range(3):                           # the 2nd and 3rd wait 10 s each: the lease allows it
                assert http.request("GET", "/accounts", action="list").status == 200
            assert clock.slept == [10.0, 10.0]
            # 10 s of lease left, 2 s of it for the call: its token, 10 s away, would come too late
            with pytest.raises(RateLimited) as refused:
                http.request("POST", "/accounts", action="create", json={"domain": "x.example"})
        assert refused.value.retryable and refused.value.action == "create"
        assert refused.value.retry_after == pytest.approx(10.0)
        assert clock.slept == [10.0, 10.0]
        calls = server.app.test_client().get("/_sim/calls").get_json()["calls"]
        assert calls == {"accounts.list": 3}            # the refused call never reached the upstream
    finally:
        server.stop()


# --- configuration ------------------------------------------------------------------------

def test_rate_limit_settings_are_parsed_with_a_default_burst():
    assert parse_rate_limit("u", None) is None
    assert parse_rate_limit("u", {"per_second": 20, "burst": 5}) == RateLimit(20.0, 5)
    assert parse_rate_limit("u", {"per_second": 2.5}) == RateLimit(2.5, 2)
    assert parse_rate_limit("u", {"per_second": 0.2}) == RateLimit(0.2, 1)
    assert parse_rate_limit("u", {"per_second": "10", "burst": "4"}) == RateLimit(10.0, 4)   # from ${ENV}


@pytest.mark.parametrize("raw, message", [
    (20, "upstream acme: rate_limit: must be a mapping"),
    ({}, "upstream acme: rate_limit.per_second: is required"),
    ({"per_second": 0}, "rate_limit.per_second: must be a positive number"),
    ({"per_second": -1}, "rate_limit.per_second: must be a positive number"),
    ({"per_second": "fast"}, "rate_limit.per_second: must be a positive number"),
    ({"per_second": True}, "rate_limit.per_second: must be a positive number"),
    ({"per_second": float("inf")}, "rate_limit.per_second: must be a positive number"),
    ({"per_second": 5, "burst": 0}, "rate_limit.burst: must be a whole number from 1"),
    ({"per_second": 5, "burst": 2.5}, "rate_limit.burst: must be a whole number from 1"),
    ({"per_second": 5, "burts": 2}, "rate_limit.burts: unknown key (known: per_second, burst)"),
])
def test_bad_rate_limits_name_the_upstream_and_the_field(raw, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        parse_rate_limit("acme", raw)


def test_configs_with_a_bad_rate_limit_are_refused_when_they_load(tmp_path):
    (tmp_path / "upstreams.yaml").write_text(
        "sim:\n  provider: sandbox\n  base_url: http://127.0.0.1:9\n"
        "  rate_limit: {per_second: 0, burst: many}\n"
        "other:\n  provider: sandbox\n  base_url: http://127.0.0.1:9\n  rate_limit: {per_second: 20, burst: 20}\n")
    problems = check_configs(tmp_path, {})
    assert problems == [
        "upstreams.yaml: sim.rate_limit.per_second: must be a positive number of calls per second (got 0)",
        "upstreams.yaml: sim.rate_limit.burst: must be a whole number from 1 to 10000 (got 'many')",
    ]


# --- one bucket per upstream per process -------------------------------------------------

@pytest.fixture
def forget_buckets():
    names: list[str] = []
    yield names
    for name in names:
        pacing.forget(name)


def test_every_adapter_of_an_upstream_shares_its_bucket(forget_buckets):
    from provisioner.providers.registry import build_provider
    forget_buckets += ["paced-a", "paced-b"]
    config = {"provider": "sandbox", "base_url": "http://127.0.0.1:9", "rate_limit": {"per_second": 20}}
    first, second = build_provider("paced-a", config), build_provider("paced-a", dict(config))
    other = build_provider("paced-b", {**config, "rate_limit": {"per_second": 5, "burst": 1}})
    try:
        assert first.http.rate_limit is second.http.rate_limit is pacing.bucket_for("paced-a")
        assert first.http.rate_limit.limit == RateLimit(20.0, 20)
        assert other.http.rate_limit is not first.http.rate_limit
        # a reloaded config changes the figures of the bucket the clients already hold
        third = build_provider("paced-a", {**config, "rate_limit": {"per_second": 10, "burst": 2}})
        assert third.http.rate_limit is first.http.rate_limit
        assert first.http.rate_limit.limit == RateLimit(10.0, 2)
        # without the setting: no bucket, no pacing
        unpaced = build_provider("paced-a", {"provider": "sandbox", "base_url": "http://127.0.0.1:9"})
        assert unpaced.http.rate_limit is None and pacing.bucket_for("paced-a") is None
    finally:
        for provider in (first, second, other):
            provider.close()
