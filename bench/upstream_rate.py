#!/usr/bin/env python
"""Benchmark: how much of an upstream's allowed call rate the job workers use.

Starts the real processes of the end-to-end tests (tests/e2e/procs.py): the sandbox
simulator, ``provisioner serve`` and one ``provisioner worker --concurrency C``. The
simulator answers every API call after ``--latency-ms`` (50) and allows ``--rate`` (R,
20) calls a second, a token bucket answering the rest ``429`` with an integer
``Retry-After``. ``--jobs`` signed ``service.create`` hooks go in through ``serve``
before the worker starts; then, every quarter second, the simulator's counters (calls
received, 429s injected) and the finished jobs are sampled until the queue is empty.

The figure: upstream calls the simulator accepted (received minus 429s) per second over
the steady part of the run (from 2 s after the first call, skipping the simulator's
initial burst, until 90 % of the jobs are done, before the queue runs dry), against the
baseline R itself: the ratio achieved/allowed, goal >= 0.90. Two runs, each on a fresh
stack and database:

- ``paced``: the sandbox upstream's ``rate_limit: {per_second: R, burst: --burst}``
  (client-side pacing, provisioner/providers/pacing.py);
- ``unpaced``: no ``rate_limit`` (the second baseline: every runner bursts, gets 429s
  and backs off for whole seconds).

One JSON document; ``--strict`` exits 1 when the paced ratio misses the goal.

    .venv/bin/python bench/upstream_rate.py                          # CI size
    .venv/bin/python bench/upstream_rate.py --jobs 400 --rate 40 --concurrency 16
"""
from __future__ import annotations

import argparse
import json
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

from tests.e2e.procs import HTTP_TIMEOUT, PROVISIONER, Stack, products_dir_with_settings  # noqa: E402
from tests.helpers import event_body  # noqa: E402

GOAL_RATIO = 0.90
SAMPLE_EVERY = 0.25          # seconds
WARMUP = 2.0                 # seconds after the first call left out of the steady window
STEADY_UNTIL = 0.90          # share of the jobs finished that ends the steady window


def sample(stack: Stack, started: float) -> dict:
    calls = sum(stack.sim_calls().values())
    injected = stack.http.get(f"{stack.sim_url}/_sim/faults", timeout=HTTP_TIMEOUT).json()["injected"]
    counts = stack.job_counts()
    return {"t": time.monotonic() - started, "calls": calls, "rate_limited": injected["rate_limited"],
            "finished": sum(counts.get(state, 0) for state in ("succeeded", "failed", "skipped"))}


def steady_rate(samples: list[dict], jobs: int) -> dict:
    """Accepted calls and jobs per second between the steady window's first and last samples."""
    first_call = next((s["t"] for s in samples if s["calls"] > 0), None)
    if first_call is None:
        return {}
    window = [s for s in samples if s["t"] >= first_call + WARMUP and s["finished"] < STEADY_UNTIL * jobs]
    if len(window) < 2:
        window = [s for s in samples if s["t"] >= first_call]    # a run too short for a warm-up
    a, b = window[0], window[-1]
    seconds = b["t"] - a["t"]
    if seconds <= 0:
        return {}
    accepted = (b["calls"] - b["rate_limited"]) - (a["calls"] - a["rate_limited"])
    return {"window_s": round(seconds, 2),
            "accepted_calls_per_s": round(accepted / seconds, 2),
            "rate_limited_per_s": round((b["rate_limited"] - a["rate_limited"]) / seconds, 2),
            "jobs_per_s": round((b["finished"] - a["finished"]) / seconds, 2)}


