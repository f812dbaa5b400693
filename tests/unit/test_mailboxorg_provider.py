"""The mailbox.org adapter: sessions, error mapping, adoption, plan restrictions, tier counting,
invoices, secrets."""
from __future__ import annotations

import base64
import datetime as dt
import gzip
import json as jsonlib
import logging
import threading
import zlib
from collections.abc import Callable

import pytest
import requests

from provisioner.providers import mailboxorg as mbo
from provisioner.providers.base import AccountSpec, AccountStatus, Capability, ClientInfo, MailboxSpec
from provisioner.providers.errors import (
    AuthError,
    ConfigurationError,
    Conflict,
    LimitExceeded,
    MalformedResponse,
    NotFound,
    NotSupported,
    RateLimited,
    Unavailable,
    ValidationError,
)
from provisioner.providers.http import HttpClient
from provisioner.providers.mailboxorg import MailboxOrgProvider, classify, decode_invoice
from provisioner.simulators.mailboxorg import create_app, minimal_pdf
from provisioner.simulators.server import SimulatorServer

USER, PASSWORD = "unit-reseller", "Unit-Mbo-Pass-42"
ACCOUNT_PASSWORD = "Account-Secret-Pass-19"
MAILBOX_PASSWORD = "Box-Secret-Pass-73"
LIMITS = {"light_mailboxes": 1, "standard_mailboxes": 2, "premium_mailboxes": 0, "mailing_lists": 1,
          "account_plan": "profi"}


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

    def rpc(self, method: str, **params):
        """A call made by someone else (the reseller's dashboard, another tool)."""
        def post(name, args, headers=None):
            return requests.post(f"{self.url}/v1/", json={"jsonrpc": "2.0", "id": 9, "method": name, "params": args},
                                 headers=headers or {}, timeout=5).json()
        session = post("auth", {"user": USER, "pass": PASSWORD})["result"]["session"]
        body = post(method, params, {"HPLS-AUTH": session})
        assert "result" in body, body
        return body["result"]


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


def provider(url: str, **settings) -> MailboxOrgProvider:
    config = {"provider": "mailboxorg", "base_url": url, "username": USER, "password": PASSWORD, **settings}
    return MailboxOrgProvider("mbo-test", config)


def spec(service_id: str = "1042", domain: str = "example.com", **limits) -> AccountSpec:
    return AccountSpec(service_id=service_id, domain=domain,
                       client=ClientInfo(id="77", email="owner@example.net", first_name="Ada", last_name="Lovelace",
                                         country="DE"),
                       limits={**LIMITS, **limits}, paid_until=dt.date(2026, 12, 21))


# --- a fake transport for answers the simulator never gives ------------------------------------

class FakeSession(requests.Session):
    """Answers JSON-RPC posts with ``handler(method, params, session) -> (status, body)``."""

    def __init__(self, handler: Callable[[str, dict, str | None], tuple[int, object]]):
        super().__init__()
        self.handler = handler
        self.calls: list[tuple[str, dict, str | None]] = []

    def request(self, method, url, json=None, headers=None, **kw):
        session = (headers or {}).get("HPLS-AUTH")
        self.calls.append((json["method"], json["params"], session))
        status, body = self.handler(json["method"], json["params"], session)
        resp = requests.Response()
        resp.status_code = status
        resp._content = body if isinstance(body, bytes) else jsonlib.dumps(body).encode()
        resp.headers["Content-Type"] = "application/json"
        resp.url = url
        return resp

    def methods(self) -> list[str]:
        return [c[0] for c in self.calls]


def ok(result) -> tuple[int, dict]:
    return 200, {"jsonrpc": "2.0", "id": 1, "result": result}


def rpc_error(code: int, message: str, status: int = 200) -> tuple[int, dict]:
    return status, {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}}


def fake_provider(answers: dict[str, Callable | tuple], **settings) -> tuple[MailboxOrgProvider, FakeSession]:
    """A provider whose ``auth`` hands out sessions sess-1, sess-2, ... (level reseller for
    the reseller's login, else domain) and whose other methods answer from ``answers`` (a
    tuple, or a function of (params, session))."""
    sessions = iter(f"sess-{n}" for n in range(1, 100))

    def handler(method, params, session):
        if method == "auth" and "auth" not in answers:
            return ok({"session": next(sessions), "level": "reseller" if params["user"] == USER else "domain"})
        answer = answers[method]
        return answer(params, session) if callable(answer) else answer
    session = FakeSession(handler)
    config = {"provider": "mailboxorg", "base_url": "https://api.example.test/v1/", "username": USER,
              "password": PASSWORD, **settings}
    return MailboxOrgProvider("mbo-test", config, session=session), session


