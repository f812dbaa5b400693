"""The Modoboa adapter: settings, error mapping, adoption, suspension memory, termination,
the postmaster password, usage, and secrets kept out of logs."""
from __future__ import annotations

import logging

import pytest
import requests

from provisioner.providers.base import AccountSpec, AccountStatus, ClientInfo, MailboxSpec
from provisioner.providers.errors import (
    AuthError,
    ConfigurationError,
    Conflict,
    LimitExceeded,
    NotFound,
    ValidationError,
)
from provisioner.providers.http import HttpClient
from provisioner.providers.modoboa import ModoboaProvider, modoboa_error, strong_enough
from provisioner.simulators.modoboa import check_password, create_app
from provisioner.simulators.server import SimulatorServer

TOKEN = "feedface0unit0modoboa0token000000000000"
BILLING_PASSWORD = "Billing-Pass-2026"
BOX_PASSWORD = "Box-Secret-Pass-73"
LIMITS = {"mailboxes": 3, "aliases": 2, "distribution_lists": 1, "domain_quota_gb": 10, "mailbox_quota_mb": 1024}


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(HttpClient, "_sleep", lambda self, seconds: None)


class Sim:
    def __init__(self, **options):
        self.app = create_app(token=TOKEN, **options)
        self.server = SimulatorServer(self.app).start()
        self.url = self.server.url
        self.sim = self.app.extensions["simulator"]

    def provider(self, **config) -> ModoboaProvider:
        return ModoboaProvider("mdb", {"provider": "modoboa", "base_url": self.url, "token": TOKEN, **config})

    def entry(self, pk: str) -> dict:
        return requests.get(f"{self.url}/_sim/state", timeout=5).json()["accounts"][int(pk) - 1]

    def calls(self) -> dict:
        return requests.get(f"{self.url}/_sim/calls", timeout=5).json()["calls"]

    def faults(self, **faults) -> None:
        requests.post(f"{self.url}/_sim/faults", json=faults, timeout=5).raise_for_status()


@pytest.fixture
def sim():
    s = Sim()
    yield s
    s.server.stop()


def spec(domain: str = "customer.example", password: str | None = BILLING_PASSWORD, **limits) -> AccountSpec:
    return AccountSpec(service_id="601", domain=domain, client=ClientInfo(id="9", email="o@x.example"),
                       limits={**LIMITS, **limits}, password=password)


class FakeResponse:
    def __init__(self, status: int):
        self.status_code = status


# --- settings and errors ---------------------------------------------------------------------

def test_settings_are_checked():
    with pytest.raises(ConfigurationError):
        ModoboaProvider("m", {"provider": "modoboa", "base_url": "http://x"})
    with pytest.raises(ConfigurationError):
        ModoboaProvider("m", {"provider": "modoboa", "base_url": "http://x", "token": "t", "timeout": "soon"})
    p = ModoboaProvider("m", {"provider": "modoboa", "base_url": "http://x/api/v2/", "token": "t", "timeout": 4})
    assert p.http.base_url == "http://x/api/v2" and p.http.timeout == 4.0
    assert p.http.headers["Authorization"] == "Token t"


@pytest.mark.parametrize("status, body, cls, safe", [
    (400, {"error": "dom.example: domain quota exceeded"}, LimitExceeded, "storage quota"),
    (400, {"mailbox": ["Mailboxes: limit reached"]}, LimitExceeded, None),
    (400, {"name": ["domain with this name already exists."]}, Conflict, None),
    (400, {"password": ["Password must contain at least 1 digit."]}, ValidationError, "password"),
    (400, {"mailbox": {"quota": ["This field is required"]}}, ValidationError, "quota"),
    (403, {"detail": "You do not have permission to perform this action."}, AuthError, None),
])
def test_error_mapping(status, body, cls, safe):
    err = modoboa_error(FakeResponse(status), body)
    assert type(err) is cls
    if safe:
        assert safe in err.safe_message
    # the status mapping
    assert modoboa_error(FakeResponse(404), {"detail": "No Domain matches the given query."}) is None


