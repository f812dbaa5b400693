"""The client area in a real browser: Debian's chromium driven by Playwright.

The app runs in-process on a werkzeug server in a thread, over real HTTP on
127.0.0.1, with the sandbox and Qboxmail simulators in-process too; services are
created by signed hooks and drained by an in-process worker. The customer signs
in through the real SSO link, adds a mailbox, an alias and a distribution list
with the forms, hits the mailbox limit and reads the message, and uses the DNS,
device set-up and SMTP relay pages. Every page is also checked on a phone-sized
viewport (nothing wider than the screen).

A failed test leaves a screenshot and the page's HTML in ``test-artifacts/``
(a ``pytest_runtest_makereport`` hook registered by the ``browser`` fixture of
``tests/browser/browsing.py``, shared with the console's browser test).

Chromium is ``/usr/bin/chromium`` (``apt-get install chromium``); Playwright is
never asked to download a browser of its own. Without either the tests are
skipped with the reason, except under ``CI=true``, where they fail.
"""
from __future__ import annotations

import datetime as dt
import json
import plistlib
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from provisioner import apikeys
from provisioner.models import Job, Service
from provisioner.simulators.qboxmail import add_months
from tests.browser.browsing import _shot, assert_fits_a_phone
from tests.helpers import event_body
# The app on the sandbox and Qboxmail simulators with a local DNS server, as the extras'
# integration tests build it.
from tests.integration.test_client_extras import app, local_dns, qbox_sim, runtime  # noqa: F401

pytestmark = pytest.mark.e2e

FINISHED = ("succeeded", "failed", "skipped")
PASSWORD = "Browser-Mailbox-Pw-42"

SANDBOX, SANDBOX_DOMAIN = "8001", "browser-sandbox.example"
HOSTING, HOSTING_DOMAIN = "8002", "browser-hosting.example"
RELAY, RELAY_DOMAIN = "8003", "browser-relay.example"
SANDBOX_OPTIONS = {"Total Mailboxes": 1, "Mailbox Quota (GB)": 5, "Total Aliases": 2,
                   "Total Distribution Lists": 1}


@pytest.fixture
def admin_key(runtime) -> str:
    with runtime.db.transaction() as session:
        return apikeys.create_api_key(session, "billing", "admin")[1]


def _hook(client, signer, body: dict) -> None:
    raw = json.dumps(body)
    r = client.post("/hooks/v1/events", data=raw, headers=signer.headers(raw))
    assert r.status_code in (200, 202), r.get_json()


