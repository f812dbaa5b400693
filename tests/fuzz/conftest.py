"""Fixtures of the fuzz tests: an admin key, a few real objects for path parameters to hit,
and the size of a run (a CI-sized one by default; ``PROVISIONER_FUZZ=1`` for the long runs
marked ``fuzz``)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select

from provisioner import apikeys
from provisioner.devsetup import DEV_SIMULATORS, dev_products_env
from provisioner.models import Event, Job, Service
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer
from tests.helpers import event_body

#: the long runs (marked ``fuzz``) run only with PROVISIONER_FUZZ=1
LONG_RUNS = os.environ.get("PROVISIONER_FUZZ") == "1"
long_run = pytest.mark.skipif(not LONG_RUNS, reason="long fuzz run: set PROVISIONER_FUZZ=1")


def row_counts(runtime) -> tuple[int, int, int]:
    """(events, jobs, services) rows."""
    with runtime.db.read() as s:
        return tuple(s.execute(select(func.count()).select_from(m)).scalar() for m in (Event, Job, Service))


@pytest.fixture(scope="module")
def simulators():
    """Every upstream's simulator, so upstream tests, price tables and invoices answer for real."""
    servers = {name: SimulatorServer(create_simulator_app(name)).start() for name in DEV_SIMULATORS}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def sandbox_sim(simulators):
    return simulators["sandbox"]


@pytest.fixture
def products_env(simulators) -> dict[str, str]:
    return dev_products_env({name: server.url for name, server in simulators.items()})


@dataclass
class Seeded:
    """What the fuzzed app holds before the first generated request."""
    admin_key: str
    service_ids: list[str] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)


@pytest.fixture
def seeded(client, signer, runtime) -> Seeded:
    with runtime.db.transaction() as session:
        key = apikeys.create_api_key(session, "fuzz-admin", "admin")[1]
    seeded = Seeded(admin_key=key)
    for number, service_id in enumerate(("1042", "1043", "1044")):
        r = signer.post(client, event_body("service.create", service_id, domain=f"fuzz{number}.example.com"))
        assert r.status_code in (200, 202), r.get_data(as_text=True)
        answer = r.get_json()
        seeded.service_ids.append(service_id)
        seeded.event_ids.append(answer["event_id"])
        seeded.job_ids.append(answer["job"]["id"])
    return seeded
