"""Client-area extras (DNS records, device set-up, SMTP relay) through the Flask test client.

Sessions come from the real SSO flow: an admin API key asks ``POST
/api/v1/services/{id}/sso`` for a link and the test client opens it. Services are
created by signed hooks and the worker against the Qboxmail simulator (hosting and
relay); DNS checks go to a tiny DNS server on 127.0.0.1 (tests/unit/test_dns_check.py).
"""
from __future__ import annotations

import datetime as dt
import json
import plistlib
import time
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import pytest
import requests
from sqlalchemy import select

from provisioner import apikeys
from provisioner.client import extras
from provisioner.devsetup import dev_products_env
from provisioner.models import DesiredStatus, Job, Service
from provisioner.products import load_catalog
from provisioner.runtime import Runtime
from provisioner.simulators.qboxmail import add_months, check_password, create_app as create_qbox_app
from provisioner.simulators.server import SimulatorServer
from tests.helpers import event_body, table_dump
from tests.unit.test_dns_check import LocalDns

HOSTING, HOSTING_DOMAIN = "7001", "extras-hosting.example"
OTHER, OTHER_DOMAIN = "7002", "extras-other.example"
RELAY, RELAY_DOMAIN = "7101", "extras-relay.example"
RC, RC_DOMAIN = "7201", "extras-ee.example"
HOSTING_OPTIONS = {"Plan": "basic", "Total Mailboxes": 5, "Mailbox Quota (GB)": 8}
RELAY_OPTIONS = {"Sending Type": "transactional", "Messages": 20000, "Sender Domains": 2}
FINISHED = ("succeeded", "failed", "skipped")
PASSWORD = "Strong-Mailbox-Pw-2026"


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def qbox_sim():
    server = SimulatorServer(create_qbox_app()).start()
    yield server
    server.stop()


@pytest.fixture
def runtime(settings, sandbox_sim, qbox_sim):
    env = dev_products_env({"sandbox": sandbox_sim.url, "qboxmail": qbox_sim.url})
    rt = Runtime(settings, catalog=load_catalog(settings.products_dir, environ=env))
    yield rt
    rt.close()


@pytest.fixture
def local_dns():
    server = LocalDns().start()
    yield server
    server.stop()


@pytest.fixture
def app(runtime, local_dns):
    from provisioner import create_app
    app = create_app(runtime=runtime)  # the client area and its extras included
    app.config["CLIENT_DNS_NAMESERVERS"] = local_dns.address
    app.config["CLIENT_DNS_TIMEOUT"] = 1.0
    return app


@pytest.fixture
def admin_key(runtime) -> str:
    with runtime.db.transaction() as session:
        return apikeys.create_api_key(session, "billing", "admin")[1]


def post_hook(client, signer, body: dict) -> None:
    raw = json.dumps(body)
    r = client.post("/hooks/v1/events", data=raw, headers=signer.headers(raw))
    assert r.status_code in (200, 202), r.get_json()


def get_service(runtime, service_id: str) -> Service:
    with runtime.db.read() as s:
        return s.get(Service, service_id)


def run_jobs(worker, runtime, service_id: str, timeout: float = 15.0) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        worker.drain()
        with runtime.db.read() as s:
            jobs = list(s.execute(select(Job).where(Job.service_id == service_id)
                                  .order_by(Job.created_at)).scalars())
        if jobs and all(j.state in FINISHED for j in jobs):
            return jobs[-1]
        assert time.monotonic() < deadline, [(j.reason, j.state, j.error_code) for j in jobs]
        time.sleep(0.05)


def sim_mutate(sim, account_id: str, **changes) -> None:
    requests.post(f"{sim.url}/_sim/mutate", json={"account_id": account_id, **changes},
                  timeout=5).raise_for_status()


def sim_account(sim, account_id: str) -> dict:
    accounts = requests.get(f"{sim.url}/_sim/state", timeout=5).json()["accounts"]
    [account] = [a for a in accounts if a["id"] == account_id]
    return account


