"""The operator console (/admin/) through Flask's test client on a real SQLite file.

The runtime, the sandbox simulator and the row helpers are the admin API tests' own.
"""
from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import func, select, update

from provisioner import apikeys
from provisioner.db import utcnow
from provisioner.models import ConsoleLogin, Event, Job, JobAttempt, JobState, OperatorAction, Service
from tests.integration.test_admin_api import (add_event, add_job, add_service, app, client, runtime,  # noqa: F401
                                              simulator)

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_key(runtime, scope: str = "admin", source: str | None = None, name: str | None = None) -> str:
    with runtime.db.transaction() as session:
        return apikeys.create_api_key(session, name or f"console-{scope}-{source or 'all'}", scope, source)[1]


def csrf_of(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    match = CSRF_RE.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_in(client, key: str, next_path: str = ""):
    token = csrf_of(client, "/admin/sign-in")
    data = {"csrf_token": token, "api_key": key}
    if next_path:
        data["next"] = next_path
    return client.post("/admin/sign-in", data=data)


def page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:500])
    return response.get_data(as_text=True)


def listed(html: str) -> list[str]:
    """The services of a services page, as their links name them."""
    return re.findall(r'<td data-label="Service"><a href="/admin/services/[^"]+">([^<]+)</a>', html)


@pytest.fixture
def admin_key(runtime):
    return make_key(runtime, "admin", name="ops-alice")


@pytest.fixture
def signed_in(client, admin_key):
    assert sign_in(client, admin_key).status_code == 303
    return client


def _job(runtime, job_id: str) -> Job:
    with runtime.db.read() as s:
        return s.get(Job, job_id)


def _service(runtime, key: str) -> Service:
    with runtime.db.read() as s:
        return s.get(Service, key)


def _actions(runtime) -> list[OperatorAction]:
    with runtime.db.read() as s:
        return list(s.execute(select(OperatorAction).order_by(OperatorAction.id)).scalars())


def _job_count(runtime) -> int:
    with runtime.db.read() as s:
        return s.execute(select(func.count()).select_from(Job)).scalar_one()


# --- signing in and out ---------------------------------------------------------------------------

