"""The provider contract suite: every adapter against its own simulator.

Adding a provider is one module in ``tests/contract/targets/`` defining
``TARGET``: which simulator to start, with what options, and how to configure
the adapter against it. Every test that
takes the ``upstream`` fixture then runs once per provider kind; a scenario a
provider lacks the ``Capability`` for is skipped by ``upstream.require``.

Assumption shared by all simulators: the ``id`` of a ``/_sim/state`` entry is
the ``UpstreamAccount.id`` the adapter returns for that object.
"""
from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from provisioner.providers.base import AccountSpec, Capability, ClientInfo, Provider
from provisioner.providers.http import HttpClient
from provisioner.providers.registry import build_provider
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer
from tests.contract.targets import TARGETS, Target

class SimControl:
    """The simulator's ``/_sim/`` control API (contract section 5)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/") + "/_sim"
        self.http = requests.Session()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        resp = self.http.request(method, f"{self.url}/{path}", json=body, timeout=5)
        resp.raise_for_status()
        return resp.json()

    def state(self) -> dict[str, Any]:
        return self._call("GET", "state")

    def accounts(self, *, live: bool = False) -> list[dict[str, Any]]:
        accounts = self.state()["accounts"]
        return [a for a in accounts if a["status"] != "deleted"] if live else accounts

    def account(self, account_id: str) -> dict[str, Any]:
        matches = [a for a in self.accounts() if a["id"] == account_id]
        assert len(matches) == 1, f"no single state entry {account_id}"
        return matches[0]

    def reset(self) -> None:
        self._call("POST", "reset")

    def faults(self, **faults: float) -> dict[str, Any]:
        return self._call("POST", "faults", faults)["faults"]

    def clear_faults(self) -> None:
        self._call("POST", "faults", {"reset": True})

    def mutate(self, account_id: str, **changes: Any) -> dict[str, Any]:
        return self._call("POST", "mutate", {"account_id": account_id, **changes})

    def calls(self) -> dict[str, int]:
        return self._call("GET", "calls")["calls"]

    def total_calls(self) -> int:
        return self._call("GET", "calls")["total"]

    def close(self) -> None:
        self.http.close()


@dataclass
class Upstream:
    """What a contract test gets: the adapter, its simulator, and helpers."""
    target: Target
    url: str
    provider: Provider
    sim: SimControl
    _serial: Iterator[int] = field(default_factory=lambda: itertools.count(1001))

    @property
    def kind(self) -> str:
        return self.target.kind

    def require(self, capability: Capability) -> None:
        if not self.provider.supports(capability):
            pytest.skip(f"{self.kind} has no {capability.value} capability")

    def build(self, config: dict[str, Any]) -> Provider:
        return build_provider(f"contract-{self.kind}", config)

    def with_timeout(self, seconds: float) -> Provider:
        return self.build(self.target.config(self.url, seconds))

    def with_bad_credentials(self) -> Provider:
        return self.build(self.target.bad_credentials(self.url))

    def spec(self, service_id: str | None = None, **limits: Any) -> AccountSpec:
        n = next(self._serial)
        service_id = service_id or str(n)
        return AccountSpec(
            service_id=service_id,
            domain=f"svc{service_id}.example.com",
            client=ClientInfo(id="77", email="owner@example.net", first_name="Ada",
                              last_name="Lovelace", company="Example Ltd", country="DE"),
            limits={**self.target.limits, **limits},
            paid_until=dt.date(2026, 12, 21),
        )


@pytest.fixture(scope="session", params=sorted(TARGETS))
def _simulator(request) -> Iterator[tuple[Target, str]]:
    """The target and its upstream's URL: a simulator started for the session, or the
    real upstream a real target names (started by whoever runs the suite)."""
    target = TARGETS[request.param]
    if target.real:
        yield target, target.real_url
        return
    server = SimulatorServer(create_simulator_app(target.simulator, **target.sim_options)).start()
    yield target, server.url
    server.stop()


@pytest.fixture
def upstream(_simulator, monkeypatch) -> Iterator[Upstream]:
    target, url = _simulator
    if target.real:
        # on a real upstream retries wait as in production, but never long
        monkeypatch.setattr(HttpClient, "_sleep", lambda self, seconds: time.sleep(min(seconds, 0.5)))
    else:
        # backoff waits would only slow the suite; what is retried is still real
        monkeypatch.setattr(HttpClient, "_sleep", lambda self, seconds: None)
    sim = target.control(url) if target.real and target.control else SimControl(url)
    sim.reset()
    provider = build_provider(f"contract-{target.kind}", target.config(url, None))
    if hasattr(sim, "watch"):
        sim.watch(provider)
    yield Upstream(target=target, url=url, provider=provider, sim=sim)
    provider.close()
    sim.reset()
    sim.close()