def run(mode: str, args: argparse.Namespace, workdir: Path) -> dict:
    settings = {"timeout": 10}
    if mode == "paced":
        settings["rate_limit"] = {"per_second": args.rate, "burst": args.burst}
    products = products_dir_with_settings(workdir / "product_configs", {"sandbox": settings})
    database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    stack = Stack(workdir / "stack", database_url, products_dir=products,
                  extra_env={"PROVISIONER_JOB_MAX_ATTEMPTS": str(args.max_attempts),
                             "PROVISIONER_JOB_BACKOFF_BASE": str(args.backoff_base),
                             "PROVISIONER_JOB_BACKOFF_CAP": str(args.backoff_cap)})
    migrate = subprocess.run([str(PROVISIONER), "db", "upgrade"], env=stack.env, cwd=str(ROOT),
                             capture_output=True, text=True, timeout=120)
    if migrate.returncode != 0:
        raise RuntimeError(migrate.stdout + migrate.stderr)
    try:
        stack.start(worker_concurrency=None)
        stack.sim_faults(latency_ms=args.latency_ms, rate_limit_per_s=args.rate)
        run_id = f"{mode}{int(time.time())}"
        with requests.Session() as session:
            for i in range(args.jobs):
                resp = stack.post(event_body("service.create", f"{run_id}-{i}",
                                             domain=f"rate-{run_id}-{i}.example.com"), session=session)
                assert resp.status_code == 202, f"hook answered {resp.status_code}: {resp.text[:200]}"
        started = time.monotonic()
        stack.start_worker(args.concurrency)
        samples = [sample(stack, started)]
        deadline = started + args.timeout
        while samples[-1]["finished"] < args.jobs and time.monotonic() < deadline:
            stack.check_alive()
            time.sleep(SAMPLE_EVERY)
            samples.append(sample(stack, started))
        last = samples[-1]
        counts = stack.job_counts()
        accepted = last["calls"] - last["rate_limited"]
        steady = steady_rate(samples, args.jobs)
        result = {
            "rate_limit": settings.get("rate_limit"),
            **steady,
            "ratio_to_allowed": round(steady["accepted_calls_per_s"] / args.rate, 3) if steady else None,
            "calls_received": last["calls"], "calls_accepted": accepted,
            "rate_limited_429": last["rate_limited"],
            "calls_per_job": round(accepted / max(1, last["finished"]), 2),
            "jobs": counts, "attempts": stack.count("job_attempts"),
            "wall_s": round(last["t"], 2), "drained": last["finished"] >= args.jobs,
        }
        return result
    except BaseException:
        print(stack.log_tails(), file=sys.stderr)
        raise
    finally:
        stack.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=120, help="service.create hooks queued")
    parser.add_argument("--rate", type=float, default=20, help="calls a second the simulator allows (R)")
    parser.add_argument("--burst", type=int, default=5, help="the paced run's rate_limit.burst")
    parser.add_argument("--latency-ms", type=float, default=50, help="the simulator's latency per call")
    parser.add_argument("--concurrency", type=int, default=8, help="the worker's runner threads")
    parser.add_argument("--max-attempts", type=int, default=100,
                        help="PROVISIONER_JOB_MAX_ATTEMPTS (high: the unpaced run must finish too)")
    parser.add_argument("--backoff-base", type=float, default=2.0,
                        help="PROVISIONER_JOB_BACKOFF_BASE (the default; the end-to-end tests use 0.05)")
    parser.add_argument("--backoff-cap", type=float, default=300.0, help="PROVISIONER_JOB_BACKOFF_CAP")
    parser.add_argument("--mode", choices=("both", "paced", "unpaced"), default="both")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a run may take at most")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the paced run misses the goal")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="upstream-rate-bench-"))
    modes = ("paced", "unpaced") if args.mode == "both" else (args.mode,)
    try:
        runs = {mode: run(mode, args, workdir / mode) for mode in modes}
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    paced, unpaced = runs.get("paced"), runs.get("unpaced")
    result = {
        "benchmark": "upstream_rate",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "database": "sqlite",
        "simulator": {"latency_ms": args.latency_ms, "rate_limit_per_s": args.rate},
        "jobs": args.jobs, "worker_concurrency": args.concurrency,
        "baseline_allowed_calls_per_s": args.rate,
        **runs,
    }
    if paced and unpaced and unpaced.get("jobs_per_s"):
        result["paced_vs_unpaced"] = {
            "accepted_calls_per_s": round(paced["accepted_calls_per_s"] / unpaced["accepted_calls_per_s"], 3),
            "jobs_per_s": round(paced["jobs_per_s"] / unpaced["jobs_per_s"], 3),
            "rate_limited_429": [paced["rate_limited_429"], unpaced["rate_limited_429"]],
            "attempts": [paced["attempts"], unpaced["attempts"]],
        }
    met = None
    if paced:
        met = bool(paced["ratio_to_allowed"] is not None and paced["ratio_to_allowed"] >= GOAL_RATIO)
        result["goals"] = {"paced_ratio_to_allowed": {"goal": GOAL_RATIO, "value": paced["ratio_to_allowed"],
                                                      "met": met}}
    print(json.dumps(result, indent=2))
    return 1 if args.strict and met is False else 0


if __name__ == "__main__":
    sys.exit(main())
