"""What `make run` logs at INFO: one line per hook, per finished job and per scheduler pass
that did something, nothing for passes that did nothing."""
from __future__ import annotations

import json
import logging

import pytest
import requests

from provisioner import scheduler
from provisioner.models import Service
from tests.helpers import event_body


@pytest.fixture(autouse=True)
def sandbox_only(runtime):
    """Passes list every configured upstream; only the sandbox's simulator runs here."""
    runtime.catalog.upstreams = {"sandbox": runtime.catalog.upstreams["sandbox"]}


def info_lines(caplog, prefix: str = "provisioner") -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith(prefix) and r.levelno >= logging.INFO]


def create_body(service_id: str = "1042") -> dict:
    body = event_body("service.create", service_id=service_id, domain=f"s{service_id}.example")
    body["service"]["next_due_date"] = "2099-01-01"
    return body


def create(client, signer, worker, service_id: str = "1042", body: dict | None = None) -> dict:
    answer = signer.post(client, body or create_body(service_id), msg_id=f"msg_create_{service_id}")
    assert answer.status_code == 202
    worker.drain()
    return answer.get_json()


def test_one_line_per_hook_and_per_finished_job(client, signer, worker, runtime, sandbox_sim, caplog):
    caplog.set_level(logging.INFO)
    answer = create(client, signer, worker)
    job_id = answer["job"]["id"]

    [hook] = info_lines(caplog, "provisioner.hooks")
    assert hook.startswith("hook msg_create_1042 from default: service.create for service 1042, ")
    assert f"job {job_id} queued" in hook and answer["event_id"] in hook
    [job] = info_lines(caplog, "provisioner.jobs")
    assert job.startswith(f"job {job_id} service 1042: succeeded in ") and job.endswith("(attempt 1)")
    assert "ms" in job or "s (" in job


def test_a_refused_hook_is_one_line_naming_why(client, signer, caplog):
    caplog.set_level(logging.INFO)
    raw = json.dumps(event_body("service.create"))
    headers = signer.headers(raw, msg_id="msg_forged")
    headers["webhook-signature"] = "v1,AAAA"
    assert client.post("/hooks/v1/events", data=raw, headers=headers).status_code == 401
    assert info_lines(caplog, "provisioner.hooks") == ["hook 'msg_forged' refused: 401 invalid_signature (unknown)"]


def test_a_redelivery_says_so_in_its_one_line(client, signer, worker, runtime, sandbox_sim, caplog):
    body = create_body()
    create(client, signer, worker, body=body)
    caplog.set_level(logging.INFO)
    caplog.clear()
    assert signer.post(client, body, msg_id="msg_create_1042").status_code == 200
    [hook] = info_lines(caplog, "provisioner.hooks")
    assert "service 1042, redelivered, job" in hook


def test_a_scheduled_pass_that_does_nothing_logs_nothing(client, signer, worker, runtime, sandbox_sim, caplog):
    create(client, signer, worker)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="provisioner.upstream")
    caplog.clear()
    scheduler.reconcile_tick(runtime)
    scheduler.notify_tick(runtime)
    scheduler.sweep_tick(runtime)
    scheduler.purge_tick(runtime)
    assert info_lines(caplog) == []
    # It did run: the listing was read, its answer logged at DEBUG.
    assert any(r.getMessage().startswith("upstream response sandbox list_accounts")
               for r in caplog.records if r.levelno == logging.DEBUG)


def test_a_scheduled_pass_that_repairs_drift_logs_one_line_with_counts(client, signer, worker, runtime,
                                                                      sandbox_sim, caplog):
    create(client, signer, worker)
    with runtime.db.read() as s:
        account = s.get(Service, "1042").upstream_id
    requests.post(sandbox_sim.url + "/_sim/mutate", json={"account_id": account, "status": "suspended"},
                  timeout=5).raise_for_status()
    caplog.set_level(logging.INFO)
    caplog.clear()
    scheduler.reconcile_tick(runtime)
    [line] = info_lines(caplog)
    assert line.startswith("reconcile run ") and "(schedule, finished): 1 drift_status; 1 converge job(s) queued" in line


def test_a_pass_started_by_hand_always_reports(runtime, sandbox_sim, caplog):
    from provisioner.reconcile import run_pass
    caplog.set_level(logging.INFO)
    run_pass(runtime, trigger="cli")
    [line] = info_lines(caplog, "provisioner.reconcile")
    assert line.endswith("(cli, finished): nothing to do")
