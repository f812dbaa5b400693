"""A Modoboa service's whole life through signed hooks, checked against the simulator's
native state and its login check (what Dovecot would accept)."""
from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from provisioner.client import service as client_area
from provisioner.devsetup import dev_products_env
from provisioner.models import Job, Service
from provisioner.products import load_catalog
from provisioner.reconcile import run_pass
from provisioner.runtime import Runtime
from provisioner.simulators.modoboa import check_password, create_app
from provisioner.simulators.server import SimulatorServer
from tests.helpers import event_body, sim_state, table_dump

SERVICE, DOMAIN, PRODUCT = "6001", "modoboa-customer.example", "60"
OPTIONS = {"Total Mailboxes": 2, "Domain Quota (GB)": 4, "Mailbox Quota (MB)": 512, "Total Aliases": 3,
           "Total Distribution Lists": 1}
PASSWORD = "Billing-Pass-2026"
FINISHED = ("succeeded", "failed", "skipped")


@pytest.fixture
def modoboa_sim():
    server = SimulatorServer(create_app()).start()          # the dev token dev_products_env sets
    yield server
    server.stop()


@pytest.fixture
def runtime(settings, sandbox_sim, modoboa_sim):
    env = dev_products_env({"sandbox": sandbox_sim.url, "modoboa": modoboa_sim.url})
    rt = Runtime(settings, catalog=load_catalog(settings.products_dir, environ=env))
    yield rt
    rt.close()


def body(kind: str, **fields) -> dict:
    return event_body(kind, SERVICE, domain=DOMAIN, product_id=PRODUCT,
                      options=fields.pop("options", OPTIONS), **fields)


def jobs(runtime) -> list[Job]:
    with runtime.db.read() as s:
        return list(s.execute(select(Job).where(Job.service_id == SERVICE).order_by(Job.created_at)).scalars())


def step(client, signer, worker, runtime, payload: dict) -> Service:
    raw = json.dumps(payload)
    r = client.post("/hooks/v1/events", data=raw, headers=signer.headers(raw))
    assert r.status_code in (200, 202), r.get_json()
    deadline = time.monotonic() + 10
    while True:
        worker.drain()
        found = jobs(runtime)
        if all(j.state in FINISHED for j in found):
            break
        assert time.monotonic() < deadline, [(j.reason, j.state, j.error_code) for j in found]
        time.sleep(0.05)
    assert found[-1].state == "succeeded", (payload["type"], found[-1].error_code, found[-1].error_message)
    with runtime.db.read() as s:
        return s.get(Service, SERVICE)


def test_a_modoboa_service_lives_its_life(client, signer, worker, runtime, modoboa_sim, database_url):
    app = modoboa_sim.app
    postmaster = f"postmaster@{DOMAIN}"
    svc = step(client, signer, worker, runtime, body("service.create", password=PASSWORD))
    [domain] = sim_state(modoboa_sim)
    assert svc.upstream_id == domain["id"] and svc.observed_status == "active"
    assert domain["limits"] == {"domain_quota_gb": 4, "mailbox_quota_mb": 512, "mailboxes": 2, "aliases": 3,
                                "distribution_lists": 1}
    assert check_password(app, postmaster, PASSWORD) and not check_password(app, postmaster, "Wrong-Pass-1")

    # the client area adds a mailbox, which logs in with its own password
    box = client_area.create_mailbox(runtime, svc, {"local_part": "ada", "password": "Her-Own-Pass-9"})
    assert check_password(app, f"ada@{DOMAIN}", "Her-Own-Pass-9") and box.address == f"ada@{DOMAIN}"
    client_area.create_list(runtime, svc, {"local_part": "team", "members": ["x@elsewhere.example",
                                                                            "y@elsewhere.example"]})

    new_password = "Changed-Pass-77"
    step(client, signer, worker, runtime, body("service.change_password", password=new_password))
    assert check_password(app, postmaster, new_password) and not check_password(app, postmaster, PASSWORD)

    step(client, signer, worker, runtime, body("service.suspend", suspend_reason="Overdue on Payment"))
    assert sim_state(modoboa_sim)[0]["status"] == "suspended"
    assert not check_password(app, postmaster, new_password)
    assert not check_password(app, f"ada@{DOMAIN}", "Her-Own-Pass-9")
    svc = step(client, signer, worker, runtime, body("service.unsuspend"))
    assert check_password(app, postmaster, new_password) and check_password(app, f"ada@{DOMAIN}", "Her-Own-Pass-9")
    assert svc.observed_status == "active"

    step(client, signer, worker, runtime, body(
        "service.change_package", options={**OPTIONS, "Domain Quota (GB)": 8, "Total Mailboxes": 4}))
    native = sim_state(modoboa_sim)[0]
    assert native["native"]["quota"] == "8192" and native["limits"]["mailboxes"] == 4

    report = run_pass(runtime).report                         # reconcile sees nothing to repair
    assert report["jobs_queued"] == 0
    with runtime.db.read() as s:
        assert s.get(Service, SERVICE).usage["mailboxes"] == 1

    svc = step(client, signer, worker, runtime, body("service.terminate"))
    assert sim_state(modoboa_sim) == [] and svc.observed_status == "deleted"
    assert not check_password(app, postmaster, new_password)
    assert not check_password(app, f"ada@{DOMAIN}", "Her-Own-Pass-9")
    assert [u.username for u in app.extensions["simulator"].users.values()] == ["admin"]
    dump = table_dump(database_url)
    assert PASSWORD not in dump and new_password not in dump
