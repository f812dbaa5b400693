"""The console's upstream call figures, live refresh, reconcile progress, sign-in limit
and the bulk retry's cap (Flask's test client on a real SQLite file; the fixtures are
the console tests' own)."""
from __future__ import annotations

import re

import pytest

from provisioner.console import upstream_calls
from provisioner.console.upstream_calls import Totals, Window, quantile
from tests.integration.test_admin_api import add_job, add_service, app, client, runtime, simulator  # noqa: F401
from tests.integration.test_console import admin_key, page, sign_in, signed_in  # noqa: F401

BOUNDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, float("inf"))


def _totals(calls: int, errors: int, per_bound: dict[float, int]) -> Totals:
    running, buckets = 0, []
    for bound in BOUNDS:
        running += per_bound.get(bound, 0)
        buckets.append((bound, float(running)))
    return Totals(float(calls), float(errors), tuple(buckets))


# --- upstream calls from the in-process metrics ------------------------------------------------

def test_quantiles_are_interpolated_within_a_bucket_and_past_the_last_bound_is_said():
    buckets = list(_totals(100, 0, {0.1: 50, 0.25: 50}).buckets)
    assert quantile(.5, buckets)[0] == pytest.approx(0.1)
    assert quantile(.95, buckets)[0] == pytest.approx(0.1 + 0.15 * 0.9)
    assert quantile(.5, list(_totals(0, 0, {}).buckets)) == (None, False)
    assert quantile(.95, list(_totals(10, 0, {float("inf"): 10}).buckets)) == (30.0, True)


def test_the_window_counts_from_the_process_start_then_from_a_snapshot_span_old():
    clock = [1000.0]
    state = {"up": _totals(10, 1, {0.1: 10})}
    window = Window(clock=lambda: clock[0], started=940.0, read=lambda: dict(state))
    first = window.figures()
    assert first.since_start and first.seconds == pytest.approx(60)
    [row] = first.rows
    assert (row.upstream, row.calls, row.errors, row.per_minute) == ("up", 10, 1, pytest.approx(10))
    assert row.error_rate == pytest.approx(0.1) and 50 <= row.p50_ms <= 100

    # 400 s later, 60 slow calls more: a snapshot SPAN old is the base, the old calls drop out
    for step in range(1, 81):
        clock[0] = 1000.0 + step * 5
        if step == 80:
            state["up"] = _totals(70, 31, {0.1: 10, 2.5: 60})
        window.figures()
    later = window.figures()
    assert not later.since_start and later.seconds == pytest.approx(upstream_calls.SPAN)
    [row] = later.rows
    assert (row.calls, row.errors) == (60, 30) and 1000 < row.p50_ms <= 2500
    assert row.per_minute == pytest.approx(60 / upstream_calls.SPAN * 60)


def test_overview_shows_this_process_upstream_calls(signed_in, runtime):
    assert "Test connection" in page(signed_in, "/admin/upstreams")
    page(signed_in, "/admin/upstreams/sandbox/test")          # this process calls the sandbox
    page(signed_in, "/admin/upstreams/wrong-key/test")        # and is refused by it
    html = page(signed_in, "/admin/")
    assert "Upstream calls of this process" in html and "each worker process counts its own calls" in html
    table = html.split('id="upstream-calls"', 1)[1].split("</table>", 1)[0]
    rows = dict(re.findall(r'<td data-label="Upstream">([^<]+)</td>.*?<td data-label="Error rate"[^>]*>([^<]+)</td>',
                           table, re.S))
    assert "sandbox" in rows and "wrong-key" in rows
    assert rows["wrong-key"].strip() != "0.0 %"


# --- a running reconcile pass's progress -------------------------------------------------------------

def _sandbox_accounts(simulator, n: int) -> None:
    import requests
    from tests.integration.test_admin_api import SIM_KEY
    for i in range(n):
        response = requests.post(f"{simulator.url}/api/v1/accounts", timeout=5,
                                 headers={"Authorization": f"Bearer {SIM_KEY}"},
                                 json={"external_id": f"orphan-{i}", "domain": f"orphan{i}.example", "limits": {}})
        assert response.status_code == 201, response.text