def test_sign_in_keeps_a_server_side_session_and_sign_out_ends_it(client, runtime, admin_key):
    with runtime.db.transaction() as s:
        add_service(s, "100", domain="alpha.example")
    response = client.get("/admin/services?q=alpha")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/admin/sign-in?next=")

    bad = sign_in(client, "pk_not-a-key")
    assert bad.status_code == 401
    assert "not valid or has been revoked" in bad.get_data(as_text=True)

    response = sign_in(client, admin_key, next_path="/admin/services?q=alpha")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/services?q=alpha"
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("provisioner_console="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie                      # PUBLIC_URL is http in the tests
    token = cookie.split(";")[0].split("=", 1)[1]
    assert admin_key not in cookie and len(token) >= 32

    html = page(client, "/admin/services?q=alpha")
    assert listed(html) == ["100"] and "ops-alice" in html
    with runtime.db.read() as s:
        [login] = s.execute(select(ConsoleLogin)).scalars().all()
        assert login.id != token                       # only a keyed hash is stored

    # a sign-out without the token is refused, so a forged form cannot end the session
    assert client.post("/admin/sign-out").status_code == 403
    response = client.post("/admin/sign-out", data={"csrf_token": csrf_of(client, "/admin/services")})
    assert response.status_code == 303
    assert client.get("/admin/services").status_code == 303
    # the old cookie replayed: the session ended on the server
    client.set_cookie("provisioner_console", token, path="/admin")
    assert client.get("/admin/services").status_code == 303
    with runtime.db.read() as s:
        assert s.execute(select(ConsoleLogin.ended_reason)).scalar_one() == "signed_out"


def test_sign_in_form_needs_its_csrf_token(client, admin_key):
    response = client.post("/admin/sign-in", data={"api_key": admin_key})
    assert response.status_code == 403
    assert not any(c.startswith("provisioner_console=") for c in response.headers.getlist("Set-Cookie"))


def test_idle_timeout_and_revoked_key_end_the_session(client, runtime, admin_key):
    assert sign_in(client, admin_key).status_code == 303
    assert client.get("/admin/services").status_code == 200
    with runtime.db.transaction() as s:
        s.execute(update(ConsoleLogin).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    assert client.get("/admin/services").status_code == 303

    assert sign_in(client, admin_key).status_code == 303
    assert client.get("/admin/services").status_code == 200
    with runtime.db.transaction() as s:
        apikeys.revoke_api_key(s, admin_key[:10])
    assert client.get("/admin/services").status_code == 303
    assert sign_in(client, admin_key).status_code == 401


def test_security_headers(signed_in):
    response = signed_in.get("/admin/services")
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


# --- writes: CSRF, read keys, source-scoped keys -----------------------------------------------------

def _write_routes(app) -> list[str]:
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("console.") and "POST" in r.methods]
    return sorted(r.rule for r in rules if r.endpoint not in ("console.sign_in", "console.sign_out_view"))


def _fill(rule: str, service_key: str, job_id: str, notification_id: str = "0" * 32) -> str:
    return (rule.replace("<path:key>", service_key).replace("<job_id>", job_id)
            .replace("<notification_id>", notification_id).replace("<run_id>", "0" * 32)
            .replace("<int:key_id>", "999999"))


FORM = {"reason": "because", "confirm": "300"}


def test_a_write_without_the_csrf_token_is_refused(app, signed_in, runtime):
    with runtime.db.transaction() as s:
        add_service(s, "300")
        job_id = add_job(s, "300", state=JobState.FAILED, attempts=1, error=("upstream_error", "Try later")).id
    before = _job_count(runtime)
    routes = _write_routes(app)
    assert len(routes) >= 7, routes
    for rule in routes:
        response = signed_in.post(_fill(rule, "300", job_id), data={**FORM, "csrf_token": "wrong"})
        assert response.status_code == 403, rule
        assert "security token" in response.get_data(as_text=True)
    assert _job_count(runtime) == before and _job(runtime, job_id).state == JobState.FAILED
    assert _service(runtime, "300").desired_status == "active"
    assert _actions(runtime) == []


def test_a_read_key_sees_everything_and_is_refused_on_every_post_route(app, client, runtime):
    with runtime.db.transaction() as s:
        add_service(s, "300")
        job_id = add_job(s, "300", state=JobState.FAILED, attempts=1, error=("upstream_error", "Try later")).id
    assert sign_in(client, make_key(runtime, "read", name="auditor")).status_code == 303
    html = page(client, "/admin/services/300")
    assert "upstream_error" in html and "read scope" in html
    for button in ("Converge now", "Suspend", ">Retry<"):
        assert button not in html, button
    assert ">Retry<" not in page(client, "/admin/jobs")
    token = CSRF_RE.search(html).group(1)              # a valid token: the scope is what refuses
    before = _job_count(runtime)
    for rule in _write_routes(app):
        response = client.post(_fill(rule, "300", job_id), data={**FORM, "csrf_token": token})
        assert response.status_code == 403, rule
        assert "read scope" in response.get_data(as_text=True)
    assert client.get("/admin/jobs/retry-failed").status_code == 403
    assert _job_count(runtime) == before and _job(runtime, job_id).state == JobState.FAILED
    assert _service(runtime, "300").desired_status == "active"
    assert _actions(runtime) == []


def test_a_source_scoped_key_cannot_see_or_act_on_another_source(app, client, runtime):
    with runtime.db.transaction() as s:
        add_service(s, "alpha:7", source="alpha", billing_id="7", domain="mine.example")
        add_service(s, "beta:7", source="beta", billing_id="7", domain="theirs.example", minutes=1)
        mine = add_job(s, "alpha:7", state=JobState.FAILED, attempts=1, error=("upstream_error", "x")).id
        theirs = add_job(s, "beta:7", state=JobState.FAILED, attempts=1, error=("upstream_error", "x")).id
        their_callback = _callback(s, "beta:7", "beta")
    assert sign_in(client, make_key(runtime, "admin", "alpha")).status_code == 303
    html = page(client, "/admin/services")
    assert "mine.example" in html and "theirs.example" not in html
    assert "theirs.example" not in page(client, "/admin/services?source=beta")
    assert client.get("/admin/services/beta:7").status_code == 404
    jobs_html = page(client, "/admin/jobs")
    assert mine in jobs_html and theirs not in jobs_html
    token = csrf_of(client, "/admin/services/alpha:7")
    for rule in _write_routes(app):
        if "<" in rule:
            response = client.post(_fill(rule, "beta:7", theirs, their_callback),
                                   data={**FORM, "confirm": "7", "csrf_token": token})
            # keys are an every-source matter (403); anything of another source does not exist (404)
            assert response.status_code == (403 if rule.startswith("/admin/keys") else 404), rule
    assert _service(runtime, "beta:7").desired_status == "active"
    assert _job(runtime, theirs).state == JobState.FAILED
    assert their_callback not in page(client, "/admin/callbacks")
    # bulk retry takes this source's failed jobs only
    assert "Retry 1 failed job?" in page(client, "/admin/jobs/retry-failed")
    assert client.post("/admin/jobs/retry-failed", data={"csrf_token": token}).status_code == 303
    assert _job(runtime, mine).state == JobState.QUEUED
    assert _job(runtime, theirs).state == JobState.FAILED


def _callback(session, service_key: str, source: str, state: str = "failed") -> str:
    from provisioner.models import Notification
    row = Notification(type="job.failed", source=source, service_id=service_key, payload={"type": "job.failed"},
                       state=state, attempts=5 if state == "failed" else 1, last_status=500,
                       last_error="the callback URL answered HTTP 500")
    session.add(row)
    session.flush()
    return row.id


# --- services ---------------------------------------------------------------------------------------

def test_service_filters_search_and_paging(signed_in, runtime):
    with runtime.db.transaction() as s:
        add_service(s, "1", domain="shop-one.example", upstream="sandbox", observed_status="active",
                    upstream_id="acct-991")
        add_service(s, "2", domain="shop-two.example", upstream="wrong-key", minutes=1)
        add_service(s, "3", domain="blog.example", desired_status="suspended", minutes=2)
        add_service(s, "4", domain="fixed.example", product_key="other", minutes=3)
        add_job(s, "2", state=JobState.FAILED, attempts=3, error=("upstream_error", "down"))
        add_job(s, "4", state=JobState.FAILED, minutes=1, attempts=3, error=("upstream_error", "down"))
        add_job(s, "4", state=JobState.SUCCEEDED, minutes=2)      # a later job fixed it
        add_job(s, "3", state=JobState.RETRYING, attempts=1, error=("rate_limited", "slow down"))
        for n in range(55):
            add_service(s, f"bulk{n:02d}", domain=f"bulk{n:02d}.example", minutes=10 + n)

    assert listed(page(signed_in, "/admin/services?q=shop")) == ["1", "2"]
    assert listed(page(signed_in, "/admin/services?q=acct-991")) == ["1"]        # exact upstream id
    assert listed(page(signed_in, "/admin/services?q=3")) == ["3"]               # exact billing id
    assert listed(page(signed_in, "/admin/services?q=SHOP-T")) == ["2"]           # a domain's start, any case
    assert listed(page(signed_in, "/admin/services?q=example")) == []              # not a domain's middle
    assert listed(page(signed_in, "/admin/services?upstream=wrong-key")) == ["2"]
    assert listed(page(signed_in, "/admin/services?product=other")) == ["4"]
    assert listed(page(signed_in, "/admin/services?status=suspended")) == ["3"]
    assert listed(page(signed_in, "/admin/services?observed=active")) == ["1"]
    assert listed(page(signed_in, "/admin/services?failing=1")) == ["2", "3"]
    assert listed(page(signed_in, "/admin/services?failing=1&upstream=sandbox")) == ["3"]

    first = page(signed_in, "/admin/services")
    assert len(listed(first)) == 50 and "Page 1 of 2" in first and "59 services" in first
    second = page(signed_in, "/admin/services?page=2")
    assert listed(second) == [f"bulk{n:02d}" for n in range(46, 55)]
    assert signed_in.get("/admin/services?status=gone").status_code == 400
    assert signed_in.get("/admin/services?q=" + "x" * 300).status_code == 400
    assert signed_in.get("/admin/services?page=zero").status_code == 400


def test_counts_stop_at_a_limit_and_the_pager_still_moves_on(signed_in, runtime, monkeypatch):
    from provisioner.console import views
    monkeypatch.setattr(views, "COUNT_LIMIT", 10)
    monkeypatch.setattr(views, "PER_PAGE", 4)
    with runtime.db.transaction() as s:
        for n in range(13):
            add_service(s, f"c{n:02d}", minutes=n)
        add_service(s, "other:77", source="other", billing_id="77", domain="other.example", minutes=20)
    first = page(signed_in, "/admin/services")
    assert "More than 10 services" in first and 'rel="next"' in first and "Page 1</span>" in first
    last = page(signed_in, "/admin/services?page=4")
    assert listed(last) == ["c12", "77"] and 'rel="next"' not in last
    # a bare billing id finds a service of a configured source; an unconfigured one by its key
    assert listed(page(signed_in, "/admin/services?q=c03")) == ["c03"]
    assert listed(page(signed_in, "/admin/services?q=other:77")) == ["77"]


def test_service_page_shows_state_usage_events_jobs_and_attempts(signed_in, runtime):
    with runtime.db.transaction() as s:
        add_service(s, "500", domain="page.example", limits={"mailboxes": 5, "aliases": 10},
                    observed_status="active", usage={"mailboxes": 4, "aliases": 1},
                    observed={"status": "active", "domain": "page.example", "limits": {"mailboxes": 3}})
        event = add_event(s, "500", type_="service.upgrade")
        add_job(s, "500", state=JobState.FAILED, event_id=event.id, attempts=2,
                error=("upstream_error", "The e-mail platform is unavailable"))
    html = page(signed_in, "/admin/services/500")
    assert "Desired and observed" in html and 'class="drift"' in html            # 5 wanted, 3 seen
    assert "4 of 5" in html and "1 of 10" in html
    assert "service.upgrade" in html
    assert html.count("sandbox create: HTTP 503") == 2                             # operator detail per attempt
    assert "The e-mail platform is unavailable" in html
    assert signed_in.get("/admin/services/nope").status_code == 404


# --- jobs ---------------------------------------------------------------------------------------------

def test_jobs_failed_first_retry_one_and_bulk_retry(signed_in, runtime):
    with runtime.db.transaction() as s:
        add_service(s, "1")
        add_service(s, "2", upstream="wrong-key")
        ok = add_job(s, "1", state=JobState.SUCCEEDED, minutes=30).id
        retrying = add_job(s, "1", state=JobState.RETRYING, minutes=20, attempts=1, error=("rate_limited", "x")).id
        failed_a = add_job(s, "1", state=JobState.FAILED, minutes=1, attempts=3, error=("upstream_error", "x")).id
        failed_b = add_job(s, "2", state=JobState.FAILED, minutes=2, attempts=3, error=("upstream_error", "x")).id
        failed_c = add_job(s, "2", state=JobState.FAILED, minutes=3, attempts=3, error=("auth_failed", "x")).id

    html = page(signed_in, "/admin/jobs")
    order = [m for m in re.findall(r"#job-([0-9a-f]{32})", html)]
    assert order == [failed_c, failed_b, failed_a, retrying, ok]
    assert "upstream_error</a> (2)" in html
    filtered = page(signed_in, "/admin/jobs?upstream=wrong-key&error_code=upstream_error")
    assert re.findall(r"#job-([0-9a-f]{32})", filtered) == [failed_b]
    assert signed_in.get("/admin/jobs?state=bogus").status_code == 400

    # one
    token = CSRF_RE.search(html).group(1)
    response = signed_in.post(f"/admin/jobs/{failed_a}/retry", data={"csrf_token": token, "next": "/admin/jobs"})
    assert response.status_code == 303 and "done=retry" in response.headers["Location"]
    assert _job(runtime, failed_a).state == JobState.QUEUED
    assert signed_in.post(f"/admin/jobs/{ok}/retry", data={"csrf_token": token}).status_code == 409
    assert signed_in.post("/admin/jobs/" + "0" * 32 + "/retry", data={"csrf_token": token}).status_code == 404

    # many, after a confirmation that says how many
    confirm = page(signed_in, "/admin/jobs/retry-failed?upstream=wrong-key")
    assert "Retry 2 failed jobs?" in confirm
    response = signed_in.post("/admin/jobs/retry-failed",
                              data={"csrf_token": token, "upstream": "wrong-key"})
    assert response.status_code == 303
    notice = page(signed_in, response.headers["Location"])
    assert "2 failed job(s) were queued again." in notice
    assert {_job(runtime, j).state for j in (failed_b, failed_c)} == {JobState.QUEUED}
    assert _job(runtime, retrying).state == JobState.RETRYING
    actions = _actions(runtime)
    assert [a.action for a in actions] == ["retry", "bulk_retry", "bulk_retry"]
    assert all(a.actor == "ops-alice" and a.via == "console" for a in actions)
    assert "Retry 0 failed jobs?" in page(signed_in, "/admin/jobs/retry-failed?upstream=wrong-key")


# --- service actions -------------------------------------------------------------------------------------

def test_suspend_and_unsuspend_with_a_reason_are_recorded_and_shown(signed_in, runtime, admin_key):
    with runtime.db.transaction() as s:
        add_service(s, "700", domain="act.example")
    token = csrf_of(signed_in, "/admin/services/700")
    response = signed_in.post("/admin/services/700/suspend", data={"csrf_token": token, "reason": "  "})
    assert response.status_code == 422 and "Give a reason" in response.get_data(as_text=True)
    assert _service(runtime, "700").desired_status == "active"

    response = signed_in.post("/admin/services/700/suspend", data={"csrf_token": token, "reason": "Spam complaint"})
    assert response.status_code == 303 and response.headers["Location"] == "/admin/services/700?done=suspend"
    svc = _service(runtime, "700")
    assert (svc.desired_status, svc.suspended_by, svc.suspend_reason) == ("suspended", "operator", "Spam complaint")
    with runtime.db.read() as s:
        job = s.execute(select(Job).where(Job.service_id == "700")).scalar_one()
    assert job.reason == "operator:suspend" and job.state == JobState.QUEUED

    html = page(signed_in, "/admin/services/700?done=suspend")
    assert "suspended by an operator" in html
    assert f"ops-alice ({admin_key[:10]}…) via console" in html and "Spam complaint" in html
    assert admin_key not in html

    response = signed_in.post("/admin/services/700/unsuspend", data={"csrf_token": token, "reason": "Resolved"})
    assert response.status_code == 303
    assert _service(runtime, "700").desired_status == "active"
    response = signed_in.post("/admin/services/700/converge", data={"csrf_token": token})
    assert response.status_code == 303
    actions = _actions(runtime)
    assert [(a.action, a.reason, a.service_id, a.key_prefix) for a in actions] == [
        ("suspend", "Spam complaint", "700", admin_key[:10]), ("unsuspend", "Resolved", "700", admin_key[:10]),
        ("converge", None, "700", admin_key[:10])]
    assert all(a.job_id for a in actions)


def test_api_operator_actions_show_on_the_console_too(signed_in, runtime, admin_key):
    with runtime.db.transaction() as s:
        add_service(s, "710")
    response = signed_in.post("/api/v1/services/710/suspend", json={"reason": "From a script"},
                              headers={"Authorization": f"Bearer {admin_key}"})
    assert response.status_code == 202
    html = page(signed_in, "/admin/services/710")
    assert "via api" in html and "From a script" in html


# --- terminations waiting for an operator ---------------------------------------------------------------

def test_terminations_confirm_and_refuse(signed_in, runtime):
    long_ago = utcnow() - dt.timedelta(days=40)
    with runtime.db.transaction() as s:
        for sid in ("801", "802"):
            add_service(s, sid, domain=f"t{sid}.example", desired_status="suspended", suspended_by="scheduler",
                        suspend_reason="overdue", suspended_at=long_ago)
        add_service(s, "803", desired_status="suspended", suspended_by="operator", suspend_reason="abuse",
                    suspended_at=long_ago)
    html = page(signed_in, "/admin/terminations")
    assert "t801.example" in html and "t802.example" in html and "d803.example" not in html
    token = CSRF_RE.search(html).group(1)

    wrong = signed_in.post("/admin/services/801/terminate", data={"csrf_token": token, "confirm": "802"})
    assert wrong.status_code == 422 and _service(runtime, "801").desired_status == "suspended"
    response = signed_in.post("/admin/services/801/terminate",
                              data={"csrf_token": token, "confirm": "801", "next": "/admin/terminations"})
    assert response.status_code == 303 and response.headers["Location"].startswith("/admin/terminations")
    assert _service(runtime, "801").desired_status == "terminated"

    response = signed_in.post("/admin/services/802/refuse-termination",
                              data={"csrf_token": token, "reason": "Customer is paying", "next": "/admin/terminations"})
    assert response.status_code == 303
    svc = _service(runtime, "802")
    assert (svc.desired_status, svc.suspended_by) == ("suspended", "operator")
    assert "Customer is paying" in svc.suspend_reason
    after = page(signed_in, "/admin/terminations")
    assert "t801.example" not in after and "t802.example" not in after
    assert [a.action for a in _actions(runtime)] == ["terminate", "refuse_termination"]


def test_open_the_client_area_as_the_customer(signed_in, runtime):
    with runtime.db.transaction() as s:
        add_service(s, "720", domain="cust.example")
    token = csrf_of(signed_in, "/admin/services/720")
    response = signed_in.post("/admin/services/720/client-area", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].startswith("/client/sso/")
    landing = signed_in.get(response.headers["Location"])
    assert landing.status_code == 303 and landing.headers["Location"].endswith("/client/")
    assert [(a.action, a.service_id) for a in _actions(runtime)] == [("client_sso", "720")]
    assert "client_sso" in page(signed_in, "/admin/services/720")


# --- the overview ----------------------------------------------------------------------------------------

def _recent(session, sid: str, *, source: str, upstream: str, outcomes: list[str], ms: int, state: str,
            code: str | None = None) -> None:
    now = utcnow()
    session.add(Event(webhook_id=f"msg-{sid}", source=source, body_digest="0" * 64, type="service.create",
                      service_id=sid, occurred_at=now, received_at=now - dt.timedelta(minutes=5), payload={},
                      outcome="applied"))
    job = Job(service_id=sid, reason="service.create", state=state, attempts=len(outcomes), max_attempts=3,
              error_code=code, error_message="The e-mail platform is unavailable." if code else None,
              created_at=now - dt.timedelta(minutes=5))
    session.add(job)
    session.flush()
    for number, outcome in enumerate(outcomes, 1):
        started = now - dt.timedelta(minutes=4)
        session.add(JobAttempt(job_id=job.id, number=number, worker="w", started_at=started,
                               finished_at=started + dt.timedelta(milliseconds=ms), outcome=outcome,
                               error_code=code if outcome != "succeeded" else None))


def test_overview_counts_failures_and_upstream_health_within_the_key_reach(client, runtime):
    with runtime.db.transaction() as s:
        add_service(s, "alpha:1", source="alpha", billing_id="1")
        add_service(s, "alpha:2", source="alpha", billing_id="2", upstream="wrong-key")
        add_service(s, "beta:1", source="beta", billing_id="1", upstream="wrong-key")
        _recent(s, "alpha:1", source="alpha", upstream="sandbox", outcomes=["succeeded"], ms=120,
                state=JobState.SUCCEEDED)
        _recent(s, "alpha:2", source="alpha", upstream="wrong-key", outcomes=["retrying", "failed"], ms=900,
                state=JobState.FAILED, code="auth_failed")
        _recent(s, "beta:1", source="beta", upstream="wrong-key", outcomes=["retrying", "retrying", "failed"],
                ms=50, state=JobState.FAILED, code="auth_failed")

    assert sign_in(client, make_key(runtime, "read")).status_code == 303
    html = page(client, "/admin/")
    assert "Overview" in html and "<svg" in html
    # every source: 3 hooks, 6 attempts of which 5 failed or were retried
    assert re.search(r"Last hour</th><td[^>]*>3</td><td[^>]*>6</td>\s*<td[^>]*>5 \(83.3 %\)", html), html
    assert "auth_failed" in html and 'href="/admin/jobs?upstream=wrong-key&amp;error_code=auth_failed">2</a>' in html
    assert re.search(r"wrong-key</td><td[^>]*>5</td>\s*<td[^>]*>100.0 %", html)
    assert re.search(r"sandbox</td><td[^>]*>1</td>\s*<td[^>]*>0.0 %</td>\s*<td[^>]*>120 ms", html)

    scoped = app_client_signed_in(client, runtime, "alpha")
    html = page(scoped, "/admin/")
    assert re.search(r"Last hour</th><td[^>]*>2</td><td[^>]*>3</td>\s*<td[^>]*>2 \(66.7 %\)", html), html
    assert 'error_code=auth_failed">1</a>' in html
    assert re.search(r"wrong-key</td><td[^>]*>2</td>\s*<td[^>]*>100.0 %</td>\s*<td[^>]*>900 ms", html)


def app_client_signed_in(client, runtime, source: str):
    fresh = client.application.test_client()
    assert sign_in(fresh, make_key(runtime, "read", source)).status_code == 303
    return fresh


# --- reconcile passes --------------------------------------------------------------------------------------

def _wait_for_runs(runtime, timeout: float = 20.0) -> None:
    import time
    from provisioner.models import ReconcileRun
    deadline = time.monotonic() + timeout
    while True:
        with runtime.db.read() as s:
            states = list(s.execute(select(ReconcileRun.state)).scalars())
        if states and "running" not in states:
            return
        assert time.monotonic() < deadline, states
        time.sleep(0.05)


def test_start_a_dry_run_and_read_its_report(signed_in, runtime):
    with runtime.db.transaction() as s:
        add_service(s, "900", domain="drift.example", upstream_id="acct-missing", observed_status="active")
    html = page(signed_in, "/admin/reconcile")
    assert "No reconcile pass yet." in html
    token = CSRF_RE.search(html).group(1)

    refused = signed_in.post("/admin/reconcile", data={"csrf_token": token, "mode": "real"})
    assert refused.status_code == 422 and "tick the box" in refused.get_data(as_text=True)

    response = signed_in.post("/admin/reconcile", data={"csrf_token": token, "mode": "dry"})
    assert response.status_code == 303 and "/admin/reconcile/" in response.headers["Location"]
    _wait_for_runs(runtime)
    report = page(signed_in, response.headers["Location"])
    assert "(dry run)" in report and "finished" in report
    assert 'href="/admin/services/900"' in report              # the service the pass found something about
    assert "sandbox" in report                                  # calls per upstream
    listing = page(signed_in, "/admin/reconcile")
    assert "(dry run)" in listing
    assert [(a.action, a.reason) for a in _actions(runtime)] == [("reconcile", "dry run")]


# --- callbacks ---------------------------------------------------------------------------------------------

def test_callbacks_listed_on_their_page_and_the_service_page_and_a_failed_one_requeued(signed_in, runtime):
    from provisioner.models import Notification
    with runtime.db.transaction() as s:
        add_service(s, "950")
        failed = _callback(s, "950", "default")
        delivered = _callback(s, "950", "default", state="delivered")
    html = page(signed_in, "/admin/callbacks?state=failed")
    assert failed in html and delivered not in html and "HTTP 500" in html
    assert "job.failed" in page(signed_in, "/admin/services/950")
    token = CSRF_RE.search(html).group(1)
    response = signed_in.post(f"/admin/callbacks/{failed}/requeue",
                              data={"csrf_token": token, "next": "/admin/services/950"})
    assert response.status_code == 303 and response.headers["Location"].startswith("/admin/services/950?done=requeue")
    with runtime.db.read() as s:
        assert s.get(Notification, failed).state == "pending"
    assert signed_in.post(f"/admin/callbacks/{delivered}/requeue", data={"csrf_token": token}).status_code == 409
    assert [(a.action, a.service_id) for a in _actions(runtime)] == [("requeue_callback", "950")]
    assert signed_in.get("/admin/callbacks?state=lost").status_code == 400


# --- API keys ----------------------------------------------------------------------------------------------

def test_keys_created_once_listed_and_revoked_only_by_an_every_source_key(signed_in, client, runtime, admin_key):
    html = page(signed_in, "/admin/keys")
    assert "ops-alice" in html and "this session" in html
    token = CSRF_RE.search(html).group(1)
    bad = signed_in.post("/admin/keys", data={"csrf_token": token, "name": "", "scope": "root", "source": "nowhere"})
    assert bad.status_code == 422
    assert all(m in bad.get_data(as_text=True) for m in ("Name the key", "One of admin, read", "configured billing"))

    response = signed_in.post("/admin/keys", data={"csrf_token": token, "name": "whmcs-eu", "scope": "read",
                                                   "source": "default"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "private, no-store"
    secret = re.search(r'<code class="secret">([^<]+)</code>', response.get_data(as_text=True)).group(1)
    assert secret not in page(signed_in, "/admin/keys")                        # shown once
    with runtime.db.read() as s:
        assert apikeys.authenticate(s, secret).scope == "read"

    # the new key is source-scoped: it may not even look at the keys
    scoped = client.application.test_client()
    assert sign_in(scoped, secret).status_code == 303
    assert scoped.get("/admin/keys").status_code == 403

    with runtime.db.read() as s:
        new_id = apikeys.authenticate(s, secret).id
    assert signed_in.post(f"/admin/keys/{new_id}/revoke", data={"csrf_token": token}).status_code == 303
    assert scoped.get("/admin/services").status_code == 303                    # its session ended
    assert signed_in.post(f"/admin/keys/{new_id}/revoke", data={"csrf_token": token}).status_code == 409
    assert signed_in.post("/admin/keys/999999/revoke", data={"csrf_token": token}).status_code == 404
    assert [a.action for a in _actions(runtime)] == ["create_key", "revoke_key"]
    assert secret not in " ".join(a.reason or "" for a in _actions(runtime))


# --- signing in by a single-use link -------------------------------------------------------------------------

def test_a_sign_in_link_opens_one_session_as_the_key_that_asked(app, runtime):
    from urllib.parse import urlsplit
    from provisioner.models import ConsoleSsoToken
    with runtime.db.transaction() as s:
        add_service(s, "alpha:1", source="alpha", billing_id="1", domain="mine.example")
        add_service(s, "beta:1", source="beta", billing_id="1", domain="theirs.example", minutes=1)
    key = make_key(runtime, "admin", "alpha", name="whmcs-alpha")
    api = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    response = api.post("/api/v1/console/sso", json={"path": "/admin/services?q=mine"}, headers=auth)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    url = response.get_json()["url"]
    assert url.startswith(runtime.settings.public_url.rstrip("/") + "/admin/sso/")
    path = urlsplit(url).path

    browser = app.test_client()
    landing = browser.get(path)
    assert landing.status_code == 303 and landing.headers["Location"] == "/admin/services?q=mine"
    html = page(browser, "/admin/services")
    assert "whmcs-alpha" in html and "mine.example" in html and "theirs.example" not in html

    again = app.test_client().get(path)                          # single use
    assert again.status_code == 401 and "works once" in again.get_data(as_text=True)
    assert app.test_client().get("/admin/sso/not-a-token").status_code == 401
    with runtime.db.read() as s:
        assert s.execute(select(ConsoleSsoToken.token_hash)).scalar_one() != path.rsplit("/", 1)[1]

    # expired links, other sites as landing places, read keys
    response = api.post("/api/v1/console/sso", headers=auth)
    with runtime.db.transaction() as s:
        s.execute(update(ConsoleSsoToken).where(ConsoleSsoToken.used_at.is_(None))
                  .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    assert app.test_client().get(urlsplit(response.get_json()["url"]).path).status_code == 401
    for bad in ("https://evil.example/admin/", "//evil.example/", "/client/"):
        refused = api.post("/api/v1/console/sso", json={"path": bad}, headers=auth)
        assert refused.status_code == 400 and "path" in refused.get_json()["error"]["fields"], bad
    read = make_key(runtime, "read")
    assert api.post("/api/v1/console/sso", headers={"Authorization": f"Bearer {read}"}).status_code == 403
    assert api.post("/api/v1/console/sso").status_code == 401

    # a link of a key revoked before it is opened opens nothing
    response = api.post("/api/v1/console/sso", headers=auth)
    with runtime.db.transaction() as s:
        apikeys.revoke_api_key(s, key[:10])
    assert app.test_client().get(urlsplit(response.get_json()["url"]).path).status_code == 401


# --- upstreams and products ---------------------------------------------------------------------------------

def test_upstreams_products_connection_test_and_no_secrets(signed_in, runtime):
    from tests.integration.test_admin_api import SIM_KEY
    html = page(signed_in, "/admin/upstreams")
    assert "sandbox" in html and "wrong-key" in html and "business-mail" in html and "Total Mailboxes" in html
    assert SIM_KEY not in html and "not-the-key" not in html
    ok = page(signed_in, "/admin/upstreams/sandbox/test")
    assert "the connection and the credentials work" in ok
    bad = page(signed_in, "/admin/upstreams/wrong-key/test")
    assert "alert-error" in bad and "not-the-key" not in bad and SIM_KEY not in bad
    assert signed_in.get("/admin/upstreams/nowhere/test").status_code == 404
    assert signed_in.get("/admin/upstreams/sandbox/pricing").status_code == 409   # the sandbox has no prices


def test_drifted_services_and_jobs_by_age(signed_in, runtime):
    with runtime.db.transaction() as s:
        add_service(s, "d1", observed_status="active")                               # as desired
        add_service(s, "d2", observed_status="suspended", minutes=1)                 # active wanted
        add_service(s, "d3", desired_status="suspended", observed_status="active", minutes=2)
        add_service(s, "d4", desired_status="terminated", observed_status="deleted", minutes=3)
        add_service(s, "d5", minutes=4)                                              # never seen upstream
        old = add_job(s, "d1", state=JobState.FAILED, attempts=1, error=("upstream_error", "x")).id   # T0
        new = Job(service_id="d2", reason="retry", state=JobState.FAILED, attempts=1, max_attempts=1,
                  error_code="upstream_error", created_at=utcnow() - dt.timedelta(minutes=10))
        s.add(new)
        s.flush()
        new = new.id
    assert listed(page(signed_in, "/admin/services?drifted=1")) == ["d2", "d3"]
    recent = page(signed_in, "/admin/jobs?age=hour")
    assert new in recent and old not in recent
    assert signed_in.get("/admin/jobs?age=year").status_code == 400
    assert "Retry 1 failed job?" in page(signed_in, "/admin/jobs/retry-failed?age=day")
    token = CSRF_RE.search(recent).group(1)
    response = signed_in.post("/admin/jobs/retry-failed", data={"csrf_token": token, "age": "day"})
    assert response.status_code == 303 and "age=day" in response.headers["Location"]
    assert _job(runtime, new).state == JobState.QUEUED and _job(runtime, old).state == JobState.FAILED
