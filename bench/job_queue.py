#!/usr/bin/env python
"""Benchmark: the job queue's own cost, claim + finish, and how fast an idle worker wakes.

On one database (a fresh SQLite file, or ``--database-url``), in this process:

1. the baseline: a loop of single-row ``INSERT`` + ``COMMIT`` on one connection of the
   same engine and driver the queue uses (the machine's own commit rate: every job
   costs at least one commit), before and again after step 2 (the faster one counts);
2. throughput: ``--jobs`` queued no-op jobs (one per service, bulk-loaded), run by a
   started ``Worker`` (its claim loop, a no-op attempt, the outcome and attempt log and
   all) with 1 and with ``--concurrency`` runner threads in this one process; jobs per
   second until the last outcome is recorded, and the ratio to the commit rate;
3. wake-up latency: a started ``Worker`` with every runner idle; ``--samples`` jobs are
   queued one at a time (each in its own transaction, as intake does) and the time from
   just before the enqueueing ``COMMIT`` to the start of its attempt is taken, p50/p95/max
   in ms. On PostgreSQL twice: with LISTEN/NOTIFY (the default) and with the poll alone
   (``listen=False``, the baseline, the same poll interval); SQLite only polls.

Then it checks that every job succeeded with exactly one attempt. One JSON document;
absolute numbers depend on the machine and its disk, the ratios are what compare.

    .venv/bin/python bench/job_queue.py                                     # CI size, SQLite
    .venv/bin/python bench/job_queue.py --jobs 20000 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

A PostgreSQL database is migrated and emptied (every table of the models) before and
after, and gets a ``bench_commits`` table for the baseline: give one the benchmark may
empty and fill.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import tempfile
import threading
import time

from sqlalchemy import delete, func, insert, select  # noqa: E402

from provisioner import jobs  # noqa: E402
from provisioner.config import Settings  # noqa: E402
from provisioner.db import Base, utcnow  # noqa: E402
from provisioner.devsetup import new_webhook_secret  # noqa: E402
from provisioner.jobs import Outcome  # noqa: E402
from provisioner.migrate import upgrade  # noqa: E402
from provisioner.models import Job, JobAttempt, JobState, Service  # noqa: E402
from provisioner.products import Catalog  # noqa: E402
from provisioner.runtime import Runtime  # noqa: E402
from provisioner.secrets import new_fernet_key  # noqa: E402
from provisioner.worker import Worker  # noqa: E402

LOAD_CHUNK = 5000
GOAL_JOBS_PER_S = 1000         # per worker process, PostgreSQL
GOAL_COMMIT_SHARE = 0.25       # of the same run's commit rate, PostgreSQL
GOAL_WAKE_MS = 50              # enqueue -> start, idle workers, PostgreSQL with NOTIFY


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def make_runtime(url: str, workdir: Path, poll: float) -> Runtime:
    settings = Settings.from_env(
        {}, database_url=url, webhook_secrets=[new_webhook_secret()], secret_key="bench",
        encryption_key=new_fernet_key(), instance_dir=str(workdir / "instance"),
        products_dir=str(workdir), worker_poll_interval=poll, job_lease_seconds=60)
    return Runtime(settings, catalog=Catalog(products={}, upstreams={}))


def commit_rate(db, count: int) -> dict:
    """Single-row INSERT + COMMIT in a loop, on a raw connection of the queue's engine."""
    sqlite = db.dialect == "sqlite"
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("DROP TABLE IF EXISTS bench_commits")
        cur.execute("CREATE TABLE bench_commits (id integer primary key, n integer, at varchar(40))" if sqlite
                    else "CREATE TABLE bench_commits (id serial primary key, n integer, at varchar(40))")
        if not sqlite:
            raw.commit()
        sql = "INSERT INTO bench_commits (n, at) VALUES (?, ?)" if sqlite else \
            "INSERT INTO bench_commits (n, at) VALUES (%s, %s)"
        started = time.perf_counter()
        for n in range(count):
            if sqlite:  # the engine's connections begin explicitly (see provisioner.db)
                cur.execute("BEGIN IMMEDIATE")
                cur.execute(sql, (n, "x"))
                cur.execute("COMMIT")
            else:
                cur.execute(sql, (n, "x"))
                raw.commit()
        seconds = time.perf_counter() - started
        cur.execute("DROP TABLE bench_commits")
        if not sqlite:
            raw.commit()
    finally:
        raw.close()
    return {"commits": count, "seconds": round(seconds, 3), "per_s": round(count / seconds, 1)}