def test_a_running_pass_shows_its_progress_and_writes_only_its_own_row(signed_in, runtime, simulator,
                                                                        monkeypatch):
    from sqlalchemy import event

    from provisioner import admin, reconcile
    from provisioner.db import utcnow
    from provisioner.providers.sandbox import SandboxProvider
    _sandbox_accounts(simulator, 5)
    runtime.settings.reconcile_page_size = 2                 # 5 accounts: 3 pages
    monkeypatch.setattr(reconcile, "PROGRESS_EVERY", 0.0)
    seen: list[str] = []
    original = SandboxProvider.list_accounts

    def listing(self, page=1, per_page=100):
        if self.http.provider == "sandbox" and page == 3:       # pages 1 and 2 are judged by now, or soon
            import time
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                html = signed_in.get(f"/admin/reconcile/{run_id}").get_data(as_text=True)
                if "1 page" in html or "2 pages" in html:
                    seen.append(html)
                    break
                time.sleep(0.02)
        return original(self, page=page, per_page=per_page)

    monkeypatch.setattr(SandboxProvider, "list_accounts", listing)
    writes: list[str] = []

    def spy(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            writes.append(statement.split("(")[0].split(" SET")[0].strip())

    at = utcnow()
    with runtime.db.transaction() as s:
        run_id = admin.start_reconcile_run(s, at=at, dry_run=False).id
    event.listen(runtime.db.engine, "before_cursor_execute", spy)
    try:
        run = reconcile.run_pass(runtime, at=at, trigger="api", run_id=run_id)
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", spy)
    assert run.state == "finished"
    assert seen, "the run's page never showed its progress"
    assert re.search(r"upstream sandbox \(\d of 2\): [12] pages?, [24] accounts read", seen[0]), seen[0]
    assert not [w for w in writes if "services" in w.lower()]          # orphans only: no service row written
    progress_writes = [w for w in writes if w.upper().startswith("UPDATE RECONCILE_RUNS")]
    assert len(progress_writes) == 3 + 3 + 1        # 3 pages, 3 steps (due dates, 2 upstreams), the report
    html = page(signed_in, f"/admin/reconcile/{run_id}")
    assert "still running" not in html and "orphan" in html


# --- live refresh: a static script, the pages whole without it ----------------------------------------

def test_live_pages_load_one_static_script_and_mark_their_regions(signed_in, runtime):
    script = '<script src="/admin/static/live.js" defer></script>'
    for path, region in (("/admin/", "live-overview"), ("/admin/jobs", "live-jobs"),
                         ("/admin/reconcile", "live-runs")):
        html = page(signed_in, path)
        assert script in html and re.search(r'<main id="main" class="wrap" data-live-every="\d+">', html), path
        assert f'<div id="{region}" data-live>' in html, path
        assert "<script>" not in html and " on" + "click=" not in html          # nothing inline
    for path in ("/admin/services", "/admin/upstreams", "/admin/keys"):
        assert "live.js" not in page(signed_in, path), path
    response = signed_in.get("/admin/static/live.js")
    assert response.status_code == 200 and "javascript" in response.mimetype
    assert "eval(" not in response.get_data(as_text=True)
    assert "script-src" not in signed_in.get("/admin/").headers["Content-Security-Policy"]   # default-src 'self'


def test_a_pass_page_refreshes_while_the_pass_runs_only(signed_in, runtime):
    from provisioner import admin
    from provisioner.db import utcnow
    from provisioner.models import ReconcileRun
    with runtime.db.transaction() as s:
        run_id = admin.start_reconcile_run(s, at=utcnow(), dry_run=True).id
    html = page(signed_in, f"/admin/reconcile/{run_id}")
    assert "data-live-every" in html and "The pass is still running: starting" in html
    with runtime.db.transaction() as s:
        s.get(ReconcileRun, run_id).report = {"progress": {"step": "upstream", "upstream": "sandbox",
                                                           "upstream_number": 1, "upstreams": 2, "pages": 4,
                                                           "accounts": 400}}
    html = page(signed_in, f"/admin/reconcile/{run_id}")
    assert "upstream sandbox (1 of 2): 4 pages, 400 accounts read" in html
    assert "upstream sandbox (1 of 2)" in page(signed_in, "/admin/reconcile")
    with runtime.db.transaction() as s:
        run = s.get(ReconcileRun, run_id)
        run.state, run.finished_at, run.report = "finished", utcnow(), {"counts": {}, "duration_s": 1.5}
    html = page(signed_in, f"/admin/reconcile/{run_id}")
    assert "data-live-every" not in html and "1.5 s" in html


# --- refused sign-ins per client address ----------------------------------------------------------------

def test_failed_sign_ins_are_limited_per_address_and_only_failures_count(app, client, runtime, admin_key):
    import datetime as dt

    from sqlalchemy import func, select

    from provisioner.console import throttle
    from provisioner.models import ConsoleSignInFailure
    for _ in range(3):                                           # successes never count
        fresh = app.test_client()
        assert sign_in(fresh, admin_key).status_code == 303
    for attempt in range(throttle.FAILURE_LIMIT - 1):
        assert sign_in(client, f"pk_wrong-{attempt}").status_code == 401
    assert client.get("/admin/sso/" + "x" * 43).status_code == 401      # a spent or unknown link counts too
    with runtime.db.read() as s:
        rows = s.execute(select(ConsoleSignInFailure.client)).scalars().all()
    assert len(rows) == throttle.FAILURE_LIMIT and "127.0.0.1" not in rows[0]   # a keyed hash, not the address

    refused = sign_in(client, admin_key)                          # even the right key, from this address
    assert refused.status_code == 429 and "too many failed sign-ins" in refused.get_data(as_text=True)
    assert 1 <= int(refused.headers["Retry-After"]) <= 300
    assert "provisioner_console=" not in " ".join(refused.headers.getlist("Set-Cookie"))
    assert client.get("/admin/sso/" + "y" * 43).status_code == 429

    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert sign_in(elsewhere, admin_key).status_code == 303      # another address is not held back

    with runtime.db.transaction() as s:                          # the window passes
        for row in s.execute(select(ConsoleSignInFailure)).scalars():
            row.at -= dt.timedelta(minutes=6)
    assert sign_in(client, admin_key).status_code == 303
    assert sign_in(app.test_client(), "pk_wrong-again").status_code == 401
    with runtime.db.read() as s:                                 # the aged ones were dropped
        assert s.execute(select(func.count()).select_from(ConsoleSignInFailure)).scalar_one() == 1


# --- the bulk retry's cap -------------------------------------------------------------------------------

def test_a_bulk_retry_queues_at_most_its_cap_oldest_first_and_says_so(signed_in, runtime, monkeypatch):
    from provisioner.console import views
    from provisioner.models import Job, JobState
    from tests.integration.test_console import CSRF_RE, _job
    monkeypatch.setattr(views, "BULK_RETRY_LIMIT", 3)
    with runtime.db.transaction() as s:
        add_service(s, "1")
        failed = [add_job(s, "1", state=JobState.FAILED, minutes=i, attempts=3, error=("upstream_error", "x")).id
                  for i in range(5)]                              # failed[0] is the oldest (T0 + i minutes)
    confirm = page(signed_in, "/admin/jobs/retry-failed")
    assert "Retry 3 failed jobs?" in confirm and "5 failed jobs match" in confirm
    assert "queues at most 3, the oldest first" in confirm and "Retry 3 jobs" in confirm
    token = CSRF_RE.search(confirm).group(1)
    response = signed_in.post("/admin/jobs/retry-failed", data={"csrf_token": token})
    assert "3 failed job(s) were queued again." in page(signed_in, response.headers["Location"])
    assert [_job(runtime, j).state for j in failed] == [JobState.QUEUED] * 3 + [JobState.FAILED] * 2

    confirm = page(signed_in, "/admin/jobs/retry-failed")
    assert "Retry 2 failed jobs?" in confirm and "failed jobs match" not in confirm
    assert "One bulk retry queues at most 3 jobs." in confirm
    signed_in.post("/admin/jobs/retry-failed", data={"csrf_token": token})
    with runtime.db.read() as s:
        assert {s.get(Job, j).state for j in failed} == {JobState.QUEUED}
