#!/usr/bin/env python
"""Benchmark: server time of the pages people wait for, at the sizes they reach.

- the admin API's services list (``GET /api/v1/services``: its first page, a page deep
  into the list, a filtered one) with ``--services`` services in the database;
- the operator console's services page (``GET /admin/services``: first page, a page in
  the middle, a search, the failing filter) and jobs page, with a failed job on every
  hundredth service;
- the client area's mailbox page (``GET /client/mailboxes``, its first page and a search)
  and overview for a domain with ``--mailboxes`` mailboxes in the sandbox simulator (a
  real ``provisioner simulate sandbox`` process: the page reads them over HTTP).

Each is requested ``--repeat`` times through the app in this process (WSGI, no network),
after one warm-up; the baseline is ``GET /healthz`` through the same app in the same run.
Prints JSON: per page the median and p95 in ms and the ratio of the median to the
baseline's. Goals (issue 15): the mailbox page of 1,000 mailboxes at most 50 ms, the
services list with 100,000 services at most 100 ms; (issue 16) the
console's services page with 100,000 services at most 100 ms.

    .venv/bin/python bench/pages.py                          # CI size: 10,000 services, 300 mailboxes
    .venv/bin/python bench/pages.py --services 100000 --mailboxes 1000
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from provisioner import apikeys, create_app  # noqa: E402
from provisioner.client import sso  # noqa: E402
from provisioner.config import Settings  # noqa: E402
from provisioner.db import Database  # noqa: E402
from provisioner.migrate import upgrade  # noqa: E402
from provisioner.models import Job, JobAttempt, Service  # noqa: E402
from provisioner.runtime import Runtime  # noqa: E402
from reconcile_scale import load_services, products_dir, start_simulator  # noqa: E402
from tests.e2e.procs import free_port, process_env  # noqa: E402

CUSTOMER = "customer-1"


def timed(get, path: str, repeat: int, expect: int = 200) -> dict:
    response = get(path)                       # warm-up (caches, first connection)
    assert response.status_code == expect, (path, response.status_code, response.get_data(as_text=True)[:300])
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == expect, (path, response.status_code)
    times.sort()
    return {"path": path, "median_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2)}


def customer_with_mailboxes(runtime: Runtime, sim_url: str, count: int) -> None:
    """One service whose sandbox account holds ``count`` mailboxes."""
    account = requests.post(f"{sim_url}/api/v1/accounts", timeout=10, json={
        "external_id": CUSTOMER, "domain": "big-customer.example",
        "limits": {"mailboxes": count + 10, "mailbox_quota_gb": 10}}).json()
    with requests.Session() as http:
        for n in range(count):
            http.post(f"{sim_url}/api/v1/accounts/{account['id']}/mailboxes", timeout=10, json={
                "local_part": f"user{n:05d}", "password": "pw-123456789", "name": f"User {n}"}).raise_for_status()
    with runtime.db.transaction() as session:
        session.add(Service(id=CUSTOMER, billing_id=CUSTOMER, billing_product_id="12", product_key="sandbox-mail",
                            upstream="sandbox", domain="big-customer.example", client_id="1", client={},
                            desired_status="active", limits={"mailboxes": count + 10, "mailbox_quota_gb": 10},
                            upstream_id=account["id"], observed_status="active", observed={},
                            usage={"mailboxes": count}, config_options={}, custom_fields={}))


def failed_jobs(runtime: Runtime, services: int, every: int = 100) -> int:
    """A failed job (one attempt) on every ``every``-th service; how many."""
    at = dt.datetime.now(dt.timezone.utc)
    rows = [{"id": f"job{n:028d}", "service_id": str(n), "reason": "service.create", "state": "failed",
             "attempts": 1, "max_attempts": 1, "run_after": at, "created_at": at, "updated_at": at,
             "error_code": "upstream_unavailable" if n % 200 else "auth_failed",
             "error_message": "The e-mail platform is temporarily unavailable."}
            for n in range(every, services + 1, every)]
    with runtime.db.transaction() as session:
        if rows:
            session.execute(insert(Job), rows)
            session.execute(insert(JobAttempt), [{"job_id": r["id"], "number": 1, "worker": "bench", "started_at": at,
                                                  "finished_at": at, "outcome": "failed",
                                                  "error_code": r["error_code"], "error_message": r["error_message"],
                                                  "detail": "sandbox create_account: HTTP 503"} for r in rows])
    return len(rows)


def console_client(app, key: str):
    """A test client signed in to the console with ``key``."""
    console = app.test_client()
    form = console.get("/admin/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    assert console.post("/admin/sign-in", data={"csrf_token": token, "api_key": key}).status_code == 303
    return console


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--mailboxes", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    url = f"sqlite:///{workdir / 'bench.sqlite'}"
    upgrade(url)
    port = free_port()
    sim_url = f"http://127.0.0.1:{port}"
    env = process_env(url, workdir / "instance", webhook_secret="whsec_" + "A" * 43, sandbox_url=sim_url,
                      products_dir=products_dir(workdir / "products"), extra={"PROVISIONER_LOG_LEVEL": "WARNING"})
    (workdir / "run").mkdir(exist_ok=True)
    sim = start_simulator(workdir, env, port)
    saved = dict(os.environ)
    try:
        db = Database(url)
        load_services(db, args.services)
        db.dispose()
        os.environ.update(env)
        runtime = Runtime(Settings.from_env())
        customer_with_mailboxes(runtime, sim_url, args.mailboxes)
        failed = failed_jobs(runtime, args.services)
        with runtime.db.transaction() as session:
            admin_key = apikeys.create_api_key(session, "bench", "admin")[1]
        app = create_app(runtime=runtime)
        api = app.test_client()
        headers = {"Authorization": f"Bearer {admin_key}"}

        def admin_get(path):
            return api.get(path, headers=headers)

        customer = app.test_client()
        link, _ = sso.issue_token(runtime, CUSTOMER)
        assert customer.get(urlsplit(link).path).status_code == 303
        deep = max(1, args.services // 50 // 2)
        console = console_client(app, admin_key)
        pages = {
            "healthz (baseline)": timed(api.get, "/healthz", args.repeat),
            "services list, first page": timed(admin_get, "/api/v1/services?per_page=50", args.repeat),
            "services list, a page in the middle": timed(admin_get, f"/api/v1/services?per_page=50&page={deep}",
                                                         args.repeat),
            "services list, by client": timed(admin_get, "/api/v1/services?client_id=42", args.repeat),
            "console services, first page": timed(console.get, "/admin/services", args.repeat),
            "console services, a page in the middle": timed(console.get, f"/admin/services?page={deep}",
                                                            args.repeat),
            "console services, a search": timed(console.get, "/admin/services?q=svc-4242", args.repeat),
            "console services, failing": timed(console.get, "/admin/services?failing=1", args.repeat),
            "console services, by upstream and status": timed(
                console.get, "/admin/services?upstream=sandbox&status=active&page=2", args.repeat),
            "console jobs, failed first": timed(console.get, "/admin/jobs", args.repeat),
            "client mailboxes, first page": timed(customer.get, "/client/mailboxes", args.repeat),
            "client mailboxes, a search": timed(customer.get, "/client/mailboxes?q=user0099", args.repeat),
            "client overview": timed(customer.get, "/client/", args.repeat),
        }
        runtime.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        sim.terminate()
        sim.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    baseline = pages["healthz (baseline)"]["median_ms"]
    for figures in pages.values():
        figures["ratio_to_healthz"] = round(figures["median_ms"] / baseline, 1) if baseline else None
    print(json.dumps({
        "benchmark": "pages", "services": args.services, "failed_jobs": failed, "mailboxes": args.mailboxes, "repeat": args.repeat,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "database": "sqlite",
        "pages": pages,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