def load_jobs(db, count: int, prefix: str) -> None:
    """``count`` services with one queued job each, bulk-inserted."""
    now = utcnow() - dt.timedelta(seconds=1)
    with db.transaction() as session:
        for first in range(0, count, LOAD_CHUNK):
            ids = range(first, min(first + LOAD_CHUNK, count))
            session.execute(insert(Service), [service_row(f"{prefix}{n}", now) for n in ids])
            session.execute(insert(Job), [{
                "id": f"{prefix}j{n}", "service_id": f"{prefix}{n}", "reason": "bench", "state": JobState.QUEUED,
                "attempts": 0, "max_attempts": 5, "run_after": now, "created_at": now, "updated_at": now,
            } for n in ids])


def service_row(key: str, now: dt.datetime) -> dict:
    return {"id": key, "billing_id": key, "billing_product_id": "1", "product_key": "bench",
            "upstream": "bench", "domain": f"{key}.example", "client_id": "1", "client": {},
            "config_options": {}, "custom_fields": {}, "desired_status": "active", "limits": {},
            "observed": {}, "usage": {}, "created_at": now, "updated_at": now}


def throughput(runtime: Runtime, count: int, threads: int, commits_per_s: float) -> dict:
    """``count`` queued no-op jobs through a started Worker's runner threads, until the
    last outcome is recorded."""
    load_jobs(runtime.db, count, f"t{threads}-")
    ran = [0]
    done = threading.Event()
    lock = threading.Lock()

    def counted(_runtime, claim) -> Outcome:
        with lock:
            ran[0] += 1
            if ran[0] == count:
                done.set()
        return Outcome("succeeded", detail="no-op")

    worker = Worker(runtime, concurrency=threads, name=f"bench-{threads}", execute=counted)
    started, cpu = time.perf_counter(), time.process_time()
    worker.start()
    done.wait(600)
    worker.stop()   # returns once the last outcome is recorded
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    per_s = ran[0] / seconds
    return {"threads": threads, "jobs": ran[0], "seconds": round(seconds, 3), "jobs_per_s": round(per_s, 1),
            "ms_per_job": round(1000 * seconds / max(1, ran[0]), 3),
            # this process's CPU (all threads): near ms_per_job x 1 core means CPU-bound
            "cpu_ms_per_job": round(1000 * cpu / max(1, ran[0]), 3),
            "ratio_to_commit_rate": round(per_s / commits_per_s, 3)}


def wake_latency(runtime: Runtime, samples: int, listen: bool, threads: int) -> dict:
    """Enqueue one job at a time with every runner idle; commit -> attempt start, in ms."""
    db = runtime.db
    started: dict[str, float] = {}
    seen = threading.Condition()

    def record(_runtime, claim) -> Outcome:
        with seen:
            started[claim.job_id] = time.perf_counter()
            seen.notify_all()
        return Outcome("succeeded")

    prefix = f"w{int(listen)}-"
    now = utcnow()
    with db.transaction() as session:
        session.execute(insert(Service), [service_row(f"{prefix}{n}", now) for n in range(samples)])
    worker = Worker(runtime, concurrency=threads, name=f"bench-wake-{int(listen)}", execute=record, listen=listen)
    worker.start()
    latencies: list[float] = []
    rng = random.Random(15)
    try:
        if listen and not worker.listening.wait(10):
            raise SystemExit("the worker never started listening")
        for n in range(samples):
            time.sleep(rng.uniform(0.02, 0.06))  # the runners are idle again
            with db.transaction() as session:
                job = jobs.enqueue(session, f"{prefix}{n}", reason="bench", max_attempts=5)
                session.flush()
                job_id = job.id
                enqueued = time.perf_counter()   # the COMMIT follows as the block ends
            with seen:
                if not seen.wait_for(lambda: job_id in started, timeout=30):
                    raise SystemExit(f"job {job_id} did not start within 30 s")
            latencies.append(1000 * (started[job_id] - enqueued))
    finally:
        worker.stop()
    latencies.sort()
    return {"listen": listen, "poll_interval_s": runtime.settings.worker_poll_interval, "samples": samples,
            "p50_ms": round(percentile(latencies, 50), 2), "p95_ms": round(percentile(latencies, 95), 2),
            "max_ms": round(latencies[-1], 2)}


