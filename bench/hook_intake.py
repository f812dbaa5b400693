#!/usr/bin/env python
"""Benchmark: billing-hook intake throughput and latency over real HTTP.

Starts the same real processes as the end-to-end tests (tests/e2e/procs.py):
the sandbox simulator, ``provisioner serve`` (gunicorn) and, with
``--with-worker``, ``provisioner worker``. Then, over ``--concurrency``
keep-alive connections of a lean client (bench/httpload.py: pre-built
requests, so the client takes as little of the shared CPU as it can), it
sends:

1. ``-n`` × ``GET /healthz``: the baseline, the HTTP stack alone;
2. ``-n`` × ``GET /readyz``: the HTTP stack plus one database round trip;
3. ``-n`` signed ``service.create`` hooks (distinct services, pre-signed, no
   ``Prefer: wait``): verify, validate, one write transaction, 202.

The phases take turns in ``--rounds`` rounds (each a share of ``-n``): the
machine's speed drifts, and the baseline must meet the same conditions as the
hooks. One JSON document: per phase the count, status codes, wall time,
requests per second (also per round), latency p50/p95/p99/max in ms and CPU
milliseconds per request of the server, PostgreSQL and the client
(bench/cpu.py), plus the hook figures relative to the ``/healthz`` baseline. Absolute numbers depend on the machine; the ratios are what compare
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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cpu import snapshot  # noqa: E402
from bench.httpload import build_request, run_load  # noqa: E402
from tests.e2e.procs import HTTP_TIMEOUT, PROVISIONER, Stack, wait_until  # noqa: E402
from tests.helpers import event_body  # noqa: E402


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


class Phase:
    """One kind of request, sent in several rounds; the figures of all rounds together."""

    def __init__(self, server_pid: int | None):
        self.server_pid = server_pid
        self.wall = 0.0
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.cpu = {"server": 0.0, "postgres": 0.0, "client": 0.0}
        self.round_rates: list[float] = []

    def run(self, payloads: list[bytes], host: str, port: int, concurrency: int) -> None:
        """Send every pre-built request from ``concurrency`` keep-alive connections."""
        roots = [self.server_pid] if self.server_pid else []
        before = snapshot(roots)
        wall, latencies, statuses = run_load(host, port, payloads, concurrency, timeout=HTTP_TIMEOUT)
        after = snapshot(roots)
        self.wall += wall
        self.latencies += latencies
        for status, count in statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        names = {"postgres": "postgres", "client": "client"}
        if self.server_pid:
            names[f"tree_{self.server_pid}"] = "server"
        for key, label in names.items():
            self.cpu[label] += after[key] - before[key]
        self.round_rates.append(len(latencies) / wall)

    def figures(self) -> dict:
        latencies = sorted(self.latencies)
        count, ms = len(latencies), 1000
        return {
            "count": count, "statuses": dict(sorted(self.statuses.items())),
            "wall_s": round(self.wall, 3), "per_s": round(count / self.wall, 1),
            "per_s_by_round": [round(rate, 1) for rate in self.round_rates],
            "p50_ms": round(percentile(latencies, 50) * ms, 2),
            "p95_ms": round(percentile(latencies, 95) * ms, 2),
            "p99_ms": round(percentile(latencies, 99) * ms, 2),
            "max_ms": round(latencies[-1] * ms, 2) if latencies else None,
            "cpu_ms_per_request": {label: round(seconds * ms / max(count, 1), 3)
                                   for label, seconds in self.cpu.items()},
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=500, help="requests per phase")
    parser.add_argument("-c", "--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of healthz, readyz and hooks in turn (each a share of -n)")
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

        parsed = urlsplit(base)
        host, port = parsed.hostname, parsed.port
        address = f"{host}:{port}"

        def gets(path, count):
            return [build_request("GET", path, address)] * count

        def posts(signed_hooks):
            return [build_request("POST", "/hooks/v1/events", address, headers, raw)
                    for raw, headers in signed_hooks]

        Phase(None).run(gets("/healthz", 200), host, port, c)      # warm-up: connections, imports
        Phase(None).run(posts(warmup), host, port, c)

        server_pid = stack.server.pid
        # The machine's speed drifts (a shared host): the phases take turns in rounds,
        # so the baseline and the hooks meet the same conditions.
        phases = {name: Phase(server_pid) for name in ("healthz", "readyz", "hooks")}
        rounds = max(1, args.rounds)
        for index in range(rounds):
            share = slice(index * n // rounds, (index + 1) * n // rounds)
            phases["healthz"].run(gets("/healthz", share.stop - share.start), host, port, c)
            phases["readyz"].run(gets("/readyz", share.stop - share.start), host, port, c)
            phases["hooks"].run(posts(hooks[share]), host, port, c)
        healthz, readyz, intake = (phases[name].figures() for name in ("healthz", "readyz", "hooks"))
        by_round = [hook / base for hook, base in zip(phases["hooks"].round_rates,
                                                       phases["healthz"].round_rates)]

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
                "throughput_by_round": [round(ratio, 3) for ratio in by_round],
                "throughput_median_of_rounds": round(statistics.median(by_round), 3),
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