# --- settings -----------------------------------------------------------------------------------

def test_settings_are_checked():
    base = {"provider": "mailboxorg", "base_url": "https://api.example.test/v1/", "username": USER,
            "password": PASSWORD}
    for broken in ({"username": ""}, {"password": None}, {"base_url": " "}, {"timeout": "soon"}, {"timeout": 0},
                   {"account_prefix": "Bad Prefix!"}, {"default_plan": "gold"}, {"session_idle": -1}):
        with pytest.raises(ConfigurationError):
            MailboxOrgProvider("p", {**base, **broken})
    p = MailboxOrgProvider("p", {**base, "timeout": "7", "account_prefix": "Acme", "default_plan": "Standard"})
    assert p.http.timeout == 7.0 and p.prefix == "acme" and p.default_plan == "standard"
    assert p.base_url == "https://api.example.test/v1/"
    host_only = MailboxOrgProvider("p", {**base, "base_url": "http://127.0.0.1:8704"})
    assert host_only.base_url == "http://127.0.0.1:8704/v1/"
    assert MailboxOrgProvider.mailbox_types == {"light": "light_mailboxes", "standard": "standard_mailboxes",
                                                "premium": "premium_mailboxes"}
    assert {"light_mailboxes", "standard_mailboxes", "premium_mailboxes", "mailing_lists",
            "account_plan"} == MailboxOrgProvider.extra_limits


def test_account_names_are_stable_and_generations_follow():
    p, _ = fake_provider({})
    names = list(p.account_names("1042"))
    assert names[:3] == ["prov-1042", "prov-1042-r2", "prov-1042-r3"] and len(names) == mbo.MAX_GENERATIONS
    assert next(p.account_names(" Svc/ 7 ")) == "prov-svc-7"


# --- sessions -------------------------------------------------------------------------------------

