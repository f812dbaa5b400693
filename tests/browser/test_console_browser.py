"""The operator console in a real browser: Debian's chromium driven by Playwright.

The app runs in-process on real HTTP (the client area's browser fixtures), on the
sandbox simulator; services are made by signed hooks and drained by an in-process
worker. An operator signs in with an API key, filters the services to the failing
one (the simulator failed every create), opens it, retries its failed job and sees
it succeed once the upstream is healthy again; signs in by a single-use link, bulk
retries failed jobs after a confirmation, confirms a termination waiting for an
operator; a read key is offered no action.

A failed test leaves a screenshot and the page's HTML in ``test-artifacts/``.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import time
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from provisioner import apikeys
from provisioner.config import Settings
from provisioner.devsetup import new_webhook_secret
from provisioner.db import utcnow
from provisioner.models import Job, Service
from provisioner.secrets import new_fernet_key
from tests.browser.browsing import _shot, assert_fits_a_phone
from tests.conftest import ROOT
from tests.helpers import event_body

pytestmark = pytest.mark.e2e

HEALTHY, FAILING = "9101", "9102"


@pytest.fixture
def settings(tmp_path, database_url, products_env) -> Settings:
    # Two attempts, fast backoff: a failing upstream fails the job within a second.
    return Settings.from_env(
        {}, database_url=database_url, webhook_secrets=[new_webhook_secret()],
        secret_key="test-secret-key", encryption_key=new_fernet_key(),
        instance_dir=str(tmp_path / "instance"), products_dir=str(ROOT / "product_configs"),
        job_backoff_base=0.01, job_backoff_cap=0.05, worker_poll_interval=0.05, job_max_attempts=2,
    )


def _faults(sim, **faults) -> None:
    requests.post(f"{sim.url}/_sim/faults", json=faults, timeout=5).raise_for_status()


def _jobs(runtime, service_id: str) -> list[Job]:
    with runtime.db.read() as s:
        return list(s.execute(select(Job).where(Job.service_id == service_id).order_by(Job.created_at)).scalars())


def _drain_until(worker, runtime, service_id: str, state: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        worker.drain()
        jobs = _jobs(runtime, service_id)
        if jobs and jobs[-1].state == state:
            return
        assert time.monotonic() < deadline, [(j.state, j.error_code) for j in jobs]
        time.sleep(0.05)


def _create(app, signer, service_id: str, domain: str) -> None:
    raw = json.dumps(event_body("service.create", service_id, domain=domain, product_id="12"))
    response = app.test_client().post("/hooks/v1/events", data=raw, headers=signer.headers(raw))
    assert response.status_code in (200, 202), response.get_json()


def test_find_a_failing_service_retry_its_job_and_see_it_succeed(page, live_url, app, runtime, signer,
                                                                   worker, sandbox_sim):
    _create(app, signer, HEALTHY, "healthy.example")
    _drain_until(worker, runtime, HEALTHY, "succeeded")
    _faults(sandbox_sim, error_rate=1.0, only_actions=["accounts.create"])
    _create(app, signer, FAILING, "failing.example")
    _drain_until(worker, runtime, FAILING, "failed")
    _faults(sandbox_sim, error_rate=0.0)
    with runtime.db.transaction() as s:
        key = apikeys.create_api_key(s, "browser-operator", "admin")[1]

    # signing in: the console sends an unsigned browser to the form, then back
    page.goto(f"{live_url}/admin/services")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Services", level=1).wait_for()
    assert page.get_by_role("link", name=HEALTHY, exact=True).is_visible()

    # the failing service, by filter
    page.get_by_label("Failing only").check()
    page.get_by_role("button", name="Filter").click()
    page.get_by_text("1 service", exact=True).wait_for()
    assert page.get_by_role("link", name=HEALTHY, exact=True).count() == 0
    page.get_by_role("link", name=FAILING, exact=True).click()
    page.get_by_role("heading", name="failing.example", level=1).wait_for()
    job = page.locator("article.job").first
    assert "failed" in job.inner_text()
    assert job.locator("table.attempts tbody tr").count() == 2           # every attempt, with its detail

    # retry it
    job.get_by_role("button", name="Retry").click()
    page.get_by_text("The job was queued again.").wait_for()
    _drain_until(worker, runtime, FAILING, "succeeded")
    page.reload()
    job = page.locator("article.job").first
    assert "succeeded" in job.inner_text()
    assert page.get_by_role("cell", name="browser-operator", exact=False).first.is_visible()

    _shot(page, page.url, "desktop")

    # no longer failing
    page.goto(f"{live_url}/admin/services?failing=1")
    page.get_by_text("0 services", exact=True).wait_for()

    # the overview: the day's hooks and attempts, drawn and tabled
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Overview").click()
    page.get_by_role("heading", name="Overview", level=1).wait_for()
    assert page.locator("figure.chart svg rect").count() == 21            # 7 days x 3 series
    assert page.locator("#upstream-attempts").get_by_role("cell", name="sandbox", exact=True).is_visible()
    # the in-process worker's calls are this process's: they are in the upstream call table too
    assert page.locator("#upstream-calls").get_by_role("cell", name="sandbox", exact=True).is_visible()
    _shot(page, page.url, "desktop")
    for path in ("/admin/", "/admin/services", f"/admin/services/{FAILING}", "/admin/jobs", "/admin/terminations"):
        assert_fits_a_phone(page, live_url + path)

    # signing out ends the session: the next page asks for a key again
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You have signed out.").wait_for()
    page.goto(f"{live_url}/admin/jobs")
    page.get_by_label("API key").wait_for()


def test_sso_bulk_retry_termination_and_a_read_key(page, browser, live_url, app, runtime, signer,
                                                   worker, sandbox_sim):
    _faults(sandbox_sim, error_rate=1.0, only_actions=["accounts.create"])
    for sid in ("9201", "9202"):
        _create(app, signer, sid, f"bulk-{sid}.example")
        _drain_until(worker, runtime, sid, "failed")
    _faults(sandbox_sim, error_rate=0.0)
    _create(app, signer, "9203", "overdue.example")
    _drain_until(worker, runtime, "9203", "succeeded")
    with runtime.db.transaction() as s:        # suspended as overdue 40 days ago: waits for an operator
        svc = s.get(Service, "9203")
        svc.desired_status, svc.suspended_by, svc.suspend_reason = "suspended", "scheduler", "overdue"
        svc.suspended_at = utcnow() - dt.timedelta(days=40)
        key = apikeys.create_api_key(s, "whmcs-admin-sso", "admin")[1]
        read_key = apikeys.create_api_key(s, "auditor", "read")[1]

    # signing in by a single-use link, as the billing system's admin sign-on does
    r = requests.post(f"{live_url}/api/v1/console/sso", json={"path": "/admin/jobs"},
                      headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 200, r.text
    page.goto(live_url + urlsplit(r.json()["url"]).path)
    page.get_by_role("heading", name="Jobs", level=1).wait_for()
    assert "whmcs-admin-sso" in page.locator("header").inner_text()

    # bulk retry, after a confirmation that says how many
    page.get_by_role("link", name="Retry the 2 failed jobs of this filter…").click()
    page.get_by_role("heading", name="Retry 2 failed jobs?").wait_for()
    _shot(page, page.url, "desktop")
    page.get_by_role("button", name="Retry 2 jobs").click()
    page.get_by_text("2 failed job(s) were queued again.").wait_for()
    for sid in ("9201", "9202"):
        _drain_until(worker, runtime, sid, "succeeded")
    page.reload()
    assert page.get_by_role("button", name="Retry").count() == 0

    # a termination waiting for an operator, confirmed
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Terminations").click()
    page.get_by_role("heading", name="overdue.example").wait_for()
    _shot(page, page.url, "desktop")
    page.get_by_label("Type 9203 to confirm").fill("9203")
    page.get_by_label("Reason").first.fill("Overdue since the summer")
    page.get_by_role("button", name="Terminate 9203").click()
    page.get_by_text("The service was terminated").wait_for()
    assert page.get_by_text("No termination waits for an operator.").is_visible()
    _drain_until(worker, runtime, "9203", "succeeded")
    with runtime.db.read() as s:
        assert s.get(Service, "9203").observed_status == "deleted"

    # a read key looks at everything and is offered no action
    context = browser.new_context()
    reader = context.new_page()
    try:
        reader.goto(f"{live_url}/admin/services/9201")
        reader.get_by_label("API key").fill(read_key)
        reader.get_by_role("button", name="Sign in").click()
        reader.get_by_role("heading", name="bulk-9201.example").wait_for()
        assert reader.get_by_text("This key has the read scope").is_visible()
        for name in ("Converge now", "Suspend", "Open the client area as the customer"):
            assert reader.get_by_role("button", name=name).count() == 0, name
        reader.goto(f"{live_url}/admin/jobs")
        assert reader.get_by_role("link", name=re.compile("Retry the")).count() == 0
    finally:
        context.close()


def test_live_refresh_of_the_overview_and_jobs_without_a_reload(page, live_url, app, runtime, signer, worker,
                                                                sandbox_sim, monkeypatch):
    from provisioner.console import views
    monkeypatch.setattr(views, "LIVE_OVERVIEW", 2)
    monkeypatch.setattr(views, "LIVE_LISTS", 2)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico") else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    with runtime.db.transaction() as s:
        key = apikeys.create_api_key(s, "browser-live", "admin")[1]
    page.goto(f"{live_url}/admin/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview", level=1).wait_for()
    page.get_by_role("button", name="Pause live refresh").wait_for()
    failed = page.locator("dt", has_text="Jobs failed").locator("xpath=following-sibling::dd")
    assert failed.inner_text() == "0"

    _faults(sandbox_sim, error_rate=1.0, only_actions=["accounts.create"])
    _create(app, signer, "9301", "live.example")
    _drain_until(worker, runtime, "9301", "failed")
    _faults(sandbox_sim, error_rate=0.0)
    page.wait_for_function("() => [...document.querySelectorAll('dt')].find(d => d.textContent === 'Jobs failed')"
                           ".nextElementSibling.textContent.trim() === '1'", timeout=10_000)
    assert page.get_by_text("Live: updated at").is_visible()

    # the jobs page: the retried job moves on without a reload; Pause stops it
    page.goto(f"{live_url}/admin/jobs")
    row = page.locator("tr", has=page.get_by_role("link", name="9301"))
    assert "failed" in row.inner_text()
    row.get_by_role("button", name="Retry").click()
    page.get_by_text("The job was queued again.").wait_for()
    _drain_until(worker, runtime, "9301", "succeeded")
    page.wait_for_function("() => [...document.querySelectorAll('#live-jobs td[data-label=State]')]"
                           ".some(td => td.textContent.includes('succeeded'))", timeout=10_000)
    page.get_by_role("button", name="Pause live refresh").click()
    page.get_by_text("Live refresh paused.").wait_for()

    # the session ends on the server: the page stops refreshing and says so
    page.get_by_role("button", name="Resume live refresh").click()
    with runtime.db.transaction() as s:
        apikeys.revoke_api_key(s, str(next(k.id for k in apikeys.list_api_keys(s) if k.name == "browser-live")))
    page.get_by_text("the session has ended").wait_for(timeout=10_000)
    assert not problems, problems                     # no CSP refusal, no script error