def check(db) -> list[str]:
    with db.read() as session:
        states = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        attempts = dict(session.execute(select(JobAttempt.outcome, func.count()).group_by(JobAttempt.outcome)).all())
        jobs_count = sum(states.values())
    problems = []
    if set(states) != {JobState.SUCCEEDED}:
        problems.append(f"jobs not all succeeded: {states}")
    if attempts != {"succeeded": jobs_count}:
        problems.append(f"{jobs_count} jobs but attempts {attempts}")
    return problems


def empty(db) -> None:
    """Every table of the models emptied, dependants first."""
    with db.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(delete(table))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="no-op jobs per throughput run")
    parser.add_argument("--concurrency", type=int, default=8, help="runner threads of the second throughput run")
    parser.add_argument("--commits", type=int, default=2000, help="INSERT + COMMIT rounds of the baseline")
    parser.add_argument("--samples", type=int, default=40, help="jobs queued one at a time for the wake-up latency")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="the workers' poll (the default setting)")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a PostgreSQL goal is missed")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite'}"
    upgrade(url)
    runtime = make_runtime(url, workdir, args.poll_interval)
    postgres = runtime.db.dialect == "postgresql"
    try:
        if args.database_url:
            empty(runtime.db)
        # The disk's commit rate drifts with whatever else the machine does: it is taken
        # before and after the throughput runs, and the ratios use the faster of the two.
        before = commit_rate(runtime.db, args.commits)
        runs = [throughput(runtime, args.jobs, threads, before["per_s"])
                for threads in sorted({1, args.concurrency})]
        after = commit_rate(runtime.db, args.commits)
        baseline = {"before": before, "after": after, "per_s": max(before["per_s"], after["per_s"])}
        for run in runs:
            run["ratio_to_commit_rate"] = round(run["jobs_per_s"] / baseline["per_s"], 3)
        wake = [wake_latency(runtime, args.samples, listen, 2) for listen in ((True, False) if postgres else (False,))]
        problems = check(runtime.db)
        if args.database_url:
            empty(runtime.db)
    finally:
        runtime.close()
        shutil.rmtree(workdir, ignore_errors=True)
    best = max(runs, key=lambda r: r["jobs_per_s"])
    goals = None
    if postgres:
        notify = next(w for w in wake if w["listen"])
        goals = {
            f"jobs_per_s >= {GOAL_JOBS_PER_S}": best["jobs_per_s"] >= GOAL_JOBS_PER_S,
            f"ratio_to_commit_rate >= {GOAL_COMMIT_SHARE}": best["ratio_to_commit_rate"] >= GOAL_COMMIT_SHARE,
            f"wake p95 <= {GOAL_WAKE_MS} ms": notify["p95_ms"] <= GOAL_WAKE_MS,
        }
    print(json.dumps({
        "benchmark": "queue", "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                          "platform": platform.platform()},
        "database": runtime.db.dialect, "baseline_commits": baseline, "throughput": runs,
        "best": {"threads": best["threads"], "jobs_per_s": best["jobs_per_s"],
                 "ratio_to_commit_rate": best["ratio_to_commit_rate"]},
        "wake": wake, "goals": goals, "problems": problems,
    }, indent=2))
    missed = args.strict and goals and not all(goals.values())
    return 1 if problems or missed else 0


if __name__ == "__main__":
    sys.exit(main())
