"""The PolarisMail adapter: token handling, error mapping, adoption, DKIM, SSO, paging, secrets."""
from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask

from provisioner.providers import polarismail as pm
from provisioner.providers.base import AccountSpec, AccountStatus, ClientInfo, MailboxSpec
from provisioner.providers.errors import (
    AuthError,
    ConfigurationError,
    Conflict,
    LimitExceeded,
    MalformedResponse,
    NotFound,
    RateLimited,
    Unavailable,
    ValidationError,
)
from provisioner.providers.http import HttpClient
from provisioner.providers.polarismail import PolarisMailProvider, classify, polaris_error
from provisioner.simulators.polarismail import create_app
from provisioner.simulators.server import SimulatorServer

USER, PASSWORD = "unit-reseller", "Unit-Polaris-Pass-42"
MAILBOX_PASSWORD = "Box-Secret-Pass-73"


class FakeClock:
    def __init__(self, now: float = 1_790_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(HttpClient, "_sleep", lambda self, seconds: None)


@pytest.fixture
def clock():
    return FakeClock()


class Sim:
    """A simulator on a real port plus its in-process state, for white-box checks."""

    def __init__(self, clock: FakeClock, **options):
        self.app = create_app(username=USER, password=PASSWORD, clock=clock, **options)
        self.server = SimulatorServer(self.app).start()
        self.url = self.server.url
        self.sim = self.app.extensions["simulator"]

    def calls(self) -> dict[str, int]:
        return requests.get(f"{self.url}/_sim/calls", timeout=5).json()["calls"]

    def state(self) -> list[dict]:
        return requests.get(f"{self.url}/_sim/state", timeout=5).json()["accounts"]

    def faults(self, **faults) -> None:
        requests.post(f"{self.url}/_sim/faults", json=faults, timeout=5).raise_for_status()

    def admin(self, action: str, **form) -> dict:
        """A call made by someone else (the reseller's own panel, another tool)."""
        url = f"{self.url}/admin/json.php"
        token = requests.post(url, data={"action": "login", "username": USER, "password": PASSWORD},
                              timeout=5).json()["returndata"]
        return requests.post(url, data={"action": action, "token": token, **form}, timeout=5).json()


@pytest.fixture
def make_sim(clock):
    sims: list[Sim] = []

    def make(**options) -> Sim:
        sims.append(Sim(clock, **options))
        return sims[-1]
    yield make
    for s in sims:
        s.server.stop()


@pytest.fixture
def sim(make_sim):
    return make_sim()


def provider(url: str, **settings) -> PolarisMailProvider:
    config = {"provider": "polarismail", "base_url": url, "username": USER, "password": PASSWORD, **settings}
    return PolarisMailProvider("polaris-test", config)


def spec(domain: str = "example.com", service_id: str = "1042") -> AccountSpec:
    return AccountSpec(service_id=service_id, domain=domain, client=ClientInfo(id="77"), limits={},
                       paid_until=dt.date(2026, 12, 21))


# --- a fake transport for answers the simulator never gives ---------------------------------

class FakeSession(requests.Session):
    """Answers form posts with ``handler(form) -> (status, body)``; records the forms."""

    def __init__(self, handler: Callable[[dict[str, str]], tuple[int, object]]):
        super().__init__()
        self.handler = handler
        self.forms: list[dict[str, str]] = []

    def request(self, method, url, data=None, **kw):
        form = {k: str(v) for k, v in (data or {}).items()}
        self.forms.append(form)
        status, body = self.handler(form)
        resp = requests.Response()
        resp.status_code = status
        resp._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        resp.headers["Content-Type"] = "application/json"
        resp.url = url
        resp.request = requests.Request(method, url, data=data).prepare()
        return resp


def fake_provider(handler, **settings) -> tuple[PolarisMailProvider, FakeSession]:
    session = FakeSession(handler)
    config = {"provider": "polarismail", "base_url": "https://cp.example.test", "username": USER,
              "password": PASSWORD, **settings}
    return PolarisMailProvider("polaris-test", config, session=session), session


def logged_in(answers: dict[str, tuple[int, object]]):
    """A handler that logs in and answers other actions from ``answers``."""
    def handler(form):
        if form["action"] == "login":
            return 200, {"returncode": 1, "returndata": "tok-fake-0001"}
        return answers[form["action"]]
    return handler


# --- settings --------------------------------------------------------------------------------

def test_settings_are_checked():
    base = {"provider": "polarismail", "base_url": "https://cp.example.test", "username": USER,
            "password": PASSWORD}
    for broken in ({"username": ""}, {"password": None}, {"timeout": "soon"}, {"timeout": 0},
                   {"token_max_age": -5}, {"mx_hosts": "mx.example.test:high"},
                   # renamed: processlogin.php is the control panel's login, not webmail
                   {"webmail_url": "https://cp.example.test/processlogin.php"}):
        with pytest.raises(ConfigurationError):
            PolarisMailProvider("p", {**base, **broken})
    p = PolarisMailProvider("p", {**base, "mx_hosts": "mx.example.test:5 mx2.example.test:10", "timeout": "7"})
    assert p.mx_hosts == [("mx.example.test", 5), ("mx2.example.test", 10)]
    assert p.http.timeout == 7.0 and p.control_panel_url == "https://cp.example.test/processlogin.php"
    with pytest.raises(ConfigurationError) as info:
        PolarisMailProvider("p", {**base, "webmail_url": "https://cp.example.test/processlogin.php"})
    assert "control_panel_url" in info.value.message


# --- the login token ---------------------------------------------------------------------------

def test_the_token_is_cached_and_shared_across_threads(sim):
    p = provider(sim.url)
    p.create_account(spec())
    threads = [threading.Thread(target=p.get_account, args=("example.com",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p.list_accounts()
    assert sim.calls()["login"] == 1


def test_an_expired_token_is_renewed_once_and_the_call_repeated(make_sim, clock):
    sim = make_sim(token_ttl=60)
    p = provider(sim.url, token_max_age=3600)        # rely on the API saying so, not on age
    p.create_account(spec())
    clock.now += 61
    assert p.get_account("example.com").status is AccountStatus.ACTIVE
    calls = sim.calls()
    assert calls["login"] == 2 and calls["getDomainInfo"] == 3    # create, refused, repeated


def test_an_old_token_is_renewed_before_the_api_refuses_it(sim):
    now = [100.0]
    p = PolarisMailProvider("p", {"provider": "polarismail", "base_url": sim.url, "username": USER,
                                  "password": PASSWORD}, monotonic=lambda: now[0])
    p.list_accounts()
    now[0] += pm.TOKEN_MAX_AGE - 1
    p.list_accounts()
    assert sim.calls()["login"] == 1
    now[0] += 2
    p.list_accounts()
    assert sim.calls() == {"login": 2, "getAllDomains": 3}


def test_only_the_latest_tokens_are_kept_for_masking(sim):
    now = [0.0]
    p = PolarisMailProvider("p", {"provider": "polarismail", "base_url": sim.url, "username": USER,
                                  "password": PASSWORD}, monotonic=lambda: now[0])
    for _ in range(pm.MASKED_TOKENS + 4):
        p.list_accounts()
        now[0] += pm.TOKEN_MAX_AGE
    latest = p._token
    assert len(p._recent_tokens) == pm.MASKED_TOKENS
    assert p.http.masker.text(f"x {latest} {PASSWORD} y") == "x *** *** y"


def test_a_refused_login_is_a_permanent_auth_error(sim):
    p = PolarisMailProvider("p", {"provider": "polarismail", "base_url": sim.url, "username": USER,
                                  "password": "not-the-password"})
    with pytest.raises(AuthError) as info:
        p.find_account(spec())
    assert not info.value.retryable and info.value.action == "login"
    assert sim.calls() == {"login": 1}                          # not retried, nothing else called


def test_a_login_refused_for_any_reason_is_an_auth_error():
    p, _ = fake_provider(lambda form: (200, {"returncode": 0, "returndata": "Your account is locked"}))
    with pytest.raises(AuthError):
        p.test_connection()


def test_a_fresh_token_refused_again_is_an_auth_error_not_a_loop():
    def handler(form):
        if form["action"] == "login":
            return 200, {"returncode": 1, "returndata": f"tok-{len(session.forms)}"}
        return 200, {"returncode": 0, "returndata": "Invalid or expired token"}
    p, session = fake_provider(handler)
    with pytest.raises(AuthError) as info:
        p.list_accounts()
    assert not info.value.retryable
    assert [f["action"] for f in session.forms] == ["login", "getAllDomains", "login", "getAllDomains"]


# --- error mapping ---------------------------------------------------------------------------------

@pytest.mark.parametrize("message, error", [
    ("Invalid or expired token", pm.TokenRejected),
    ("Session expired, please log in again", pm.TokenRejected),
    ("Invalid credentials", AuthError),
    ("Access denied for this IP", AuthError),
    ("You are not authorized to manage this domain", AuthError),
    ("Domain not found", NotFound),
    ("User does not exist", NotFound),
    ("No users found", NotFound),
    ("Domain already exists", Conflict),
    ("Domain is not available", Conflict),
    ("Domain ownership is not verified", Conflict),
    ("Maximum number of basic accounts reached for your plan", LimitExceeded),
    ("Invalid domain name", ValidationError),
    ("Something unexpected", ValidationError),
])
def test_refusals_are_mapped_by_message(message, error):
    err = classify(message)
    assert type(err) is error and not err.retryable and err.upstream_text == message


def _status(status: int) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    return resp


@pytest.mark.parametrize("status, body, expected", [
    (200, {"returncode": 1, "returndata": []}, None),
    (200, {"returncode": "1", "returndata": "ok"}, None),
    (200, {"returncode": True, "returndata": "ok"}, None),
    (200, {"returncode": 0, "returndata": "Domain not found"}, NotFound),
    (200, {"returncode": "0", "message": "User already exists"}, Conflict),
    (200, {"returndata": "no code"}, MalformedResponse),
    (200, {"returncode": "maybe"}, MalformedResponse),
    (200, None, MalformedResponse),
    (500, {"returncode": 0, "returndata": "Domain not found"}, None),    # the status decides
    (429, {"returncode": 0, "returndata": "slow down"}, None),
])
def test_the_error_mapper(status, body, expected):
    try:
        err = polaris_error(_status(status), body)
    except MalformedResponse as raised:           # a mapper may raise as well as return
        err = raised
    assert (err is None) if expected is None else isinstance(err, expected)


def test_http_failures_become_retryable_errors():
    answers = {"getAllDomains": (503, b"<html>Service Unavailable</html>")}
    p, session = fake_provider(logged_in(answers))
    with pytest.raises(Unavailable) as info:
        p.list_accounts()
    assert info.value.retryable and not isinstance(info.value, MalformedResponse)
    assert [f["action"] for f in session.forms].count("getAllDomains") == 3     # a safe call, retried
    p, _ = fake_provider(logged_in({"getAllDomains": (200, b"<html>PHP Warning</html>")}))
    with pytest.raises(MalformedResponse):
        p.list_accounts()
    p, _ = fake_provider(logged_in({"getAllDomains": (429, {"returncode": 0, "returndata": "Too many"})}))
    with pytest.raises(RateLimited):
        p.list_accounts()


def test_the_fallback_host_serves_safe_calls_when_the_primary_fails(sim):
    primary = Flask("down")

    @primary.post("/admin/json.php")
    def down():
        return "<html>502 Bad Gateway</html>", 502
    server = SimulatorServer(primary).start()
    try:
        p = provider(server.url, fallback_url=sim.url)
        assert p.list_accounts().total == 0                   # login and getAllDomains via the fallback
        with pytest.raises(Unavailable):                       # never repeat a create elsewhere
            p.create_account(spec())
        assert "addDomain" not in sim.calls() and sim.state() == []
    finally:
        server.stop()


# --- accounts -------------------------------------------------------------------------------------

def test_create_then_find_get_suspend_and_delete(sim):
    p = provider(sim.url)
    assert p.find_account(spec()) is None
    account = p.create_account(spec(domain="Example.COM."))
    assert account.id == account.domain == "example.com" and account.status is AccountStatus.ACTIVE
    assert account.limits == {} and account.native["info"]["active"] == "1"
    assert p.find_account(spec()).id == "example.com"
    p.suspend_account("example.com", "Overdue on Payment")
    assert p.get_account("example.com").status is AccountStatus.SUSPENDED
    p.unsuspend_account("example.com")
    assert sim.state()[0]["status"] == "active"
    p.delete_account("example.com")
    p.delete_account("example.com")                              # gone already: the goal holds
    assert sim.state() == [] and p.find_account(spec()) is None
    with pytest.raises(NotFound):
        p.get_account("example.com")


def test_create_adopts_a_domain_that_is_already_ours(sim):
    sim.admin("addDomain", newdomain="example.com")               # added in the PolarisMail panel
    p = provider(sim.url)
    account = p.create_account(spec())
    assert account.id == "example.com"
    assert sim.calls()["addDomain"] == 1 and len(sim.state()) == 1      # only the panel's own add


def test_create_adopts_after_a_lost_answer_of_add_domain():
    answers = {
        "isDomainAvailable": (200, {"returncode": 1, "returndata": "Domain is available"}),
        "addDomain": (200, {"returncode": 0, "returndata": "Domain already exists"}),
        "getAllDomains": (200, {"returncode": 1, "returndata": [
            {"id": "9", "domain": "example.com", "isauditdomain": "0", "domaintype": "1", "active": "1"}]}),
        "getDomainInfo": (200, {"returncode": 1, "returndata": {"active": "1", "aliases": 2, "lists": 1}}),
        "getDomainVerification": (200, {"returncode": 0, "returndata": "Domain is already verified"}),
        "getAllUsersDomain": (200, {"returncode": 1, "returndata": [
            {"username": "a", "account_type": 2, "quota": 5000, "usage": 120},
            {"username": "b", "account_type": "1", "quota": 5000, "usage": 30}], "meta": {"all": 2}}),
    }
    p, _ = fake_provider(logged_in(answers))
    account = p.create_account(spec())
    assert account.id == "example.com" and account.status is AccountStatus.ACTIVE
    assert account.usage.as_dict() == {"mailboxes": 2, "enhanced_mailboxes": 1, "aliases": 2,
                                       "distribution_lists": 1, "storage_mb": 150}


def test_a_domain_hosted_by_someone_else_is_a_conflict(make_sim):
    sim = make_sim(taken_domains=["taken.example"])
    with pytest.raises(Conflict) as info:
        provider(sim.url).create_account(spec(domain="taken.example"))
    assert "another account" in info.value.safe_message and not info.value.retryable
    assert "addDomain" not in sim.calls()


def test_a_domain_stays_pending_until_its_ownership_is_verified(make_sim, clock):
    sim = make_sim(activation_delay=60)
    p = provider(sim.url)
    account = p.create_account(spec())
    assert account.status is AccountStatus.PENDING
    verification = account.native["verification"]
    assert verification["host"] == "mx-verification.example.com" and verification["value"]
    [record] = p.dns_records("example.com")
    assert (record.type, record.host, record.value, record.purpose) == (
        "TXT", "mx-verification.example.com", verification["value"], "ownership check")
    with pytest.raises(Conflict) as info:
        p.create_mailbox("example.com", MailboxSpec(local_part="ada", password=MAILBOX_PASSWORD))
    assert "not been verified" in info.value.safe_message
    clock.now += 60
    assert p.get_account("example.com").status is AccountStatus.ACTIVE
    assert [r.purpose for r in p.dns_records("example.com")] == ["DKIM"]


def test_reading_a_verified_domain_is_no_error_and_logs_no_warning(sim, caplog):
    p = provider(sim.url)
    p.create_account(spec())
    caplog.clear()
    caplog.set_level(logging.INFO, logger="provisioner.upstream")
    assert p.get_account("example.com").native["verification"] is None
    assert "getDomainVerification" in caplog.text
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_list_accounts_pages_locally_through_one_read(sim):
    p = provider(sim.url)
    for i in range(5):
        sim.admin("addDomain", newdomain=f"d{i}.example")
    sim.admin("updateDomain", domain="d3.example", editdomainactive="0")
    before = sim.calls().get("getAllDomains", 0)
    first, last = p.list_accounts(page=1, per_page=2), p.list_accounts(page=3, per_page=2)
    assert [a.id for a in first.items] == ["d0.example", "d1.example"] and first.total == 5 and first.has_more
    assert [a.id for a in last.items] == ["d4.example"] and not last.has_more
    statuses = {a.id: a.status for a in p.list_accounts(per_page=10).items}
    assert statuses["d3.example"] is AccountStatus.SUSPENDED and statuses["d0.example"] is AccountStatus.ACTIVE
    assert sim.calls()["getAllDomains"] - before == 3


# --- mailboxes, aliases, lists ----------------------------------------------------------------------

def test_mailboxes_are_paged_and_mapped(sim, monkeypatch):
    monkeypatch.setattr(pm, "USERS_PAGE", 2)
    p = provider(sim.url)
    p.create_account(spec())
    made = p.create_mailbox("example.com", MailboxSpec(local_part="Ada", password=MAILBOX_PASSWORD,
                                                       name="Ada L", quota_gb=5, type="enhanced"))
    assert (made.id, made.address, made.quota_gb, made.type) == ("ada", "ada@example.com", 5, "enhanced")
    for i in range(4):
        p.create_mailbox("example.com", MailboxSpec(local_part=f"u{i}", password=MAILBOX_PASSWORD))
    before = sim.calls()["getAllUsersDomain"]
    boxes = p.list_mailboxes("example.com")
    assert [b.id for b in boxes] == ["ada", "u0", "u1", "u2", "u3"]
    assert sim.calls()["getAllUsersDomain"] - before == 3
    assert boxes[1].quota_gb == pm.DEFAULT_QUOTA_GB and boxes[1].type == "basic" and boxes[1].enabled
    usage = p.get_account("example.com").usage
    assert (usage.mailboxes, usage.enhanced_mailboxes) == (5, 1)


def test_mailbox_updates(sim):
    p = provider(sim.url)
    p.create_account(spec())
    p.create_mailbox("example.com", MailboxSpec(local_part="ada", password=MAILBOX_PASSWORD, quota_gb=5))
    box = p.update_mailbox("example.com", "ada@example.com", {"name": "Ada L.", "quota_gb": 8, "type": "enhanced"})
    assert (box.name, box.quota_gb, box.type) == ("Ada L.", 8, "enhanced")
    box = p.update_mailbox("example.com", "ada", {"enabled": False})
    assert not box.enabled and box.quota_gb == 8 and box.name == "Ada L."
    user = sim.sim.domains["example.com"].users["ada"]
    old_hash = user.password_hash
    p.update_mailbox("example.com", "ada", {"password": "Brand-New-Pass-9"})
    assert user.password_hash != old_hash
    with pytest.raises(NotFound):
        p.update_mailbox("example.com", "ada@other.example", {"name": "x"})
    with pytest.raises(NotFound):
        p.delete_mailbox("example.com", "nobody")
    p.delete_mailbox("example.com", "ada")
    assert p.list_mailboxes("example.com") == []


def test_aliases_and_lists(sim):
    p = provider(sim.url)
    p.create_account(spec())
    alias = p.create_alias("example.com", "info", "ada@elsewhere.example")
    assert (alias.id, alias.address, alias.target) == ("info", "info@example.com", "ada@elsewhere.example")
    with pytest.raises(Conflict):
        p.create_alias("example.com", "info", "bob@elsewhere.example")
    assert p.list_aliases("example.com") == [alias]
    p.delete_alias("example.com", "info@example.com")
    assert p.list_aliases("example.com") == []

    lst = p.create_list("example.com", "team", ["A@example.org", "b@example.org", "a@example.org"])
    assert lst.members == ["a@example.org", "b@example.org"]
    before = sim.calls()
    lst = p.update_list("example.com", "team", ["b@example.org", "c@example.org"])
    after = sim.calls()
    assert lst.members == ["b@example.org", "c@example.org"]
    assert after["addListMember"] - before["addListMember"] == 1           # only the difference
    assert after.get("removeListMember", 0) - before.get("removeListMember", 0) == 1
    assert [x.members for x in p.list_lists("example.com")] == [["b@example.org", "c@example.org"]]
    p.delete_list("example.com", "team")
    assert p.list_lists("example.com") == []


def test_empty_listings_reported_as_not_found_are_empty_but_unknown_domains_are_not():
    answers = {"getAllAliasesDomain": (200, {"returncode": 0, "returndata": "No aliases found"})}
    p, _ = fake_provider(logged_in(answers))
    assert p.list_aliases("example.com") == []
    answers["getAllAliasesDomain"] = (200, {"returncode": 0, "returndata": "Domain not found"})
    with pytest.raises(NotFound):
        p.list_aliases("example.com")


# --- DNS records, single sign-on ---------------------------------------------------------------

def test_dns_records_enable_dkim_once(sim):
    p = provider(sim.url, mx_hosts=["mx.example.test:5"])
    p.create_account(spec())
    records = p.dns_records("example.com")
    assert [(r.type, r.host, r.priority) for r in records] == [
        ("MX", "example.com", 5), ("TXT", "dkim._domainkey.example.com", None)]
    assert records[0].value == "mx.example.test" and records[1].value.startswith("v=DKIM1; k=rsa; p=")
    assert p.dns_records("example.com") == records
    assert sim.calls()["enableDKIM"] == 1


def test_a_bare_dkim_key_is_completed_and_a_refused_enable_is_skipped():
    answers = {
        "getDomainVerification": (200, {"returncode": 0, "returndata": "Domain is already verified"}),
        "getDKIM": (200, {"returncode": 1, "returndata": {"dkim_enabled": "1", "dkim_host": "s1._domainkey.example.com.",
                                                         "dkim_key": "MIIBIjAN"}}),
    }
    p, _ = fake_provider(logged_in(answers))
    [record] = p.dns_records("example.com")
    assert (record.host, record.value) == ("s1._domainkey.example.com", "v=DKIM1; k=rsa; p=MIIBIjAN")
    answers["getDKIM"] = (200, {"returncode": 1, "returndata": {"dkim_enabled": "0", "dkim_host": "", "dkim_key": ""}})
    answers["enableDKIM"] = (200, {"returncode": 0, "returndata": "DKIM is not available for this domain"})
    assert p.dns_records("example.com") == []


def test_sign_ons_are_labelled_for_what_they_open():
    assert PolarisMailProvider.sign_ons == {"webmail": "Webmail", "control_panel": "Mailbox control panel"}
    assert list(PolarisMailProvider.sign_ons)[0] == "webmail"          # the default target


def test_sso_url_opens_webmail_once_through_getotpassandtoken(sim):
    p = provider(sim.url)
    p.create_account(spec())
    p.create_mailbox("example.com", MailboxSpec(local_part="ada", password=MAILBOX_PASSWORD))
    before = sim.calls()
    url = p.sso_url("example.com", "ada@example.com")          # the default target: webmail
    calls = sim.calls()
    assert calls.get("getOTPassAndToken", 0) == before.get("getOTPassAndToken", 0) + 1
    assert calls.get("getOTPass", 0) == before.get("getOTPass", 0)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{sim.url}/webmail/"   # the url answered
    assert set(parse_qs(parts.query)) == {"otp", "token"}
    r = requests.get(url, timeout=5)
    assert r.status_code == 200 and "Webmail: signed in as ada@example.com" in r.text
    assert requests.get(url, timeout=5).status_code == 403                  # single use
    assert p.sso_url("example.com", "ada", "webmail") != url
    with pytest.raises(ValidationError) as info:
        p.sso_url("example.com")
    assert info.value.safe_message == "Choose the mailbox to sign in to."
    with pytest.raises(NotFound):
        p.sso_url("example.com", "nobody")


def test_sso_url_opens_the_control_panel_through_getotpass(sim):
    p = provider(sim.url)
    p.create_account(spec())
    p.create_mailbox("example.com", MailboxSpec(local_part="ada", password=MAILBOX_PASSWORD))
    url = p.sso_url("example.com", "ada", "control_panel")
    assert url.startswith(f"{sim.url}/processlogin.php?")
    query = parse_qs(urlsplit(url).query)
    assert set(query) == {"u", "p"}
    assert base64.b64decode(query["u"][0]).decode() == "ada@example.com"
    r = requests.get(url, timeout=5)
    assert r.status_code == 200 and "Control panel: signed in as ada@example.com" in r.text
    assert requests.get(url, timeout=5).status_code == 403
    custom = provider(sim.url, control_panel_url="https://panel.example.test/processlogin.php")
    assert custom.sso_url("example.com", "ada", "control_panel").startswith(
        "https://panel.example.test/processlogin.php?u=")
    with pytest.raises(ValidationError):
        p.sso_url("example.com", "ada", "admin_panel")


def test_webmail_link_keeps_the_answered_url_and_refuses_a_partial_answer():
    otp_answer = {"otp": "one-time-1", "token": "user-token-1", "url": "https://al.example.test/?lang=en"}
    answers = {"getOTPassAndToken": (200, {"returncode": 1, "returndata": otp_answer})}
    p, _ = fake_provider(logged_in(answers))
    url = p.sso_url("example.com", "ada")
    parts = urlsplit(url)
    assert (parts.netloc, parts.path) == ("al.example.test", "/")
    assert parse_qs(parts.query) == {"lang": ["en"], "otp": ["one-time-1"], "token": ["user-token-1"]}
    for broken in ({**otp_answer, "token": ""}, {**otp_answer, "url": "al.example.test"}, "one-time-1"):
        answers["getOTPassAndToken"] = (200, {"returncode": 1, "returndata": broken})
        with pytest.raises(MalformedResponse):
            p.sso_url("example.com", "ada")


def test_list_forwards_reads_getallforwardsdomain(sim):
    p = provider(sim.url)
    p.create_account(spec())
    p.create_mailbox("example.com", MailboxSpec(local_part="ada", password=MAILBOX_PASSWORD))
    assert p.list_forwards("example.com") == []
    sim.sim.domains["example.com"].forwards.append(("ada", "ada@elsewhere.example"))
    [forward] = p.list_forwards("example.com")
    assert (forward.id, forward.address, forward.target) == (
        "ada>ada@elsewhere.example", "ada@example.com", "ada@elsewhere.example")
    assert p.list_aliases("example.com") == []           # a forward is not an alias
    answers = {"getAllForwardsDomain": (200, {"returncode": 0, "returndata": "Domain not found"})}
    fake, _ = fake_provider(logged_in(answers))
    with pytest.raises(NotFound):
        fake.list_forwards("example.com")


# --- secrets ---------------------------------------------------------------------------------------

def test_password_token_mailbox_passwords_and_otps_stay_out_of_logs(sim, caplog):
    caplog.set_level(logging.DEBUG, logger="provisioner.upstream")
    p = provider(sim.url)
    p.create_account(spec())
    p.create_mailbox("example.com", MailboxSpec(local_part="ada", password=MAILBOX_PASSWORD))
    p.update_mailbox("example.com", "ada", {"password": "Second-Secret-Pass-8"})
    panel = parse_qs(urlsplit(p.sso_url("example.com", "ada", "control_panel")).query)
    webmail = parse_qs(urlsplit(p.sso_url("example.com", "ada")).query)
    with pytest.raises(Conflict) as info:
        p.create_mailbox("example.com", MailboxSpec(local_part="ada", password=MAILBOX_PASSWORD))
    tokens = list(sim.sim.tokens)
    otps = [panel["p"][0], base64.b64decode(panel["p"][0]).decode(), webmail["otp"][0], webmail["token"][0]]
    assert tokens and "addUser" in caplog.text and "create_account" in caplog.text
    assert "getOTPassAndToken" in caplog.text
    shown = "\n".join([caplog.text, info.value.message, info.value.body or ""])
    for secret in (PASSWORD, MAILBOX_PASSWORD, "Second-Secret-Pass-8", *otps, *tokens):
        assert secret not in shown


def test_a_mailbox_password_echoed_in_a_refusal_is_scrubbed():
    answers = {"addUser": (200, {"returncode": 0, "returndata": f"Password {MAILBOX_PASSWORD} is too weak"})}
    p, _ = fake_provider(logged_in(answers))
    with pytest.raises(ValidationError) as info:
        p.create_mailbox("example.com", MailboxSpec(local_part="ada", password=MAILBOX_PASSWORD))
    assert MAILBOX_PASSWORD not in info.value.message and MAILBOX_PASSWORD not in (info.value.body or "")
    assert "too weak" in info.value.message