def test_the_session_is_sent_as_hpls_auth_and_shared_across_threads(sim):
    p = provider(sim.url)
    account = p.create_account(spec())
    threads = [threading.Thread(target=p.get_account, args=(account.id,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p.list_accounts()
    assert sim.calls()["auth"] == 1


def test_an_expired_session_is_renewed_once_and_the_call_repeated(sim, clock):
    p = provider(sim.url)
    account = p.create_account(spec())
    clock.now += 1201                        # 20 minutes without a call: the API forgot the session
    before = sim.calls()
    assert p.get_account(account.id).status is AccountStatus.ACTIVE
    after = sim.calls()
    assert after["auth"] - before["auth"] == 1
    assert after["account.get"] - before.get("account.get", 0) == 2     # refused once, then repeated


def test_a_refused_fresh_session_is_an_auth_error_after_exactly_one_renewal():
    p, fake = fake_provider({"account.get": rpc_error(253, "This Auth-ID is invalid")})
    with pytest.raises(AuthError) as info:
        p.get_account("prov-1042")
    assert not info.value.retryable and "fresh session" in info.value.message
    assert fake.methods() == ["auth", "account.get", "auth", "account.get"]
    assert [c[2] for c in fake.calls] == [None, "sess-1", None, "sess-2"]


def test_an_idle_session_is_renewed_before_the_api_refuses_it():
    now = [100.0]
    answers = {"account.list": ok([])}
    fake = FakeSession(lambda m, params, s: ok({"session": f"s-{len(fake.calls)}", "level": "reseller"})
                       if m == "auth" else answers[m])
    p = MailboxOrgProvider("mbo-test", {"provider": "mailboxorg", "base_url": "https://api.example.test/v1/",
                                        "username": USER, "password": PASSWORD},
                           session=fake, monotonic=lambda: now[0])
    p.list_accounts()
    now[0] += 60
    p.list_accounts()
    now[0] += mbo.SESSION_IDLE_MAX + 1
    p.list_accounts()
    assert fake.methods() == ["auth", "account.list", "account.list", "auth", "account.list"]


def test_access_denied_is_permanent_and_not_retried(sim):
    p = provider(sim.url, password="not-the-password")
    with pytest.raises(AuthError) as info:
        p.test_connection()
    assert not info.value.retryable and info.value.action == "auth"
    assert info.value.safe_message == AuthError.safe_message
    with pytest.raises(AuthError):
        p.create_account(spec())
    assert sim.calls() == {"auth": 2} and sim.state() == []


def test_a_login_without_reseller_rights_is_refused():
    p, _ = fake_provider({"auth": ok({"session": "sess-x", "level": "mail"})})
    with pytest.raises(AuthError) as info:
        p.test_connection()
    assert "reseller" in info.value.message


# --- error mapping ---------------------------------------------------------------------------------

@pytest.mark.parametrize("code, message, error", [
    (253, "This Auth-ID is invalid", mbo.SessionExpired),
    (2, "Access denied", AuthError),
    (-32601, "Method not found", NotSupported),
    (-32603, "Internal error", Unavailable),
    (-32700, "Parse error", ValidationError),
    (-32602, "Invalid params: plan must be one of light, standard, premium", ValidationError),
    (-32602, "Invalid params: limit must be a whole number", ValidationError),     # not LimitExceeded
    (1001, "Account does not exist", NotFound),
    (77, "Domain already exists", Conflict),
    ("1002", "Mail address already exists", Conflict),
    (1003, "Plan limit reached: no more standard mailboxes allowed", LimitExceeded),
    (9, "Maximum number of mailing lists reached", LimitExceeded),
    (5, "Permission denied for this level", AuthError),
    (None, "Something unexpected", ValidationError),
])
def test_classify(code, message, error):
    err = classify(code, message)
    assert type(err) is error or (error is NotSupported and isinstance(err, NotSupported))
    assert err.upstream_text == message


@pytest.mark.parametrize("answer, error", [
    (rpc_error(1003, "Plan limit reached"), LimitExceeded),
    (rpc_error(-32603, "Internal error", status=500), Unavailable),
    ((503, b"<html>down</html>"), Unavailable),
    ((429, {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": "slow down"}}), RateLimited),
    ((200, {"jsonrpc": "2.0", "id": 1}), MalformedResponse),
    ((200, [1, 2]), MalformedResponse),
    ((200, b"{truncated"), MalformedResponse),
    ((200, {"jsonrpc": "2.0", "id": 1, "error": "broken"}), ValidationError),
])
def test_answers_become_the_right_errors(answer, error):
    p, _ = fake_provider({"account.get": answer})
    with pytest.raises(error):
        p.get_account("prov-1042")


def test_reads_are_retried_but_writes_are_not():
    p, fake = fake_provider({"account.list": (500, b"oops"), "account.add": (500, b"oops")})
    with pytest.raises(Unavailable):
        p.list_accounts()
    assert fake.methods().count("account.list") == 3
    p2, fake2 = fake_provider({"account.list": ok([]), "account.add": (500, b"oops")})
    with pytest.raises(Unavailable):
        p2.create_account(spec())
    assert fake2.methods().count("account.add") == 1


# --- accounts: create, adopt, generations -------------------------------------------------------------

def test_create_makes_the_account_with_its_plan_restrictions_and_domain(sim):
    p = provider(sim.url)
    account = p.create_account(spec(password=None))
    assert account.id == "prov-1042" and account.domain == "example.com" and account.status is AccountStatus.ACTIVE
    [entry] = sim.state()
    native = entry["native"]
    assert native["tarifflimits"] == {"light": 1, "standard": 2, "premium": 0}
    assert native["max_mailinglist"] == 1 and native["plan"] == "profi"
    assert native["memo"] == "provisioner service 1042" and native["contact"] == {"mail": "owner@example.net"}
    assert native["address_main"] == {"first_name": "Ada", "last_name": "Lovelace", "country": "DE"}
    assert account.limits == {"light_mailboxes": 1, "standard_mailboxes": 2, "premium_mailboxes": 0,
                              "mailboxes": 3, "enhanced_mailboxes": 0, "mailing_lists": 1,
                              "distribution_lists": 1, "account_plan": "profi"}


def test_the_billing_password_becomes_the_account_password(sim):
    from provisioner.simulators.mailboxorg import check_password
    p = provider(sim.url)
    p.create_account(AccountSpec(**{**spec().__dict__, "password": ACCOUNT_PASSWORD}))
    assert check_password(sim.sim.accounts["prov-1042"].password_hash, ACCOUNT_PASSWORD)
    p.set_password("prov-1042", "Changed-Pass-2024")
    assert check_password(sim.sim.accounts["prov-1042"].password_hash, "Changed-Pass-2024")


def test_a_retried_create_adopts_the_account_and_finishes_the_domain(sim):
    p = provider(sim.url)
    sim.faults(error_rate=1.0, only_actions=["domain.add"])
    with pytest.raises(Unavailable):
        p.create_account(spec())
    sim.faults(reset=True)
    assert p.find_account(spec()) is None          # half made: create_account must finish it
    account = p.create_account(spec())
    assert account.id == "prov-1042" and account.domain == "example.com"
    assert sim.calls()["account.add"] == 1 and [a["id"] for a in sim.state()] == ["prov-1042"]
    assert p.find_account(spec()).id == "prov-1042"


def test_an_account_made_meanwhile_is_adopted_not_doubled(sim):
    p = provider(sim.url)
    original = MailboxOrgProvider._account_list
    calls = []

    def stale_listing(self):           # the listing was read just before someone else's create
        calls.append(1)
        listing = original(self)
        if len(calls) == 1:
            sim.rpc("account.add", account="prov-1042", password=ACCOUNT_PASSWORD, plan="reseller")
            return {}
        return listing
    MailboxOrgProvider._account_list = stale_listing
    try:
        account = p.create_account(spec())
    finally:
        MailboxOrgProvider._account_list = original
    assert account.id == "prov-1042" and account.domain == "example.com"
    assert len(sim.state()) == 1


def test_a_deleted_account_keeps_its_name_so_a_new_order_gets_the_next(sim):
    p = provider(sim.url)
    first = p.create_account(spec())
    p.delete_account(first.id)
    p.delete_account(first.id)                      # again: not an error
    assert p.get_account(first.id).status is AccountStatus.DELETED
    assert p.find_account(spec()) is None
    second = p.create_account(spec())
    assert second.id == "prov-1042-r2"
    assert p.find_account(spec()).id == "prov-1042-r2"
    assert [(a["id"], a["status"]) for a in sim.state()] == [("prov-1042", "deleted"), ("prov-1042-r2", "active")]


def test_an_account_name_taken_elsewhere_is_a_clear_conflict():
    p, fake = fake_provider({"account.list": ok([]), "account.add": rpc_error(1002, "Account already exists"),
                             "account.get": rpc_error(2, "Access denied")})
    with pytest.raises(Conflict) as info:
        p.create_account(spec())
    assert info.value.safe_message == "The account name for this service is taken on the e-mail platform."
    assert "domain.add" not in fake.methods()


def test_a_taken_domain_leaves_no_account_behind(make_sim):
    sim = make_sim(taken_domains=["taken.example"])
    p = provider(sim.url)
    with pytest.raises(Conflict) as info:
        p.create_account(spec(domain="taken.example"))
    assert not info.value.retryable
    assert info.value.safe_message == ("This domain is already registered with the e-mail platform "
                                       "under another account.")
    assert [a["status"] for a in sim.state()] == ["deleted"]


def test_unsupported_or_inconsistent_limits_are_refused_before_any_call():
    p, fake = fake_provider({})
    for limits in ({"aliases": 5}, {"mailbox_quota_gb": 10}, {"mailboxes": 2, "light_mailboxes": 1,
                   "standard_mailboxes": 2, "premium_mailboxes": 0}, {"account_plan": "gold"},
                   {"mailboxes": 1, "premium_mailboxes": 2}, {"light_mailboxes": -1},
                   {"mailing_lists": 1, "distribution_lists": 2}, {"premium_mailboxes": 1, "enhanced_mailboxes": 2}):
        with pytest.raises(ValidationError) as info:
            p.create_account(AccountSpec(service_id="1", domain="example.com", client=ClientInfo(id="7"),
                                         limits=limits))
        assert not info.value.retryable and info.value.safe_message != ValidationError.safe_message
    assert fake.calls == []


@pytest.mark.parametrize("limits, creating, params", [
    ({}, True, {"tarifflimits": {"light": 0, "standard": 0, "premium": 0}, "max_mailinglist": 0, "plan": "reseller"}),
    ({}, False, {}),
    ({"mailboxes": 5}, False, {"tarifflimits": {"light": 5, "standard": 0, "premium": 0}}),
    ({"mailboxes": 5, "enhanced_mailboxes": 2}, False, {"tarifflimits": {"light": 3, "standard": 0, "premium": 2}}),
    ({"mailboxes": 5, "standard_mailboxes": 1}, False, {"tarifflimits": {"light": 4, "standard": 1, "premium": 0}}),
    ({"standard_mailboxes": 3, "distribution_lists": 2, "account_plan": "ProfiXL"}, False,
     {"tarifflimits": {"light": 0, "standard": 3, "premium": 0}, "max_mailinglist": 2, "plan": "profixl"}),
])
def test_plan_restrictions(limits, creating, params):
    p, _ = fake_provider({})
    assert p.plan_restrictions(limits, creating=creating) == params


def test_set_limits(sim):
    p = provider(sim.url)
    account = p.create_account(spec())
    p.set_limits(account.id, {**LIMITS, "premium_mailboxes": 3, "account_plan": "basic"})
    native = sim.state()[0]["native"]
    assert native["tarifflimits"]["premium"] == 3 and native["plan"] == "basic"


def test_suspend_turns_the_mailboxes_off_and_unsuspend_keeps_the_customers_own_off(sim):
    p = provider(sim.url)
    account = p.create_account(spec(standard_mailboxes=3))
    for name in ("ada", "bob", "cid"):
        p.create_mailbox(account.id, MailboxSpec(local_part=name, password=MAILBOX_PASSWORD, type="standard"))
    p.update_mailbox(account.id, "bob", {"enabled": False})               # the customer's own choice
    p.suspend_account(account.id, "Overdue")

    def active() -> dict[str, bool]:
        return {m["mail"]: m["active"] for m in sim.state()[0]["native"]["mailboxes"]}
    assert not any(active().values())
    native = sim.state()[0]["native"]
    assert native["status"] == "aktiv"                                     # account.set has no status
    assert native["memo"] == "provisioner service 1042; suspended; inactive before: bob@example.com"
    assert p.get_account(account.id).status is AccountStatus.SUSPENDED
    p.suspend_account(account.id, "Overdue")                               # a repeat keeps the note
    assert sim.state()[0]["native"]["memo"].endswith("inactive before: bob@example.com")
    p.unsuspend_account(account.id)
    assert active() == {"ada@example.com": True, "bob@example.com": False, "cid@example.com": True}
    assert sim.state()[0]["native"]["memo"] == "provisioner service 1042"
    assert p.get_account(account.id).status is AccountStatus.ACTIVE
    calls = sim.calls()
    p.unsuspend_account(account.id)                                        # nothing left to do
    assert sim.calls().get("account.set") == calls.get("account.set")
    assert sim.calls().get("mail.set") == calls.get("mail.set")


def test_an_account_mailbox_org_disabled_reads_suspended_and_cannot_be_unsuspended(sim):
    p = provider(sim.url)
    account = p.create_account(spec())
    sim.sim.accounts[account.id].status = "disabled"            # mailbox.org's own lock
    assert p.get_account(account.id).status is AccountStatus.SUSPENDED
    with pytest.raises(NotSupported) as info:
        p.unsuspend_account(account.id)
    assert "support" in info.value.safe_message
    sim.sim.accounts[account.id].status = "nopop"
    assert p.get_account(account.id).status is AccountStatus.ACTIVE       # nopop: still a working account


def test_list_accounts_skips_deleted_ones(sim):
    p = provider(sim.url)
    ids = [p.create_account(spec(str(n), f"d{n}.example")).id for n in range(3)]
    p.delete_account(ids[1])
    page = p.list_accounts(page=1, per_page=10)
    assert [a.id for a in page.items] == [ids[0], ids[2]] and page.total == 2
    assert page.items[0].limits["standard_mailboxes"] == 2


# --- usage per tier, mailboxes, lists ---------------------------------------------------------------

def test_usage_counts_mailboxes_per_plan_but_not_mailing_lists(sim):
    p = provider(sim.url)
    account = p.create_account(spec(standard_mailboxes=3, premium_mailboxes=1, mailing_lists=2))
    p.create_mailbox(account.id, MailboxSpec(local_part="ada", password=MAILBOX_PASSWORD, type="standard"))
    p.create_mailbox(account.id, MailboxSpec(local_part="bob", password=MAILBOX_PASSWORD, type="standard"))
    p.create_mailbox(account.id, MailboxSpec(local_part="cid", password=MAILBOX_PASSWORD, type="enhanced"))
    p.create_mailbox(account.id, MailboxSpec(local_part="dan", password=MAILBOX_PASSWORD))      # basic: light
    usage = p.get_account(account.id).usage.as_dict()
    # mailing lists: only the account's own login may list them, so they are not reported
    assert usage == {"mailboxes": 4, "enhanced_mailboxes": 1, "aliases": 0, "storage_mb": 0,
                     "light_mailboxes": 1, "standard_mailboxes": 2, "premium_mailboxes": 1}
    assert "mailinglist.list" not in sim.calls()
    with pytest.raises(LimitExceeded):
        p.create_mailbox(account.id, MailboxSpec(local_part="eve", password=MAILBOX_PASSWORD, type="light"))


def test_mailbox_plans_and_quotas(sim):
    p = provider(sim.url)
    account = p.create_account(spec(premium_mailboxes=1))
    made = p.create_mailbox(account.id, MailboxSpec(local_part="Ada", password=MAILBOX_PASSWORD,
                                                    name="Ada King Lovelace", quota_gb=12, type="standard"))
    assert (made.id, made.type, made.quota_gb, made.name) == ("ada@example.com", "standard", 12, "Ada King Lovelace")
    native = sim.state()[0]["native"]["mailboxes"][0]
    assert native["additional_mail_quota"] == "2" and native["first_name"] == "Ada"
    assert native["last_name"] == "King Lovelace"
    with pytest.raises(ValidationError):
        p.create_mailbox(account.id, MailboxSpec(local_part="bob", password=MAILBOX_PASSWORD, quota_gb=5,
                                                 type="standard"))
    with pytest.raises(ValidationError):
        p.create_mailbox(account.id, MailboxSpec(local_part="bob", password=MAILBOX_PASSWORD, type="gold"))
    changed = p.update_mailbox(account.id, "ada", {"type": "premium", "quota_gb": 60, "enabled": False})
    assert (changed.type, changed.quota_gb, changed.enabled) == ("premium", 60, False)
    with pytest.raises(NotFound):
        p.update_mailbox(account.id, "ada@other.example", {"name": "x"})


def test_mail_add_goes_through_a_domain_login_with_a_fresh_password():
    answers = {"domain.list": ok([{"domain": "example.com", "account": "prov-1"}]),
               "domain.set": ok({"domain": "example.com"}), "mail.add": ok({"mail": "ada@example.com"})}
    p, fake = fake_provider(answers)
    p.create_mailbox("prov-1", MailboxSpec(local_part="ada", password=MAILBOX_PASSWORD))
    p.create_mailbox("prov-1", MailboxSpec(local_part="bob", password=MAILBOX_PASSWORD))
    assert fake.methods() == ["auth", "domain.list", "domain.set", "auth", "mail.add", "domain.list", "mail.add"]
    [(_, set_params, set_session), (_, auth_params, _)] = [c for c in fake.calls[2:4]]
    assert set_session == "sess-1" and set_params["domain"] == "example.com" and len(set_params["password"]) >= 20
    assert auth_params == {"user": "example.com", "pass": set_params["password"]}
    assert [c[2] for c in fake.calls if c[0] == "mail.add"] == ["sess-2", "sess-2"]     # the domain's session


def test_a_domain_login_of_another_level_is_refused():
    answers = {"domain.list": ok([{"domain": "example.com"}]), "domain.set": ok({"domain": "example.com"}),
               "auth": lambda params, s: ok({"session": "s-" + params["user"],
                                             "level": "reseller" if params["user"] == USER else "mail"})}
    p, fake = fake_provider(answers)
    with pytest.raises(AuthError):
        p.create_mailbox("prov-1", MailboxSpec(local_part="ada", password=MAILBOX_PASSWORD))
    assert "mail.add" not in fake.methods() and fake.methods().count("domain.set") == 2


@pytest.mark.parametrize("capability", [Capability.ALIASES, Capability.LISTS])
def test_aliases_and_lists_are_not_offered(sim, capability):
    p = provider(sim.url)
    account = p.create_account(spec())
    assert not p.supports(capability)
    with pytest.raises(NotSupported):
        p.list_aliases(account.id) if capability is Capability.ALIASES else p.list_lists(account.id)


# --- invoices -----------------------------------------------------------------------------------------

def test_invoice_payloads_decode_from_zlib():
    pdf = minimal_pdf(["hello"])
    assert decode_invoice({"bin": base64.b64encode(zlib.compress(pdf)).decode()}) == pdf   # PHP gzcompress
    for broken in ({"bin": "not base64!"}, {"bin": base64.b64encode(b"plain").decode()},
                   {"bin": base64.b64encode(gzip.compress(pdf)).decode()},              # gzip is not what it sends
                   {"bin": base64.b64encode(zlib.compress(b"<html>")).decode()}, {}, None):
        with pytest.raises(MalformedResponse):
            decode_invoice(broken)


def test_invoices_of_every_account_newest_first_and_their_pdfs(sim):
    p = provider(sim.url)
    first = p.create_account(spec("1"))
    second = p.create_account(spec("2", "two.example"))
    p.delete_account(second.id)                      # a terminated customer's invoices still count
    invoices = p.list_invoices()
    assert len(invoices) == 6 and {i.customer for i in invoices} == {first.id, second.id}
    assert [i.date for i in invoices] == sorted((i.date for i in invoices), reverse=True)
    assert all(i.currency == "EUR" and i.amount and i.status in ("paid", "open") for i in invoices)
    pdf = MailboxOrgProvider("other", {"provider": "mailboxorg", "base_url": sim.url, "username": USER,
                                       "password": PASSWORD}).invoice_pdf(invoices[-1].id)   # no list cached
    assert pdf.startswith(b"%PDF") and invoices[-1].id.encode() in pdf
    with pytest.raises(NotFound):
        p.invoice_pdf("BMBO-0000-1999")


# --- secrets ---------------------------------------------------------------------------------------------

def test_secrets_and_the_session_id_stay_out_of_logs_and_errors(sim, caplog):
    caplog.set_level(logging.DEBUG, logger="provisioner.upstream")
    p = provider(sim.url)
    account = p.create_account(AccountSpec(**{**spec().__dict__, "password": ACCOUNT_PASSWORD}))
    p.create_mailbox(account.id, MailboxSpec(local_part="ada", password=MAILBOX_PASSWORD))
    p.update_mailbox(account.id, "ada", {"password": "Changed-Box-Pass-5"})
    p.set_password(account.id, "Changed-Account-Pass-6")
    p.invoice_pdf(p.list_invoices()[0].id)
    with pytest.raises(ValidationError) as info:
        p.create_mailbox(account.id, MailboxSpec(local_part="bob", password="short"))
    sessions = list(sim.sim.sessions)            # the reseller's and the domain's
    assert len(sessions) == 2
    tokens = [i.token for a in sim.sim.accounts.values() for i in a.invoices]
    shown = "\n".join([caplog.text, info.value.message, info.value.body or ""])
    assert "create_account" in caplog.text and "account.add" in caplog.text
    for secret in (PASSWORD, ACCOUNT_PASSWORD, MAILBOX_PASSWORD, "Changed-Box-Pass-5", "Changed-Account-Pass-6",
                   "short", *sessions, *tokens):
        assert secret not in shown, secret
    assert sessions[0] in jsonlib.dumps(list(sim.sim.sessions))      # the check looked for the right thing


def test_a_password_echoed_by_the_upstream_is_scrubbed():
    answers = {"domain.list": ok([{"domain": "example.com"}]), "domain.set": ok({"domain": "example.com"}),
               "mail.add": lambda params, s: rpc_error(-32602, f"Invalid params: password {params['password']} "
                                                               "is too weak")}
    p, _ = fake_provider(answers)
    with pytest.raises(ValidationError) as info:
        p.create_mailbox("prov-1", MailboxSpec(local_part="ada", password="Weak-Echo-Pass"))
    assert "Weak-Echo-Pass" not in info.value.message and "Weak-Echo-Pass" not in (info.value.body or "")
    assert "***" in info.value.message


def test_only_the_latest_session_ids_are_kept_for_masking():
    p, _ = fake_provider({"account.list": ok([])})
    for _ in range(mbo.MASKED_SESSIONS + 5):
        p.test_connection()
    masked = p.http.masker.text("sess-1 sess-13 " + PASSWORD)
    assert masked.startswith("sess-1 ") and "sess-13" not in masked and PASSWORD not in masked
