#!/usr/bin/env python
"""Benchmark: one reconcile pass over many services, nothing drifted.

For each size N (``--sizes``), on a fresh database:

1. the sandbox simulator (a real ``provisioner simulate sandbox`` process) is given N
   active accounts at once (``POST /_sim/seed``), and N matching services are
   bulk-loaded into the database (same limits and usage as their accounts: nothing
   to find);
2. the baseline: the same listing read page by page with plain ``requests`` and
   ``json`` in this process (the least any pass must do: every page once);
3. ``provisioner reconcile`` (a real pass, as shipped, in its own process) is run and
   timed; its peak memory comes from the kernel (``wait4``'s ``ru_maxrss``).

Then it checks that the pass found nothing, made at most ceil(N / page size) calls
(the goal: at most 1.05 x N / page size) and wrote nothing (no service row, job or
notification changed). One JSON document: per size the pass's seconds, calls, peak
memory and the baseline's seconds, with their ratio, and the growth from one size to
the next (linear: seconds per 1,000 services stays flat). A size 0 run first gives the
command's own fixed time and memory.

    .venv/bin/python bench/reconcile_scale.py                       # CI size: 0, 10k, 50k
    .venv/bin/python bench/reconcile_scale.py --sizes 0,10000,100000,1000000

The databases are fresh SQLite files; ``--database-url`` (PostgreSQL) is emptied of
services, jobs, notifications and runs before each size: give one the benchmark may fill.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import yaml  # noqa: E402
from sqlalchemy import delete, func, insert, select  # noqa: E402

from provisioner.db import Database  # noqa: E402
from provisioner.migrate import upgrade  # noqa: E402
from provisioner.models import Job, Notification, ReconcileRun, Service  # noqa: E402
from provisioner.providers.base import Usage  # noqa: E402
from tests.e2e.procs import PROVISIONER, free_port, process_env, wait_until  # noqa: E402

LIMITS = {"mailboxes": 5, "enhanced_mailboxes": 0, "mailbox_quota_gb": 10, "aliases": 10, "distribution_lists": 1}
LOAD_CHUNK = 5000


def products_dir(target: Path) -> Path:
    """The sandbox product and upstream alone: the pass lists only the simulator here."""
    target.mkdir(parents=True)
    shutil.copy(ROOT / "product_configs" / "sandbox-mail.yaml", target)
    upstreams = yaml.safe_load((ROOT / "product_configs" / "upstreams.yaml").read_text())
    (target / "upstreams.yaml").write_text(yaml.safe_dump({"sandbox": upstreams["sandbox"]}))
    return target


def start_simulator(workdir: Path, env: dict[str, str], port: int) -> subprocess.Popen:
    log = open(workdir / "simulator.log", "w")
    proc = subprocess.Popen([str(PROVISIONER), "simulate", "sandbox", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{url}/_sim/state", timeout=2).status_code == 200, timeout=30,
               what="the sandbox simulator")
    return proc


def load(db: Database, sim_url: str, count: int) -> float:
    """N accounts in the simulator, N services holding them; returns the seconds it took."""
    started = time.perf_counter()
    if count:
        requests.post(f"{sim_url}/_sim/seed", json={"count": count, "id": "acc_b{n}", "external_id": "{n}",
                                                   "domain": "svc-{n}.example.com", "limits": LIMITS},
                      timeout=600).raise_for_status()
    load_services(db, count)
    return time.perf_counter() - started


def load_services(db: Database, count: int) -> None:
    """N active sandbox services, ``acc_b<n>`` upstream, bulk-inserted."""
    usage = Usage().as_dict()
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    due = dt.date.today() + dt.timedelta(days=180)
    with db.transaction() as session:
        for first in range(1, count + 1, LOAD_CHUNK):
            session.execute(insert(Service), [{
                "id": str(n), "billing_id": str(n), "billing_product_id": "12", "product_key": "sandbox-mail",
                "upstream": "sandbox", "domain": f"svc-{n}.example.com", "client_id": str(n % 5000),
                "client": {}, "billing_cycle": "monthly", "next_due_date": due, "config_options": {},
                "custom_fields": {}, "desired_status": "active", "limits": LIMITS, "upstream_id": f"acc_b{n}",
                "observed_status": "active", "observed": {}, "usage": usage, "usage_at": long_ago,
                "converged_at": long_ago, "created_at": long_ago, "updated_at": long_ago,
            } for n in range(first, min(first + LOAD_CHUNK, count + 1))])


def read_listing(sim_url: str, page_size: int) -> tuple[float, int, int]:
    """The baseline: every page once, parsed; (seconds, calls, accounts)."""
    started, calls, seen, page = time.perf_counter(), 0, 0, 1
    with requests.Session() as http:
        while True:
            body = http.get(f"{sim_url}/api/v1/accounts", params={"page": page, "per_page": page_size},
                            timeout=30).json()
            calls += 1
            seen += len(body["data"])
            if not body["data"] or page * page_size >= body["total"]:
                return time.perf_counter() - started, calls, seen
            page += 1


def run_pass(env: dict[str, str], workdir: Path) -> tuple[float, float, dict]:
    """``provisioner reconcile``: (seconds, peak MB, its report)."""
    started = time.perf_counter()
    with open(workdir / "reconcile.log", "w+b") as log:
        proc = subprocess.Popen([str(PROVISIONER), "reconcile"], env=env, stdout=subprocess.PIPE, stderr=log)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)     # reaped here, with the child's own peak memory
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        if proc.returncode:
            log.seek(0)
            raise SystemExit(f"provisioner reconcile exited {proc.returncode}:\n{log.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, json.loads(out)


def writes_since(db: Database, since: dt.datetime) -> dict[str, int]:
    with db.read() as session:
        return {"services": session.execute(select(func.count()).select_from(Service)
                                            .where(Service.updated_at > since)).scalar(),
                "jobs": session.execute(select(func.count()).select_from(Job)).scalar(),
                "notifications": session.execute(select(func.count()).select_from(Notification)).scalar()}


def measure(size: int, workdir: Path, database_url: str | None, page_size: int) -> dict:
    workdir.mkdir(parents=True)
    url = database_url or f"sqlite:///{workdir / 'bench.sqlite'}"
    upgrade(url)
    db = Database(url)
    if database_url:
        with db.transaction() as session:
            for model in (Job, Notification, ReconcileRun, Service):
                session.execute(delete(model))
    port = free_port()
    sim_url = f"http://127.0.0.1:{port}"
    env = process_env(url, workdir / "instance", webhook_secret="whsec_" + "A" * 43, sandbox_url=sim_url,
                      products_dir=products_dir(workdir / "products"),
                      extra={"PROVISIONER_RECONCILE_PAGE_SIZE": str(page_size), "PROVISIONER_LOG_LEVEL": "WARNING"})
    (workdir / "run").mkdir(exist_ok=True)
    sim = start_simulator(workdir, env, port)
    try:
        load_s = load(db, sim_url, size)
        baseline_s, baseline_calls, listed = read_listing(sim_url, page_size)
        assert listed == size, (listed, size)
        before = dt.datetime.now(dt.timezone.utc)
        seconds, peak_mb, report = run_pass(env, workdir)
        writes = writes_since(db, before)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        db.dispose()
    calls = report["calls"].get("sandbox", 0)
    goal_calls = 1.05 * size / page_size
    result = {
        "services": size, "page_size": page_size, "load_s": round(load_s, 2),
        "pass_s": round(seconds, 2), "pass_report_s": report["duration_s"],
        "baseline_listing_s": round(baseline_s, 2),
        "ratio_pass_to_listing": round(report["duration_s"] / baseline_s, 2) if baseline_s else None,
        "calls": calls, "calls_min": max(1, math.ceil(size / page_size)), "calls_goal_max": round(goal_calls, 1),
        "peak_mb": round(peak_mb, 1), "found": report["counts"], "usage_updated": report["usage_updated"],
        "writes": writes, "errors": report["errors"],
    }
    problems = []
    if report["counts"] or report["errors"]:
        problems.append("the pass found something in a fleet where nothing drifted")
    if size and calls > max(goal_calls, 1):
        problems.append(f"{calls} calls for {size} services at {page_size} a page")
    if any(writes.values()) or report["usage_updated"]:
        problems.append(f"a pass that found nothing wrote {writes}")
    result["problems"] = problems
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0,10000,50000", help="comma-separated service counts")
    parser.add_argument("--page-size", type=int, default=500, help="accounts per listing call (sandbox: 500 at most)")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    try:
        results = [measure(size, workdir / str(size), args.database_url, args.page_size) for size in sizes]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    fixed = next((r for r in results if r["services"] == 0), None)
    for previous, current in zip(results, results[1:]):
        if previous["services"] and current["services"]:
            current["growth"] = {
                "services_x": round(current["services"] / previous["services"], 2),
                "seconds_x": round(current["pass_s"] / previous["pass_s"], 2),
                "ms_per_1000_services": round(1000 * 1000 * current["pass_s"] / current["services"], 1),
            }
    print(json.dumps({
        "benchmark": "reconcile_scale", "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                    "platform": platform.platform()},
        "database": "postgresql" if args.database_url else "sqlite",
        "fixed": {"pass_s": fixed["pass_s"], "peak_mb": fixed["peak_mb"]} if fixed else None,
        "sizes": results,
    }, indent=2))
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