def _run_jobs(worker, runtime, service_id: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        worker.drain()
        with runtime.db.read() as s:
            jobs = list(s.execute(select(Job).where(Job.service_id == service_id)).scalars())
        if jobs and all(j.state in FINISHED for j in jobs):
            assert jobs[-1].state == "succeeded", (jobs[-1].error_code, jobs[-1].error_message)
            return
        assert time.monotonic() < deadline, [(j.reason, j.state, j.error_code) for j in jobs]
        time.sleep(0.05)


def _service(runtime, service_id: str) -> Service:
    with runtime.db.read() as s:
        return s.get(Service, service_id)


@pytest.fixture
def make_service(app, signer, worker, runtime, qbox_sim):
    client = app.test_client()

    def make(kind: str) -> Service:
        if kind == "sandbox":
            _hook(client, signer, event_body("service.create", SANDBOX, domain=SANDBOX_DOMAIN, product_id="12",
                                             options=SANDBOX_OPTIONS))
            _run_jobs(worker, runtime, SANDBOX)
            return _service(runtime, SANDBOX)
        if kind == "hosting":
            _hook(client, signer, event_body("service.create", HOSTING, domain=HOSTING_DOMAIN, product_id="50",
                                             options={"Plan": "basic", "Total Mailboxes": 5,
                                                      "Mailbox Quota (GB)": 8}))
            worker.drain()
            svc = _service(runtime, HOSTING)
            requests.post(f"{qbox_sim.url}/_sim/mutate", json={"account_id": svc.upstream_id, "status": "active"},
                          timeout=5).raise_for_status()
            _run_jobs(worker, runtime, HOSTING)
            return _service(runtime, HOSTING)
        _hook(client, signer, event_body(
            "service.create", RELAY, domain=RELAY_DOMAIN, product_id="51", billing_cycle="annually",
            options={"Sending Type": "transactional", "Messages": 20000, "Sender Domains": 1},
            next_due_date=add_months(dt.date.today(), 12).isoformat()))
        _run_jobs(worker, runtime, RELAY)
        return _service(runtime, RELAY)

    return make


def sign_in(page, live_url: str, admin_key: str, service_id: str) -> None:
    """What the billing system does: ask for a link, send the customer's browser there."""
    r = requests.post(f"{live_url}/api/v1/services/{service_id}/sso",
                      headers={"Authorization": f"Bearer {admin_key}"}, timeout=10)
    assert r.status_code == 200, r.text
    page.goto(live_url + urlsplit(r.json()["url"]).path)
    assert urlsplit(page.url).path == "/client/"


# --- the tests ------------------------------------------------------------------------------------

def test_mailbox_alias_and_list_through_the_ui_and_a_limit(page, live_url, admin_key, make_service):
    make_service("sandbox")
    sign_in(page, live_url, admin_key, SANDBOX)
    assert page.get_by_role("heading", level=1).inner_text() == SANDBOX_DOMAIN

    # a mailbox
    page.get_by_role("navigation", name="Client area").get_by_role("link", name="Mailboxes").click()
    page.get_by_role("link", name="Add a mailbox").click()
    page.get_by_label("Address").fill("anna")
    page.get_by_label("Owner's name").fill("Anna Example")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Add the mailbox").click()
    page.get_by_text(f"Mailbox anna@{SANDBOX_DOMAIN} was added.").wait_for()
    assert page.get_by_role("cell", name=f"anna@{SANDBOX_DOMAIN}", exact=True).is_visible()

    # the plan has one mailbox: the second is refused with the reason, next to the form
    page.goto(f"{live_url}/client/mailboxes/new")
    page.get_by_label("Address").fill("bert")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Add the mailbox").click()
    message = page.get_by_role("alert").filter(has_text="You have used the 1 mailbox of your plan")
    message.wait_for()
    assert message.is_visible()

    # an alias
    page.get_by_role("navigation", name="Client area").get_by_role("link", name="Aliases").click()
    page.get_by_label("Alias address").fill("sales")
    page.get_by_label("Forward to").fill(f"anna@{SANDBOX_DOMAIN}")
    page.get_by_role("button", name="Add the alias").click()
    page.get_by_text(f"Alias sales@{SANDBOX_DOMAIN} was added.").wait_for()

    # a distribution list
    page.get_by_role("navigation", name="Client area").get_by_role("link", name="Lists").click()
    page.get_by_role("link", name="Add a list").click()
    page.get_by_label("List address").fill("team")
    page.get_by_label("Members").fill(f"anna@{SANDBOX_DOMAIN}\nbert@example.org")
    page.get_by_role("button", name="Add the list").click()
    page.get_by_text(f"Distribution list team@{SANDBOX_DOMAIN} was added.").wait_for()
    assert page.get_by_text("bert@example.org").is_visible()

    for path in ("/client/", "/client/mailboxes", "/client/mailboxes/new", "/client/aliases", "/client/lists",
                 "/client/devices"):
        assert_fits_a_phone(page, live_url + path)


def test_dns_check_and_device_setup_in_the_browser(page, live_url, admin_key, make_service, local_dns):
    svc = make_service("hosting")
    sign_in(page, live_url, admin_key, HOSTING)
    [mx] = [r for r in svc.observed["dns_records"] if r["type"] == "MX" and r["priority"] == 10]
    local_dns.add(HOSTING_DOMAIN, "MX", f"10 {mx['value']}.")

    page.get_by_role("navigation", name="Client area").get_by_role("link", name="DNS records").click()
    card = page.get_by_role("listitem").filter(has_text=mx["value"]).filter(has_text="MX record")
    card.get_by_role("button", name=re.compile("Check now")).click()
    card = page.get_by_role("listitem").filter(has_text=mx["value"]).filter(has_text="MX record")
    card.get_by_text("Found.").wait_for()
    page.get_by_role("button", name="Check all records now").click()
    page.get_by_text("Not right yet.").first.wait_for()        # SPF and DKIM are not published
    _shot(page, f"{live_url}/client/dns/checked", "desktop")
    assert_fits_a_phone(page, f"{live_url}/client/dns")

    # a mailbox, then its device set-up
    page.goto(f"{live_url}/client/mailboxes/new")
    page.get_by_label("Address").fill("carla")
    page.get_by_label("Owner's name").fill("Carla Example")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Add the mailbox").click()
    page.get_by_text(f"Mailbox carla@{HOSTING_DOMAIN} was added.").wait_for()

    page.get_by_role("navigation", name="Client area").get_by_role("link", name="Device set-up").click()
    page.get_by_role("link", name=f"Settings for carla@{HOSTING_DOMAIN}").click()
    page.get_by_role("heading", name=f"Set up carla@{HOSTING_DOMAIN}").wait_for()
    assert page.get_by_role("cell", name="imap.qboxmail.com", exact=True).is_visible()
    with page.expect_download() as download_info:
        page.get_by_role("link", name=f"Download the profile for carla@{HOSTING_DOMAIN}").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".mobileconfig")
    profile = plistlib.loads(Path(download.path()).read_bytes())
    [mail] = profile["PayloadContent"]
    assert mail["IncomingMailServerHostName"] == "imap.qboxmail.com"
    assert mail["EmailAddress"] == f"carla@{HOSTING_DOMAIN}"
    assert_fits_a_phone(page, page.url)


def test_relay_password_once_and_domain_limit_in_the_browser(page, live_url, admin_key, make_service):
    make_service("relay")
    sign_in(page, live_url, admin_key, RELAY)
    page.get_by_role("navigation", name="Client area").get_by_role("link", name="SMTP relay").click()
    page.get_by_role("heading", name="SMTP relay").wait_for()

    page.get_by_role("button", name="Create a new password").click()
    page.get_by_text("Tick the box to confirm").wait_for()
    page.get_by_label("I understand that the current password stops working").check()
    page.get_by_role("button", name="Create a new password").click()
    secret = page.locator("code.secret")
    secret.wait_for()
    password = secret.inner_text()
    _shot(page, f"{live_url}/client/relay/new-password", "desktop")
    assert len(password) >= 8
    page.reload()                                               # a reload (GET) never shows it again
    assert password not in page.content()

    page.get_by_label("Add a sender domain").fill("shop.example.org")
    page.get_by_role("button", name="Add the domain").click()
    page.get_by_text("The sender domain was added.").wait_for()
    page.get_by_label("Add a sender domain").fill("news.example.org")
    page.get_by_role("button", name="Add the domain").click()
    page.get_by_text("allows 1 sender domain and all are in use").wait_for()
    page.get_by_label("IP addresses or networks").fill("not-an-ip")
    page.get_by_role("button", name="Save the IP addresses").click()
    page.get_by_text("Not an IP address or network: not-an-ip").wait_for()
    _shot(page, f"{live_url}/client/relay/errors", "desktop")
    assert_fits_a_phone(page, f"{live_url}/client/relay")