def make_hosting(client, signer, worker, runtime, qbox_sim, service_id=HOSTING, domain=HOSTING_DOMAIN,
                 active=True) -> Service:
    post_hook(client, signer, event_body("service.create", service_id, domain=domain, product_id="50",
                                         options=HOSTING_OPTIONS))
    worker.drain()
    svc = get_service(runtime, service_id)
    assert svc.upstream_id, "the domain was not created"
    if active:
        sim_mutate(qbox_sim, svc.upstream_id, status="active")
        assert run_jobs(worker, runtime, service_id).state == "succeeded"
    return get_service(runtime, service_id)


def make_relay(client, signer, worker, runtime) -> Service:
    post_hook(client, signer, event_body(
        "service.create", RELAY, domain=RELAY_DOMAIN, product_id="51", options=RELAY_OPTIONS,
        billing_cycle="annually", next_due_date=add_months(dt.date.today(), 12).isoformat()))
    assert run_jobs(worker, runtime, RELAY).state == "succeeded"
    return get_service(runtime, RELAY)


def make_resellerclub_row(runtime) -> Service:
    """An Enterprise Email service as converge leaves it (its adapter lists no mailboxes)."""
    with runtime.db.transaction() as s:
        s.add(Service(id=RC, billing_product_id="20", product_key="enterprise-email-us", upstream="resellerclub",
                      domain=RC_DOMAIN, client_id="77", client={}, desired_status=DesiredStatus.ACTIVE,
                      limits={"mailboxes": 3, "region": "us", "email_product": "enterpriseemail"},
                      upstream_id="90001", observed_status="active",
                      observed={"dns_records": [
                          {"type": "CNAME", "host": f"webmail.{RC_DOMAIN}", "value": "webmail.us.sim.invalid",
                           "priority": None, "ttl": None, "purpose": "webmail"}]},
                      usage={}))
    return get_service(runtime, RC)


