#!/usr/bin/env python
"""Benchmark: billing-hook intake throughput and latency over real HTTP.

Starts the same real processes as the end-to-end tests (tests/e2e/procs.py):
the sandbox simulator, ``provisioner serve`` (gunicorn) and, with
``--with-worker``, ``provisioner worker``. Then, from ``--concurrency`` client
threads with keep-alive sessions, it sends:

1. ``-n`` × ``GET /healthz``: the baseline, the HTTP stack alone;
2. ``-n`` × ``GET /readyz``: the HTTP stack plus one database round trip;
3. ``-n`` signed ``service.create`` hooks (distinct services, pre-signed, no
   ``Prefer: wait``): verify, validate, one write transaction, 202.

and prints one JSON document: per phase the count, status codes, wall time,
requests per second and latency p50/p95/p99/max in ms, plus the hook figures
relative to the ``/healthz`` baseline measured in the same run under the same
load. Absolute numbers depend on the machine; the ratios are what compare
across machines.

    .venv/bin/python bench/hook_intake.py -n 1000 -c 8
    .venv/bin/python bench/hook_intake.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

The database (a fresh SQLite file by default) is migrated first; give a
PostgreSQL URL only for a database the benchmark may fill with rows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from tests.e2e.procs import HTTP_TIMEOUT, PROVISIONER, Stack, wait_until  # noqa: E402
from tests.helpers import event_body  # noqa: E402


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def run_phase(requests_: list, send, concurrency: int) -> dict:
    """Run ``send(session, item)`` for every item from ``concurrency`` threads; latency stats."""
    local = threading.local()
    sessions: list[requests.Session] = []
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    def one(item) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            with lock:
                sessions.append(local.session)
        started = time.perf_counter()
        try:
            status = str(send(local.session, item).status_code)
        except requests.RequestException as exc:
            status = type(exc).__name__
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            statuses[status] = statuses.get(status, 0) + 1

    wall_started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, requests_))
    wall = time.perf_counter() - wall_started
    for session in sessions:
        session.close()
    latencies.sort()
    ms = 1000
    return {
        "count": len(latencies), "statuses": dict(sorted(statuses.items())),
        "wall_s": round(wall, 3), "per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * ms, 2),
        "p95_ms": round(percentile(latencies, 95) * ms, 2),
        "p99_ms": round(percentile(latencies, 99) * ms, 2),
        "max_ms": round(latencies[-1] * ms, 2) if latencies else None,
        "mean_ms": round(sum(latencies) / len(latencies) * ms, 2) if latencies else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=500, help="requests per phase")
    parser.add_argument("-c", "--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--with-worker", action="store_true",
                        help="also run `provisioner worker` (intake under job load) and time the drain")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, database)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="hook-intake-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    stack = Stack(workdir / "stack", database_url, server_workers=args.server_workers)
    migrate = subprocess.run([str(PROVISIONER), "db", "upgrade"], env=stack.env, cwd=str(ROOT),
                             capture_output=True, text=True, timeout=120)
    if migrate.returncode != 0:
        print(migrate.stdout + migrate.stderr, file=sys.stderr)
        return 1
    try:
        stack.start(worker_concurrency=2 if args.with_worker else None)
        n, c = args.requests, args.concurrency
        base = stack.base_url

        # Pre-built and pre-signed, so the timed phase measures the server, not the client.
        run_id = str(int(time.time()))
        hooks = [stack.signed(event_body("service.create", f"b{run_id}-{i}",
                                         domain=f"bench-{run_id}-{i}.example.com"))
                 for i in range(n + 20)]
        warmup, hooks = hooks[:20], hooks[20:]

        def get(path):
            return lambda session, _: session.get(f"{base}{path}", timeout=HTTP_TIMEOUT)

        def post_hook(session, signed):
            raw, headers = signed
            return session.post(f"{base}/hooks/v1/events", data=raw, headers=headers, timeout=HTTP_TIMEOUT)

        run_phase(range(50), get("/healthz"), c)          # warm-up: connections, imports
        run_phase(warmup, post_hook, c)

        healthz = run_phase(range(n), get("/healthz"), c)
        readyz = run_phase(range(n), get("/readyz"), c)
        intake = run_phase(hooks, post_hook, c)

        result = {
            "benchmark": "hook_intake",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "database": stack.db.dialect,
            "server_workers": args.server_workers, "worker_running": args.with_worker,
            "requests_per_phase": n, "concurrency": c,
            "baseline_healthz": healthz,
            "baseline_readyz": readyz,
            "hook_intake": intake,
            "relative_to_healthz": {
                "p50": round(intake["p50_ms"] / healthz["p50_ms"], 2),
                "p95": round(intake["p95_ms"] / healthz["p95_ms"], 2),
                "throughput": round(intake["per_s"] / healthz["per_s"], 3),
            },
        }
        if args.with_worker:
            started = time.monotonic()
            total = n + len(warmup)
            wait_until(lambda: stack.job_counts().get("succeeded", 0) >= total, timeout=600,
                       interval=0.5, what="the queue to drain", alive=stack.check_alive)
            result["worker_drain_s_after_intake"] = round(time.monotonic() - started, 2)
        print(json.dumps(result, indent=2))
        return 0
    except BaseException:
        print(stack.log_tails(), file=sys.stderr)
        raise
    finally:
        stack.close()
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            import shutil
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