def test_password_policy_is_modoboas():
    assert strong_enough("Abcdefg1") and not strong_enough("abcdefg1") and not strong_enough("ABCDEFG1")
    assert not strong_enough("Abcdefgh") and not strong_enough("Abc1")
    p = ModoboaProvider("m", {"provider": "modoboa", "base_url": "http://x", "token": "t"})
    assert p.password_problem("weakpass", {}) and p.password_problem("Str0ng-Pass", {}) is None
    assert p.limit_problems({"domain_quota_gb": 1, "mailbox_quota_mb": 2048}) == {
        "mailbox_quota_mb": "The mailbox quota cannot be larger than the domain quota."}
    assert "mailboxes" in p.limit_problems({"mailboxes": "many"})


def test_bad_token_is_an_auth_error_and_never_logged(sim, caplog):
    caplog.set_level(logging.DEBUG, logger="provisioner")
    bad = ModoboaProvider("mdb", {"provider": "modoboa", "base_url": sim.url, "token": "wrong0token0value"})
    with pytest.raises(AuthError) as info:
        bad.test_connection()
    assert "wrong0token0value" not in caplog.text and "wrong0token0value" not in str(info.value)
    sim.provider().test_connection()
    assert TOKEN not in caplog.text


# --- the account ---------------------------------------------------------------------------------

def test_create_makes_a_domain_with_quotas_and_a_postmaster_with_the_billing_password(sim, caplog):
    caplog.set_level(logging.DEBUG, logger="provisioner")
    p = sim.provider()
    account = p.create_account(spec())
    native = sim.sim.domains[int(account.id)]
    assert (native.name, native.quota, native.default_mailbox_quota) == ("customer.example", 10240, 1024)
    assert check_password(sim.app, "postmaster@customer.example", BILLING_PASSWORD)
    assert account.status is AccountStatus.ACTIVE and account.limits["mailboxes"] == 3
    assert BILLING_PASSWORD not in caplog.text
    got = p.get_account(account.id)
    assert got.limits == {"domain_quota_gb": 10, "mailbox_quota_mb": 1024, "mailbox_quota_gb": 1,
                          "mailboxes": 3, "aliases": 2, "distribution_lists": 1}
    assert got.usage.mailboxes == 0                                  # postmaster is not counted


def test_a_lost_postmaster_create_is_finished_not_doubled(sim):
    p = sim.provider()
    sim.faults(error_rate=1.0, only_actions=["accounts.create"])
    with pytest.raises(Exception):
        p.create_account(spec())
    sim.faults(reset=True)
    assert p.find_account(spec()) is None                             # half-made: not the service's yet
    unfinished = p.find_unfinished(spec())
    assert unfinished is not None
    again = p.create_account(spec())
    assert again.id == unfinished.id and len(sim.sim.domains) == 1
    assert p.find_account(spec()).id == again.id
    assert sim.calls()["domains.create"] == 1


def test_a_weak_billing_password_still_creates_a_postmaster(sim):
    p = sim.provider()
    account = p.create_account(spec(password="short"))
    assert not check_password(sim.app, "postmaster@customer.example", "short")
    p.set_password(account.id, "Fresh-Pass-42")
    assert check_password(sim.app, "postmaster@customer.example", "Fresh-Pass-42")
    with pytest.raises(ValidationError):
        p.set_password(account.id, "nodigits")


def test_suspend_disables_domain_and_accounts_and_unsuspend_keeps_the_ones_off_before(sim):
    p = sim.provider()
    account = p.create_account(spec())
    ada = p.create_mailbox(account.id, MailboxSpec(local_part="ada", password=BOX_PASSWORD))
    bob = p.create_mailbox(account.id, MailboxSpec(local_part="bob", password=BOX_PASSWORD))
    p.update_mailbox(account.id, bob.id, {"enabled": False})          # the customer turned bob off
    p.suspend_account(account.id, "Overdue on Payment")
    p.suspend_account(account.id, "Overdue on Payment")               # a repeat keeps the memory
    assert not check_password(sim.app, "postmaster@customer.example", BILLING_PASSWORD)
    assert all(not u.is_active for u in sim.sim.users.values() if u.domain_pk == int(account.id))
    assert sim.entry(account.id)["native"]["memo"]["inactive_before"] == ["bob@customer.example"]
    assert p.get_account(account.id).status is AccountStatus.SUSPENDED
    p.unsuspend_account(account.id)
    assert check_password(sim.app, "postmaster@customer.example", BILLING_PASSWORD)
    assert check_password(sim.app, "ada@customer.example", BOX_PASSWORD)
    assert not check_password(sim.app, "bob@customer.example", BOX_PASSWORD)   # still off
    assert "suspended" not in sim.entry(account.id)["native"]["memo"]
    assert [m.id for m in p.list_mailboxes(account.id) if m.enabled] == [ada.id]
    assert p.list_aliases(account.id) == []                            # the memo is never listed