def sign_in(client, admin_key: str, service_id: str) -> str:
    """The real SSO flow; returns the session's CSRF token."""
    r = client.post(f"/api/v1/services/{service_id}/sso", headers={"Authorization": f"Bearer {admin_key}"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert set(body) == {"url", "expires_at"}
    opened = client.get(urlsplit(body["url"]).path)
    assert opened.status_code == 303, opened.status_code
    session = client.get("/client/api/v1/session")
    assert session.status_code == 200 and session.get_json()["service_id"] == service_id
    return session.get_json()["csrf_token"]


def api(client, method: str, path: str, csrf: str | None = None, body=None):
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    return client.open(f"/client/api/v1{path}", method=method, headers=headers,
                       json=body if body is not None else None)


# --- DNS records -------------------------------------------------------------------------------

def test_dns_records_list_and_check_now(app, client, signer, worker, runtime, qbox_sim, admin_key, local_dns):
    make_hosting(client, signer, worker, runtime, qbox_sim, active=False)
    csrf = sign_in(client, admin_key, HOSTING)

    listed = api(client, "GET", "/dns-records")
    assert listed.status_code == 200
    items = listed.get_json()["items"]
    assert {r["type"] for r in items} >= {"MX", "TXT"}
    [ownership] = [r for r in items if r["purpose"] == "ownership check"]
    [mx] = [r for r in items if r["type"] == "MX" and r["priority"] == 10]
    assert ownership["id"] and len({r["id"] for r in items}) == len(items)

    # nothing published yet: fail, in plain words
    r = api(client, "POST", f"/dns-records/{mx['id']}/check", csrf)
    assert r.status_code == 200
    check = r.get_json()["check"]
    assert check["status"] == "fail" and check["passed"] is False and "does not exist" in check["reason"]

    # the customer publishes the records
    local_dns.add(HOSTING_DOMAIN, "MX", f"{mx['priority']} {mx['value']}.")
    local_dns.add(ownership["host"], ownership["type"],
                  ownership["value"] if ownership["type"] != "TXT" else f'"{ownership["value"]}"')
    r = api(client, "POST", f"/dns-records/{mx['id']}/check", csrf)
    assert r.get_json()["check"]["status"] == "pass", r.get_json()
    everything = api(client, "POST", "/dns-records/check", csrf).get_json()["items"]
    by_id = {item["id"]: item["check"]["status"] for item in everything}
    assert by_id[mx["id"]] == "pass" and by_id[ownership["id"]] == "pass"
    assert "fail" in by_id.values()                       # the SPF record is still missing

    # the page: list, check one with the form (CSRF field), result next to the record
    page = client.get("/client/dns")
    assert page.status_code == 200 and b"Check now" in page.data and mx["value"].encode() in page.data
    r = client.post(f"/client/dns/{mx['id']}/check", data={"csrf_token": csrf})
    assert r.status_code == 200 and b"Found." in r.data
    assert b"Not right yet" not in r.data                 # only the checked record has a result
    assert client.post(f"/client/dns/{mx['id']}/check", data={}).status_code == 403
    assert api(client, "POST", f"/dns-records/{mx['id']}/check").status_code == 403
    assert api(client, "POST", "/dns-records/0123456789abcdef/check", csrf).status_code == 404
    assert client.post("/client/dns/0123456789abcdef/check", data={"csrf_token": csrf}).status_code == 404


def test_dns_check_timeout_is_reported_not_failed(app, client, signer, worker, runtime, qbox_sim, admin_key,
                                                  local_dns):
    make_hosting(client, signer, worker, runtime, qbox_sim)
    csrf = sign_in(client, admin_key, HOSTING)
    app.config["CLIENT_DNS_TIMEOUT"] = 0.2
    with runtime.db.transaction() as s:
        row = s.get(Service, HOSTING)
        row.observed = {**row.observed, "dns_records": [
            {"type": "TXT", "host": f"timeout.{HOSTING_DOMAIN}", "value": "x", "priority": None, "ttl": None,
             "purpose": "test"}]}
    [record] = api(client, "GET", "/dns-records").get_json()["items"]
    check = api(client, "POST", f"/dns-records/{record['id']}/check", csrf).get_json()["check"]
    assert check["status"] == "error" and "try again" in check["reason"]


def test_a_custom_dkim_signature_is_offered_made_once_and_listed(app, client, signer, worker, runtime, qbox_sim,
                                                                  admin_key, local_dns):
    svc = make_hosting(client, signer, worker, runtime, qbox_sim)
    csrf = sign_in(client, admin_key, HOSTING)
    assert not [r for r in api(client, "GET", "/dns-records").get_json()["items"] if r["purpose"] == "DKIM"]
    page = client.get("/client/dns")
    assert b"Set up a custom DKIM signature" in page.data
    assert client.post("/client/dns/dkim", data={}).status_code == 403            # CSRF
    r = client.post("/client/dns/dkim", data={"csrf_token": csrf})
    assert r.status_code == 303 and "done=dkim_enabled" in r.headers["Location"]
    page = client.get(r.headers["Location"])
    assert b"A custom DKIM signature was created" in page.data
    assert b"Set up a custom DKIM signature" not in page.data                    # offered only while there is none
    [dkim] = [r for r in api(client, "GET", "/dns-records").get_json()["items"] if r["purpose"] == "DKIM"]
    native = qbox_sim.app.extensions["simulator"].domains[svc.upstream_id]
    assert (dkim["type"], dkim["host"], dkim["value"]) == (
        "TXT", f"{native.dkim_selector}._domainkey.{HOSTING_DOMAIN}", native.dkim_txt())
    assert dkim["name"] == f"{native.dkim_selector}._domainkey"
    # The JSON call answers the same record; the platform made one key only.
    again = api(client, "POST", "/dns-records/dkim", csrf)
    assert again.status_code == 201 and again.get_json() == dkim
    local_dns.add(dkim["host"], "TXT", f'"{dkim["value"]}"')
    assert api(client, "POST", f"/dns-records/{dkim['id']}/check", csrf).get_json()["check"]["status"] == "pass"


def test_dkim_is_not_offered_for_a_relay_service(app, client, signer, worker, runtime, admin_key):
    make_relay(client, signer, worker, runtime)
    csrf = sign_in(client, admin_key, RELAY)
    r = api(client, "POST", "/dns-records/dkim", csrf)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_supported"


def test_dns_not_offered_for_a_relay_service(app, client, signer, worker, runtime, admin_key):
    make_relay(client, signer, worker, runtime)
    sign_in(client, admin_key, RELAY)
    r = api(client, "GET", "/dns-records")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_supported"
    page = client.get("/client/dns")
    assert page.status_code == 200 and b"does not ask you to publish DNS records" in page.data


# --- device set-up -----------------------------------------------------------------------------

def test_device_setup_per_mailbox(app, client, signer, worker, runtime, qbox_sim, admin_key):
    make_hosting(client, signer, worker, runtime, qbox_sim)
    csrf = sign_in(client, admin_key, HOSTING)
    created = api(client, "POST", "/mailboxes", csrf, {"local_part": "alice", "password": PASSWORD,
                                                       "name": "Alice Liddell"})
    assert created.status_code == 201, created.get_json()
    box = created.get_json()

    listing = api(client, "GET", "/devices").get_json()
    assert listing["provider"] == "Qboxmail" and listing["lists_mailboxes"] is True
    assert [m["address"] for m in listing["mailboxes"]] == [f"alice@{HOSTING_DOMAIN}"]

    manual = api(client, "GET", f"/devices/{box['id']}").get_json()
    assert (manual["imap"]["host"], manual["imap"]["port"], manual["imap"]["security"]) == ("imap.qboxmail.com", 993, "ssl")
    assert (manual["smtp"]["host"], manual["smtp"]["port"]) == ("smtp.qboxmail.com", 465)
    assert manual["imap"]["username"] == f"alice@{HOSTING_DOMAIN}"

    for url in (manual["mobileconfig_url"], f"/client/api/v1/devices/{box['id']}/mobileconfig"):
        r = client.get(url)
        assert r.status_code == 200
        assert r.mimetype == "application/x-apple-aspen-config"
        assert "attachment" in r.headers["Content-Disposition"] and ".mobileconfig" in r.headers["Content-Disposition"]
        profile = plistlib.loads(r.data)
        [mail] = [p for p in profile["PayloadContent"] if p["PayloadType"] == "com.apple.mail.managed"]
        assert mail["EmailAddress"] == f"alice@{HOSTING_DOMAIN}" and mail["EmailAccountName"] == "Alice Liddell"
        assert mail["IncomingMailServerHostName"] == "imap.qboxmail.com"
        assert mail["OutgoingMailServerHostName"] == "smtp.qboxmail.com"
        assert PASSWORD.encode() not in r.data

    page = client.get(f"/client/devices/{box['id']}")
    assert page.status_code == 200
    for text in (b"imap.qboxmail.com", b"smtp.qboxmail.com", b"Outlook", b"Thunderbird", b"Download the profile"):
        assert text in page.data
    assert client.get("/client/devices").status_code == 200

    xml = client.get("/client/devices/autoconfig.xml")
    assert xml.status_code == 200 and xml.mimetype == "application/xml"
    root = ET.fromstring(xml.data)
    assert root.find("emailProvider/incomingServer/hostname").text == "imap.qboxmail.com"
    assert api(client, "GET", "/devices/autoconfig.xml").status_code == 200

    # public autoconfig: by emailaddress, by the autoconfig.<domain> host; unknown domains are 404
    public = client.get(f"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40{HOSTING_DOMAIN}")
    assert public.status_code == 200
    assert ET.fromstring(public.data).find("emailProvider").get("id") == HOSTING_DOMAIN
    by_host = client.get("/mail/config-v1.1.xml", headers={"Host": f"autoconfig.{HOSTING_DOMAIN}"})
    assert by_host.status_code == 200 and b"smtp.qboxmail.com" in by_host.data
    assert client.get("/mail/config-v1.1.xml?emailaddress=x%40unknown.example").status_code == 404
    assert client.get("/mail/config-v1.1.xml").status_code == 404


def test_device_routes_refuse_another_services_mailbox(app, client, signer, worker, runtime, qbox_sim, admin_key):
    make_hosting(client, signer, worker, runtime, qbox_sim, OTHER, OTHER_DOMAIN)
    make_hosting(client, signer, worker, runtime, qbox_sim)
    other = app.test_client()
    other_csrf = sign_in(other, admin_key, OTHER)
    theirs = api(other, "POST", "/mailboxes", other_csrf, {"local_part": "bob", "password": PASSWORD}).get_json()

    sign_in(client, admin_key, HOSTING)
    for path in (f"/client/api/v1/devices/{theirs['id']}", f"/client/api/v1/devices/{theirs['id']}/mobileconfig",
                 f"/client/devices/{theirs['id']}", f"/client/devices/{theirs['id']}/profile.mobileconfig",
                 f"/client/devices/bob@{OTHER_DOMAIN}"):
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert b"bob@" not in r.data


def test_devices_without_a_mailbox_listing_take_an_address(app, client, runtime, admin_key):
    make_resellerclub_row(runtime)
    sign_in(client, admin_key, RC)
    page = client.get("/client/devices")
    assert page.status_code == 200 and b'name="address"' in page.data
    bad = client.get("/client/devices?address=carol%40elsewhere.example")
    assert bad.status_code == 422 and f"The address must be at {RC_DOMAIN}".encode() in bad.data
    good = client.get(f"/client/devices?address=carol%40{RC_DOMAIN}")
    assert good.status_code == 303 and good.headers["Location"].endswith(f"/client/devices/carol@{RC_DOMAIN}")

    manual = api(client, "GET", f"/devices/carol@{RC_DOMAIN}").get_json()
    assert manual["exchange"] == {"server": f"webmail.{RC_DOMAIN}", "domain": RC_DOMAIN, "username": "carol",
                                  "email": f"carol@{RC_DOMAIN}"}
    profile = plistlib.loads(client.get(f"/client/devices/carol@{RC_DOMAIN}/profile.mobileconfig").data)
    types = {p["PayloadType"] for p in profile["PayloadContent"]}
    assert types == {"com.apple.mail.managed", "com.apple.caldav.account", "com.apple.carddav.account"}
    page = client.get(f"/client/devices/carol@{RC_DOMAIN}")
    assert b"Exchange" in page.data and b"CalDAV" in page.data
    assert api(client, "GET", "/devices/carol@elsewhere.example").status_code == 404
    assert api(client, "GET", "/devices/not-an-address").status_code == 404


def test_no_device_setup_for_a_relay_service(app, client, signer, worker, runtime, admin_key):
    make_relay(client, signer, worker, runtime)
    sign_in(client, admin_key, RELAY)
    r = api(client, "GET", "/devices")
    assert r.status_code == 409 and "SMTP relay page" in r.get_json()["error"]["message"]
    page = client.get("/client/devices")
    assert page.status_code == 200 and b"SMTP relay page" in page.data and b"alert-info" in page.data


# --- SMTP relay ---------------------------------------------------------------------------------

def test_relay_account_view_password_ips_bounce_domains(app, client, signer, worker, runtime, qbox_sim,
                                                        admin_key, database_url):
    svc = make_relay(client, signer, worker, runtime)
    csrf = sign_in(client, admin_key, RELAY)

    view = api(client, "GET", "/relay").get_json()
    native = sim_account(qbox_sim, svc.upstream_id)["native"]
    assert view["username"] == native["username"] and view["smtp_host"] == native["config_hostname"]
    assert view["quota"] == 20000 and view["messages_sent"] == 0 and view["max_domains"] == 2
    assert view["domains"] == [] and view["allowed_ips"] == [] and "password" not in json.dumps(view).lower()

    # a new password, shown once, stored nowhere
    r = api(client, "POST", "/relay/password", csrf)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "private, no-store"
    new = r.get_json()
    assert new["username"] == view["username"]
    relay_row = qbox_sim.app.extensions["simulator"].relays[int(svc.upstream_id)]
    assert check_password(relay_row.password_hash, new["password"])
    assert new["password"] not in table_dump(database_url)
    assert all(new["password"] not in c.value for c in client._cookies.values())
    assert new["password"] not in client.get("/client/relay").get_data(as_text=True)

    # the page: a confirmation is needed, then the password appears in that answer only
    page = client.post("/client/relay/password", data={"csrf_token": csrf})
    assert page.status_code == 422 and b"Tick the box" in page.data
    page = client.post("/client/relay/password", data={"csrf_token": csrf, "confirm": "yes"})
    assert page.status_code == 200 and b"Your new SMTP password" in page.data
    assert page.headers["Cache-Control"] == "private, no-store"

    # authorised IPs
    r = api(client, "PUT", "/relay/allowed-ips", csrf, {"ips": ["203.0.113.10", "198.51.100.0/24"]})
    assert r.status_code == 200 and r.get_json()["allowed_ips"] == ["203.0.113.10/32", "198.51.100.0/24"]
    assert sim_account(qbox_sim, svc.upstream_id)["native"]["allow_nets"] == ["203.0.113.10/32", "198.51.100.0/24"]
    r = api(client, "PUT", "/relay/allowed-ips", csrf, {"ips": ["300.1.1.1"]})
    assert r.status_code == 422 and "300.1.1.1" in r.get_json()["error"]["fields"]["ips"]
    page = client.post("/client/relay/ips", data={"csrf_token": csrf, "ips": "nonsense"})
    assert page.status_code == 422 and b"Not an IP address or network: nonsense" in page.data
    page = client.post("/client/relay/ips", data={"csrf_token": csrf, "ips": "192.0.2.7\n192.0.2.8"})
    assert page.status_code == 303 and "done=ips_saved" in page.headers["Location"]

    # bounce address
    r = api(client, "PUT", "/relay/bounce-address", csrf, {"email": "Bounces@Example.org"})
    assert r.status_code == 200 and r.get_json() == {"bounce_address": "bounces@example.org"}
    assert sim_account(qbox_sim, svc.upstream_id)["native"]["bounce_notification"] == "bounces@example.org"
    assert api(client, "GET", "/relay").get_json()["bounce_address"] == "bounces@example.org"
    assert api(client, "PUT", "/relay/bounce-address", csrf, {"email": "not-an-address"}).status_code == 422
    assert api(client, "PUT", "/relay/bounce-address", csrf, {"email": None}).get_json() == {"bounce_address": None}

    # sender domains up to relay_max_domains (2), then 422 limit_exceeded
    assert api(client, "POST", "/relay/domains", csrf, {"domain": "shop.example.org"}).status_code == 201
    r = api(client, "POST", "/relay/domains", csrf, {"domain": "news.example.org"})
    assert r.status_code == 201 and r.get_json()["domains"] == ["shop.example.org", "news.example.org"]
    r = api(client, "POST", "/relay/domains", csrf, {"domain": "third.example.org"})
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert error["code"] == "limit_exceeded" and error["limit"] == "relay_max_domains"
    assert "allows 2 sender domains" in error["message"]
    page = client.post("/client/relay/domains", data={"csrf_token": csrf, "domain": "third.example.org"})
    assert page.status_code == 422 and b"allows 2 sender domains" in page.data
    assert api(client, "POST", "/relay/domains", csrf, {"domain": "not a domain"}).status_code == 422
    assert api(client, "DELETE", "/relay/domains/unknown.example.org", csrf).status_code == 404
    assert api(client, "DELETE", "/relay/domains/news.example.org", csrf).status_code == 204
    assert api(client, "GET", "/relay").get_json()["domains"] == ["shop.example.org"]
    page = client.post("/client/relay/domains/shop.example.org/delete", data={"csrf_token": csrf})
    assert page.status_code == 303
    page = client.get("/client/relay?done=domain_removed")
    assert page.status_code == 200 and b"The sender domain was removed." in page.data

    # every write needs the CSRF token
    for method, path, body in (("POST", "/relay/password", None), ("PUT", "/relay/allowed-ips", {"ips": []}),
                               ("PUT", "/relay/bounce-address", {"email": None}),
                               ("POST", "/relay/domains", {"domain": "x.example.org"}),
                               ("DELETE", "/relay/domains/shop.example.org", None)):
        assert api(client, method, path, None, body).status_code == 403, path


def test_relay_is_read_only_while_suspended(app, client, signer, worker, runtime, admin_key):
    make_relay(client, signer, worker, runtime)
    post_hook(client, signer, event_body("service.suspend", RELAY, domain=RELAY_DOMAIN, product_id="51",
                                         options=RELAY_OPTIONS, suspend_reason="Overdue on Payment"))
    assert run_jobs(worker, runtime, RELAY).state == "succeeded"
    csrf = sign_in(client, admin_key, RELAY)
    assert api(client, "GET", "/relay").status_code == 200
    for method, path, body in (("POST", "/relay/password", None), ("PUT", "/relay/allowed-ips", {"ips": []}),
                               ("PUT", "/relay/bounce-address", {"email": None}),
                               ("POST", "/relay/domains", {"domain": "x.example.org"})):
        r = api(client, method, path, csrf, body)
        assert r.status_code == 409 and r.get_json()["error"]["code"] == "service_suspended", path
    page = client.get("/client/relay")
    assert page.status_code == 200 and b"Overdue on Payment" in page.data
    assert b"Create a new password" not in page.data and b"Save the IP addresses" not in page.data
    r = client.post("/client/relay/password", data={"csrf_token": csrf, "confirm": "yes"})
    assert r.status_code == 409 and b"suspended" in r.data


def test_relay_routes_for_a_hosting_service_and_without_a_session(app, client, signer, worker, runtime, qbox_sim,
                                                                  admin_key):
    assert api(client, "GET", "/relay").status_code == 401
    assert api(client, "GET", "/dns-records").status_code == 401
    assert api(client, "GET", "/devices").status_code == 401
    assert client.get("/client/relay").status_code == 401
    assert client.get("/client/dns").status_code == 401
    make_hosting(client, signer, worker, runtime, qbox_sim)
    csrf = sign_in(client, admin_key, HOSTING)
    r = api(client, "POST", "/relay/password", csrf)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_supported"
    page = client.get("/client/relay")
    assert page.status_code == 200 and b"has no SMTP relay account" in page.data


def test_nav_lists_the_extra_pages_by_capability(app, client, signer, worker, runtime, qbox_sim, admin_key):
    nav = app.extensions["client_nav"]
    assert [e[0] for e in nav if e[0].startswith("client_extras.")] == [e[0] for e in extras.NAV]
    make_hosting(client, signer, worker, runtime, qbox_sim)
    sign_in(client, admin_key, HOSTING)
    page = client.get("/client/").get_data(as_text=True)
    assert "DNS records" in page and "Device set-up" in page and "SMTP relay" not in page


def test_pages_stay_readable_and_dns_checks_allowed_while_suspended(app, client, signer, worker, runtime, qbox_sim,
                                                                     admin_key, local_dns):
    make_hosting(client, signer, worker, runtime, qbox_sim)
    post_hook(client, signer, event_body("service.suspend", HOSTING, domain=HOSTING_DOMAIN, product_id="50",
                                         options=HOSTING_OPTIONS, suspend_reason="Overdue on Payment"))
    assert run_jobs(worker, runtime, HOSTING).state == "succeeded"
    csrf = sign_in(client, admin_key, HOSTING)
    [mx] = [r for r in api(client, "GET", "/dns-records").get_json()["items"] if r["type"] == "MX"][:1]
    local_dns.add(HOSTING_DOMAIN, "MX", f"{mx['priority']} {mx['value']}.")
    # a check changes nothing anywhere: it stays available
    assert api(client, "POST", f"/dns-records/{mx['id']}/check", csrf).get_json()["check"]["status"] == "pass"
    for path in ("/client/dns", "/client/devices"):
        page = client.get(path)
        assert page.status_code == 200 and b"Overdue on Payment" in page.data, path
    r = api(client, "POST", "/dns-records/dkim", csrf)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "service_suspended"
