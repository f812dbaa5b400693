"""Scheduler ticks across a fleet: two ``provisioner worker`` processes on one database.

Every worker schedules the reconcile tick in memory; each (task, slot) row of
``tick_claims`` is won by one of them, and only the winner runs the pass. The
reconcile interval is 2 s, so a run of ~15 s sees several slots: first with one
worker, then with two competing, then with the second alone after the first
stops, which shows that either can win. A claim left unfinished by a worker that
died (inserted by hand here) holds its own slot only.
"""
from __future__ import annotations

import datetime as dt
import re
import socket
from pathlib import Path

import pytest
from sqlalchemy import func, select

from provisioner.db import utcnow
from provisioner.models import ReconcileRun, TickClaim
from provisioner.scheduler import claim_tick, run_gated, tick_slot
from tests.e2e.procs import ROOT, wait_until
from tests.helpers import event_body

pytestmark = pytest.mark.e2e

INTERVAL = 2.0
SERVICE = "8001"
DEAD_WORKER = "dead-host:1"
OUTCOME = re.compile(r"run ([0-9a-f]{32}): (finished|failed)")


def sandbox_only_products(target: Path) -> Path:
    """product_configs/ with the sandbox upstream and its product only: every pass lists every
    configured upstream, and only the sandbox's simulator runs in a stack."""
    target.mkdir(parents=True)
    (target / "upstreams.yaml").write_text("sandbox:\n  provider: sandbox\n  base_url: ${SANDBOX_URL}\n")
    (target / "sandbox-mail.yaml").write_text((ROOT / "product_configs" / "sandbox-mail.yaml").read_text())
    return target


def claims(stack) -> list[TickClaim]:
    with stack.db.read() as session:
        return list(session.execute(select(TickClaim).where(TickClaim.task == "reconcile")
                                    .order_by(TickClaim.slot)).scalars())


def name_of(proc) -> str:
    return f"{socket.gethostname()}:{proc.pid}"


def test_two_workers_run_each_reconcile_slot_once(make_stack, tmp_path):
    stack = make_stack(worker_concurrency=1, products_dir=sandbox_only_products(tmp_path / "products"),
                       extra_env={"PROVISIONER_RECONCILE_INTERVAL": str(INTERVAL)})
    first = stack.workers[0]
    response = stack.post(event_body("service.create", SERVICE, domain="fleet-e2e.example.com"), wait=10)
    assert response.status_code == 200 and response.json()["job"]["state"] == "succeeded", response.text

    # One worker alone wins its slots.
    wait_until(lambda: any(c.worker == name_of(first) and c.finished_at for c in claims(stack)),
               timeout=15, what="a reconcile slot run by the first worker", alive=stack.check_alive)

    # A worker that "died" holding a slot a little ahead: it must cost that slot only.
    dead_slot = tick_slot(utcnow(), INTERVAL) + 2
    with stack.db.transaction() as session:
        session.add(TickClaim(task="reconcile", slot=dead_slot, worker=DEAD_WORKER, claimed_at=utcnow()))

    second = stack.start_worker(concurrency=1)
    # Drift behind the provisioner's back, for the fleet's scheduled passes to repair.
    [account] = stack.accounts_for(SERVICE)
    stack.http.post(f"{stack.sim_url}/_sim/mutate", json={"account_id": account["id"], "status": "suspended"},
                    timeout=10).raise_for_status()
    wait_until(lambda: stack.accounts_for(SERVICE)[0]["status"] == "active", timeout=15,
               what="the drift to be repaired by a scheduled pass", alive=stack.check_alive)
    wait_until(lambda: any(c.slot > dead_slot + 1 and c.finished_at for c in claims(stack)),
               timeout=15, what="slots after the dead worker's to be run", alive=stack.check_alive)

    # The first worker stops: the second wins what follows.
    first.stop()
    stopped = utcnow()
    wait_until(lambda: any(c.worker == name_of(second) and c.claimed_at > stopped and c.finished_at
                           for c in claims(stack)),
               timeout=15, what="a slot run by the second worker alone", alive=second.check_alive)
    second.stop()

    rows = claims(stack)
    slots = [c.slot for c in rows]
    assert len(slots) == len(set(slots))                          # each slot claimed once
    dead = [c for c in rows if c.slot == dead_slot]
    assert [(c.worker, c.finished_at, c.outcome) for c in dead] == [(DEAD_WORKER, None, None)]
    real = [c for c in rows if c.worker != DEAD_WORKER]
    assert {c.worker for c in real} == {name_of(first), name_of(second)}, rows
    assert all(c.finished_at is not None for c in real), rows
    outcomes = [OUTCOME.fullmatch(c.outcome or "") for c in real]
    assert all(outcomes), [c.outcome for c in real]
    assert all(m.group(2) == "finished" for m in outcomes), [c.outcome for c in real]

    # One scheduled run per claimed slot: the runs the claims name, and no other.
    with stack.db.read() as session:
        runs = session.execute(select(ReconcileRun).where(ReconcileRun.trigger == "schedule")).scalars().all()
    run_ids = [m.group(1) for m in outcomes]
    assert len(run_ids) == len(set(run_ids))
    assert sorted(run_ids) == sorted(r.id for r in runs)
    assert len(runs) >= 4 and {r.state for r in runs} == {"finished"}
    reports = [r.report for r in runs]
    assert any(SERVICE in report.get("services", {}).get("drift_status", []) for report in reports)
    assert all(report.get("errors") == [] for report in reports), reports
    for worker in (first, second):
        assert "Traceback" not in worker.log_text(), worker.tail()


def test_a_claim_whose_worker_died_does_not_block_the_next_slot(runtime):
    """With an injected clock: slot k is held by a dead claim; k + 1 runs as usual."""
    start = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.timezone.utc)
    interval = 60.0
    held = claim_tick(runtime.db, "reconcile", interval, "crashed-worker", now=start)
    assert held is not None                                       # never finished: the worker died
    ran: list[str] = []
    assert not run_gated(runtime, "reconcile", interval, lambda: ran.append("k") or "ok",
                         worker="w1", now=start + dt.timedelta(seconds=30))
    assert run_gated(runtime, "reconcile", interval, lambda: ran.append("k+1") or "ok",
                     worker="w1", now=start + dt.timedelta(seconds=61))
    assert not run_gated(runtime, "reconcile", interval, lambda: ran.append("again") or "ok",
                         worker="w2", now=start + dt.timedelta(seconds=62))
    assert ran == ["k+1"]
    with runtime.db.read() as session:
        rows = session.execute(select(TickClaim).order_by(TickClaim.slot)).scalars().all()
    assert [(r.worker, r.finished_at is not None, r.outcome) for r in rows] == [
        ("crashed-worker", False, None), ("w1", True, "ok")]


def test_a_tick_that_raises_is_recorded_and_the_next_slot_runs(runtime):
    start = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.timezone.utc)

    def boom() -> str:
        raise RuntimeError("upstream exploded")

    assert run_gated(runtime, "reconcile", 60.0, boom, worker="w1", now=start)
    assert run_gated(runtime, "reconcile", 60.0, lambda: None, worker="w2", now=start + dt.timedelta(minutes=1))
    with runtime.db.read() as session:
        outcomes = session.execute(select(TickClaim.outcome).order_by(TickClaim.slot)).scalars().all()
        assert session.execute(select(func.count()).select_from(ReconcileRun)).scalar() == 0
    assert outcomes == ["error: RuntimeError", "ok"]