def test_delete_removes_the_accounts_so_none_can_log_in(sim):
    p = sim.provider()
    account = p.create_account(spec())
    p.create_mailbox(account.id, MailboxSpec(local_part="ada", password=BOX_PASSWORD))
    p.delete_account(account.id)
    assert sim.sim.domains == {} and [u.username for u in sim.sim.users.values()] == ["admin"]
    assert not check_password(sim.app, "ada@customer.example", BOX_PASSWORD)
    p.delete_account(account.id)                                       # gone already: no error
    assert sim.calls()["domains.delete"] == 1


def test_set_limits_patches_quotas_and_keeps_counts(sim):
    p = sim.provider()
    account = p.create_account(spec())
    p.set_limits(account.id, {**LIMITS, "domain_quota_gb": 20, "mailbox_quota_mb": 2048, "mailboxes": 1})
    native = sim.sim.domains[int(account.id)]
    assert (native.quota, native.default_mailbox_quota) == (20480, 2048)
    p.create_mailbox(account.id, MailboxSpec(local_part="ada", password=BOX_PASSWORD))
    with pytest.raises(LimitExceeded):
        p.create_mailbox(account.id, MailboxSpec(local_part="bob", password=BOX_PASSWORD))
    with pytest.raises(ValidationError):
        p.set_limits(account.id, {"domain_quota_gb": 1, "mailbox_quota_mb": 4096})


def test_domain_quota_exceeded_is_a_limit(sim):
    p = sim.provider()
    account = p.create_account(spec(domain_quota_gb=2, mailbox_quota_mb=0, mailboxes=5))
    p.create_mailbox(account.id, MailboxSpec(local_part="ada", password=BOX_PASSWORD, quota_gb=2))
    with pytest.raises(LimitExceeded) as info:
        p.create_mailbox(account.id, MailboxSpec(local_part="bob", password=BOX_PASSWORD, quota_gb=1))
    assert "quota" in info.value.safe_message


def test_weak_mailbox_password_names_the_field_and_is_not_echoed(sim):
    p = sim.provider()
    account = p.create_account(spec())
    with pytest.raises(ValidationError) as info:
        p.create_mailbox(account.id, MailboxSpec(local_part="ada", password="weakpassword"))
    assert "password" in info.value.safe_message and "weakpassword" not in str(info.value)
    with pytest.raises(Conflict):
        p.create_mailbox(account.id, MailboxSpec(local_part="postmaster", password=BOX_PASSWORD))


def test_usage_counts_objects_and_storage_from_quota_usage(sim):
    p = sim.provider()
    account = p.create_account(spec())
    p.create_mailbox(account.id, MailboxSpec(local_part="ada", password=BOX_PASSWORD))
    p.create_alias(account.id, "info", "ada@customer.example")
    lst = p.create_list(account.id, "team", ["one@x.example"])             # a one-member list stays a list
    requests.post(f"{sim.url}/_sim/mutate", json={"account_id": account.id,
                                                  "used_mb": {"ada@customer.example": 512}},
                  timeout=5).raise_for_status()
    usage = p.get_account(account.id).usage
    assert (usage.mailboxes, usage.aliases, usage.distribution_lists, usage.storage_mb) == (1, 1, 1, 512)
    assert [x.id for x in p.list_lists(account.id)] == [lst.id]
    assert [a.address for a in p.list_aliases(account.id)] == ["info@customer.example"]
    moved = p.update_alias(account.id, p.list_aliases(account.id)[0].id, "other@x.example")
    assert moved.target == "other@x.example"
    with pytest.raises(NotFound):
        p.delete_alias(account.id, lst.id)                                # a list is not an alias


def test_list_accounts_pages_and_a_page_past_the_end_is_empty(sim):
    p = sim.provider()
    for n in range(3):
        p.create_account(spec(domain=f"d{n}.example"))
    first = p.list_accounts(page=1, per_page=2)
    assert len(first.items) == 2 and first.total == 3 and first.has_more
    past = p.list_accounts(page=5, per_page=2)
    assert past.items == [] and past.total == 3
    assert p.get_account(first.items[0].id).domain == first.items[0].domain
    with pytest.raises(NotFound):
        p.get_account("acc_9999")
