"""The Qboxmail adapter: error mapping, adoption, statuses, DNS, relay accounts and their secrets."""
from __future__ import annotations

import datetime as dt
import logging

import pytest
import requests
from flask import Flask, jsonify

from provisioner.providers import qboxmail as qb
from provisioner.providers.base import AccountSpec, AccountStatus, Capability, ClientInfo, MailboxSpec
from provisioner.providers.errors import (
    AuthError,
    ConfigurationError,
    Conflict,
    LimitExceeded,
    NotFound,
    NotSupported,
    Unavailable,
    ValidationError,
)
from provisioner.providers.http import HttpClient
from provisioner.providers.qboxmail import QboxmailProvider, qboxmail_error, relay_status, status_of
from provisioner.simulators.qboxmail import check_password, create_app
from provisioner.simulators.server import SimulatorServer

TOKEN = "unit-qbox-token-8c1d"
START = dt.datetime(2026, 11, 21, 12, tzinfo=dt.timezone.utc).timestamp()
TODAY = dt.date(2026, 11, 21)
MAILBOX_PASSWORD = "Box-Secret-Pass-73"


class FakeClock:
    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(HttpClient, "_sleep", lambda self, seconds: None)


class Sim:
    """A simulator on a real port plus its in-process state, for white-box checks."""

    def __init__(self, **options):
        self.clock = FakeClock()
        self.app = create_app(api_token=TOKEN, clock=self.clock, **options)
        self.server = SimulatorServer(self.app).start()
        self.url = self.server.url
        self.sim = self.app.extensions["simulator"]

    def provider(self, **config) -> QboxmailProvider:
        return QboxmailProvider("qbox", {"provider": "qboxmail", "base_url": self.url, "api_token": TOKEN,
                                         **config}, today=lambda: TODAY)

    def calls(self) -> dict[str, int]:
        return requests.get(f"{self.url}/_sim/calls", timeout=5).json()["calls"]

    def state(self) -> list[dict]:
        return requests.get(f"{self.url}/_sim/state", timeout=5).json()["accounts"]

    def faults(self, **faults) -> None:
        requests.post(f"{self.url}/_sim/faults", json=faults, timeout=5).raise_for_status()

    def mutate(self, account_id: str, **changes) -> None:
        requests.post(f"{self.url}/_sim/mutate", json={"account_id": account_id, **changes},
                      timeout=5).raise_for_status()

    def api(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        """A call made by someone else (the reseller's own panel, another tool)."""
        return requests.request(method, f"{self.url}{path}", json=body, headers={"X-Api-Token": TOKEN}, timeout=5)


@pytest.fixture
def make_sim():
    sims: list[Sim] = []

    def make(**options) -> Sim:
        sims.append(Sim(**options))
        return sims[-1]
    yield make
    for s in sims:
        s.server.stop()


@pytest.fixture
def sim(make_sim) -> Sim:
    return make_sim(verification_delay=0)


@pytest.fixture
def provider(sim) -> QboxmailProvider:
    return sim.provider()


def hosting(service_id: str = "1042", domain: str = "shop.example", **limits) -> AccountSpec:
    return AccountSpec(service_id=service_id, domain=domain, client=ClientInfo(id="77", email="ada@client.example"),
                       limits={"qboxmail_product": "hosting", "plan": "basic", "mailboxes": 2,
                               "mailbox_quota_gb": 8, **limits})


def relay(service_id: str = "2042", domain: str = "shop.example", client_id: str = "77", **limits) -> AccountSpec:
    return AccountSpec(service_id=service_id, domain=domain,
                       client=ClientInfo(id=client_id, email="Ada@Client.example"),
                       limits={"qboxmail_product": "relay", "relay_type": "transactional", "relay_plan": "prepaid",
                               "relay_messages": 20000, "relay_max_domains": 2, **limits})


# --- settings and capabilities ----------------------------------------------------------

def test_settings_are_checked():
    base = {"provider": "qboxmail", "base_url": "https://api.qboxmail.com", "api_token": TOKEN}
    with pytest.raises(ConfigurationError):
        QboxmailProvider("q", {**base, "api_token": ""})
    with pytest.raises(ConfigurationError):
        QboxmailProvider("q", {**base, "product_kinds": ["hosting", "webmail"]})
    with pytest.raises(ConfigurationError):
        QboxmailProvider("q", {**base, "mx_hosts": "mx.example:high"})
    with pytest.raises(ConfigurationError):
        QboxmailProvider("q", {**base, "timeout": "soon"})


def test_an_instance_reports_the_capabilities_of_the_kinds_it_serves():
    base = {"provider": "qboxmail", "base_url": "https://api.qboxmail.com", "api_token": TOKEN}
    both = QboxmailProvider("q", base)
    only_hosting = QboxmailProvider("q", {**base, "product_kinds": ["hosting"]})
    only_relay = QboxmailProvider("q", {**base, "product_kinds": "relay"})
    assert QboxmailProvider.capabilities == {c for c in Capability if both.supports(c)}
    assert only_hosting.supports(Capability.MAILBOXES) and only_hosting.supports(Capability.DNS)
    assert not only_hosting.supports(Capability.TERMS) and not only_hosting.supports(Capability.RELAY)
    assert only_relay.supports(Capability.RELAY) and only_relay.supports(Capability.TERMS)
    assert not only_relay.supports(Capability.MAILBOXES)
    with pytest.raises(ConfigurationError):
        only_hosting.create_account(relay())
    assert {"qboxmail_product", "plan", "relay_type", "relay_plan", "relay_messages",
            "relay_max_domains"} == QboxmailProvider.extra_limits


# --- errors ---------------------------------------------------------------------------------

class Answer:
    def __init__(self, status: int):
        self.status_code = status


def _validation(*pairs, message="Validation failed"):
    return {"message": message, "errors": [{"field": f, "description": d} for f, d in pairs]}


@pytest.mark.parametrize("body, error, safe", [
    (_validation(("name", "already exists")), Conflict, Conflict.safe_message),
    (_validation(("name", "has already been taken")), Conflict, Conflict.safe_message),
    (_validation(("plan", "free plan already used: only one free account per customer")),
     ValidationError, qb.FREE_PLAN_TAKEN),
    (_validation(("plan", "only one free account per customer")), ValidationError, qb.FREE_PLAN_TAKEN),
    (_validation(("max_email_accounts", "maximum number of email accounts reached")), LimitExceeded,
     LimitExceeded.safe_message),
    (_validation(("quota", "exceeds the maximum quota of the domain")), LimitExceeded, LimitExceeded.safe_message),
    (_validation(("domain", "ownership has not been verified")), Conflict, qb.NOT_VERIFIED),
    (_validation(("quota", "is not included in the list"), ("firstname", "can't be blank")), ValidationError,
     ValidationError.safe_message),
])
def test_422_answers_are_mapped_by_their_field_errors(body, error, safe):
    err = qboxmail_error(Answer(422), body)
    assert type(err) is error and err.safe_message == safe and not err.retryable
    assert err.fields == {e["field"]: e["description"] for e in body["errors"]}


def test_a_free_plan_refusal_is_a_clear_validation_error_not_an_adoption():
    # "already used" must not read as "the account already exists": there is nothing to adopt.
    err = qboxmail_error(Answer(422), _validation(("plan", "the free plan is already used by this customer")))
    assert isinstance(err, ValidationError) and err.safe_message == qb.FREE_PLAN_TAKEN
    assert not qb.already_exists(err)


def test_other_validation_errors_name_the_fields_for_operators():
    err = qboxmail_error(Answer(422), _validation(("quota", "is not included in the list"),
                                                  ("postmaster_password", "is too weak")))
    assert "quota is not included in the list" in err.message
    assert "postmaster_password is too weak" in err.message
    assert "quota" not in err.safe_message


@pytest.mark.parametrize("status", [200, 201, 204, 401, 403, 404, 429, 500, 503])
def test_other_statuses_are_left_to_the_status_mapping(status):
    assert qboxmail_error(Answer(status), {"message": "x", "errors": []}) is None


def _answering(status: int, body: dict):
    app = Flask("fixed")
    hits = []

    @app.route("/api/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
    def fixed(rest):
        hits.append(rest)
        response = jsonify(body)
        response.status_code = status
        return response
    return SimulatorServer(app).start(), hits


@pytest.mark.parametrize("status, body, error, retryable, tries", [
    (401, {"message": "Unauthorized", "errors": []}, AuthError, False, 1),
    (403, {"message": "Forbidden", "errors": []}, AuthError, False, 1),
    (404, {"message": "Not found", "errors": []}, NotFound, False, 1),
    (422, _validation(("name", "is not valid")), ValidationError, False, 1),
    (500, {"message": "Internal server error", "errors": []}, Unavailable, True, 3),
])
def test_only_500_is_retried(status, body, error, retryable, tries):
    server, hits = _answering(status, body)
    try:
        provider = QboxmailProvider("qbox", {"provider": "qboxmail", "base_url": server.url, "api_token": TOKEN})
        with pytest.raises(error) as info:
            provider.get_account("D123456789")
        assert info.value.retryable is retryable and len(hits) == tries
        assert TOKEN not in info.value.message
    finally:
        server.stop()


def test_a_create_answered_500_is_not_repeated(sim, provider):
    sim.faults(error_rate=1.0, only_actions=["domains.create"])
    with pytest.raises(Unavailable):
        provider.create_account(hosting())
    assert sim.calls()["domains.create"] == 1


# --- statuses -----------------------------------------------------------------------------

@pytest.mark.parametrize("value, status", [
    ("enabled", AccountStatus.ACTIVE), ("enableStatus", AccountStatus.ACTIVE), ("recordMXStatus", AccountStatus.ACTIVE),
    ("disabled", AccountStatus.SUSPENDED), ("disableStatus", AccountStatus.SUSPENDED),
    ("blocked", AccountStatus.SUSPENDED), ("waiting", AccountStatus.PENDING), ("waitStatus", AccountStatus.PENDING),
    ("ownership_check", AccountStatus.PENDING), ("suspended", AccountStatus.SUSPENDED),
    ("rejected", AccountStatus.SUSPENDED), ("deleted", AccountStatus.DELETED),
    ("wait_pay", AccountStatus.PENDING), ("updateStatus", AccountStatus.PENDING),
    ("errorStatus", AccountStatus.PENDING), ("error", AccountStatus.PENDING), ("deleting", AccountStatus.DELETED),
    ("something new", AccountStatus.PENDING), (None, AccountStatus.PENDING),
])
def test_status_mapping(value, status):
    assert status_of(value) is status


@pytest.mark.parametrize("resource, status", [
    ({"status": 1}, AccountStatus.ACTIVE), ({"status": 0}, AccountStatus.PENDING),
    ({"status": 2}, AccountStatus.SUSPENDED), ({"status": 3}, AccountStatus.PENDING),
    ({"status": 4}, AccountStatus.SUSPENDED), ({"status": "enableStatus"}, AccountStatus.ACTIVE),
    ({"status": 1, "display_status": "wait_pay"}, AccountStatus.PENDING), ({"status": 9}, AccountStatus.PENDING),
])
def test_relay_status_prefers_a_status_name_over_the_number(resource, status):
    assert relay_status(resource) is status


# --- hosting domains --------------------------------------------------------------------------

def test_create_find_get_suspend_limits_and_delete(sim, provider):
    account = provider.create_account(hosting(plan="professional", mailboxes=-1, mailbox_quota_gb=16))
    assert account.status is AccountStatus.ACTIVE and account.domain == "shop.example"
    assert account.limits == {"qboxmail_product": "hosting", "plan": "professional", "mailboxes": -1,
                              "mailbox_quota_gb": 16}
    assert provider.find_account(hosting()).id == account.id
    assert provider.find_account(hosting(domain="other.example")) is None
    provider.suspend_account(account.id, "Overdue")
    assert provider.get_account(account.id).status is AccountStatus.SUSPENDED
    provider.unsuspend_account(account.id)
    provider.set_limits(account.id, {"qboxmail_product": "hosting", "plan": "enterprise", "mailboxes": 4,
                                     "mailbox_quota_gb": 2})
    assert sim.state()[0]["limits"] == {"qboxmail_product": "hosting", "plan": "enterprise", "mailboxes": 4,
                                        "mailbox_quota_gb": 2}
    with pytest.raises(ValidationError):
        provider.set_limits(account.id, {"qboxmail_product": "relay"})
    assert provider.renew(account.id, dt.date(2030, 1, 1)) is None
    provider.delete_account(account.id)
    provider.delete_account(account.id)                       # gone already: the goal holds
    assert sim.state() == [] and provider.find_account(hosting()) is None
    with pytest.raises(NotFound):
        provider.get_account(account.id)


def test_a_422_already_exists_on_create_is_adopted(sim, provider):
    body = {"name": "shop.example", "postmaster_password": "Panel-Pass-12", "postmaster_password_confirmation":
            "Panel-Pass-12"}
    code = sim.api("POST", "/api/domains", body).json()["resource_code"]   # made in the panel, or a lost answer
    account = provider.create_account(hosting())
    assert account.id == code and len(sim.state()) == 1
    assert sim.calls()["domains.create"] == 2 and sim.calls()["domains.list"] == 1


def test_a_domain_of_another_customer_is_a_conflict_with_a_safe_message(make_sim):
    sim = make_sim(verification_delay=0, taken_domains=["taken.example"])
    with pytest.raises(Conflict) as info:
        sim.provider().create_account(hosting(domain="taken.example"))
    assert info.value.safe_message == ("This domain is already registered with the e-mail platform "
                                       "under another account.")
    assert sim.state() == []


def test_a_new_domain_is_pending_with_its_ownership_record_until_verified(make_sim):
    sim = make_sim()                                         # never verified by itself
    provider = sim.provider()
    account = provider.create_account(hosting())
    assert account.status is AccountStatus.PENDING
    assert provider.find_account(hosting()).status is AccountStatus.PENDING
    records = provider.dns_records(account.id)
    ownership = [r for r in records if r.purpose == "ownership check"]
    assert [(r.type, r.host, r.value) for r in ownership] == [
        ("A", f"{account.id.lower()}.shop.example", "185.97.217.16")]
    assert ("MX", "shop.example", "mx01.qboxmail.com", 10) in [(r.type, r.host, r.value, r.priority) for r in records]
    assert any(r.type == "TXT" and r.value.startswith("v=spf1 include:spf.qboxmail.com") for r in records)
    assert sim.calls()["domains.dns_ownership_check_sync"] == 1
    with pytest.raises(Conflict) as info:
        provider.create_mailbox(account.id, MailboxSpec(local_part="ada", password=MAILBOX_PASSWORD))
    assert info.value.safe_message == qb.NOT_VERIFIED
    sim.mutate(account.id, status="active")
    assert provider.get_account(account.id).status is AccountStatus.ACTIVE
    records = provider.dns_records(account.id)
    assert not [r for r in records if r.purpose == "ownership check"]
    assert not [r for r in records if r.purpose == "DKIM"]               # the shared signature needs none
    assert sim.calls()["domains.dns_ownership_check_sync"] == 1          # asked only while pending
    assert sim.calls()["domains.dns_check"] == 1                         # active: Qboxmail rechecks the MX


def test_the_ownership_record_comes_from_possession_a_record_without_a_sync_check(make_sim, monkeypatch):
    sim = make_sim()
    provider = sim.provider(ownership_ip="203.0.113.7")
    account = provider.create_account(hosting())
    put = provider._put

    def no_sync_path(path, action, body, **kw):     # as if the sync check existed for alias domains only
        if path.endswith("/dns_ownership_check/sync"):
            raise NotFound("404")
        return put(path, action, body, **kw)

    monkeypatch.setattr(provider, "_put", no_sync_path)
    # The queued check is asked for instead, and the record built from possession_a_record.
    [ownership] = [r for r in provider.dns_records(account.id) if r.purpose == "ownership check"]
    assert (ownership.type, ownership.host, ownership.value) == ("A", f"{account.id.lower()}.shop.example",
                                                                 "203.0.113.7")
    assert sim.calls()["domains.dns_ownership_check"] == 1


def test_a_rejected_domain_is_not_pending_and_fails_with_a_safe_message(sim, provider):
    account = provider.create_account(hosting())
    sim.mutate(account.id, qboxmail_status="rejected")
    assert provider.get_account(account.id).status is AccountStatus.SUSPENDED
    with pytest.raises(ValidationError) as info:
        provider.unsuspend_account(account.id)
    assert info.value.safe_message == qb.DOMAIN_REJECTED and not info.value.retryable
    assert "domains.status" not in sim.calls()                          # nothing asked of Qboxmail


def test_suspended_and_deleted_domains(sim, provider):
    account = provider.create_account(hosting())
    sim.mutate(account.id, qboxmail_status="suspended")
    assert provider.get_account(account.id).status is AccountStatus.SUSPENDED
    sim.mutate(account.id, qboxmail_status="deleted")                  # a deletion Qboxmail queued
    assert provider.get_account(account.id).status is AccountStatus.DELETED
    assert provider.find_account(hosting()) is None


def test_enable_dkim_makes_a_custom_key_once_and_shows_its_record(sim, provider):
    account = provider.create_account(hosting())
    record = provider.enable_dkim(account.id)
    assert record.type == "TXT" and record.purpose == "DKIM"
    assert record.host.startswith("qbm") and record.host.endswith("._domainkey.shop.example")
    assert record.value.startswith("v=DKIM1; k=rsa; p=MIGf")
    assert provider.enable_dkim(account.id) == record                    # already there: no second key
    assert sim.calls()["domains.dkim"] == 1
    assert [r for r in provider.dns_records(account.id) if r.purpose == "DKIM"] == [record]


@pytest.mark.parametrize("selector", ["qbm1807252189", "qbm1807252189._domainkey"])
def test_a_dkim_selector_is_read_with_or_without_domainkey(selector):
    record = QboxmailProvider._dkim_record({"dkim_selector": selector, "dkim_public_key": "MIGfMA0G"}, "a.example")
    assert (record.host, record.value) == ("qbm1807252189._domainkey.a.example", "v=DKIM1; k=rsa; p=MIGfMA0G")


def test_enable_dkim_is_for_hosting_domains(provider):
    with pytest.raises(NotSupported):
        provider.enable_dkim("42")


def test_dns_records_check_ownership_so_a_published_record_activates(make_sim):
    sim = make_sim(verification_delay=30)
    provider = sim.provider()
    account = provider.create_account(hosting())
    sim.clock.now += 31                                      # the customer published the record
    assert provider.get_account(account.id).status is AccountStatus.PENDING
    provider.dns_records(account.id)                         # converge polls: this asks Qboxmail to check
    assert provider.get_account(account.id).status is AccountStatus.ACTIVE


def test_postmaster_passwords_and_the_token_stay_out_of_logs(sim, provider, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG, logger="provisioner")
    monkeypatch.setattr(qb, "generate_password", lambda: "Generated-Postmaster-77")
    account = provider.create_account(hosting())                              # no password: generated
    provider.create_account(AccountSpec(**{**hosting(domain="two.example").__dict__,
                                           "password": "Billing-Pass-991"}))   # the billing password
    provider.set_password(account.id, "Changed-Pass-552")
    with pytest.raises(ValidationError) as info:
        provider.set_password(account.id, "weak")
    assert info.value.safe_message == qb.WEAK_PASSWORD
    code = provider.find_account(hosting(domain="two.example")).id
    assert check_password(sim.sim.domains[code].postmaster_hash, "Billing-Pass-991")
    assert check_password(sim.sim.domains[account.id].postmaster_hash, "Changed-Pass-552")
    for secret in ("Generated-Postmaster-77", "Billing-Pass-991", "Changed-Pass-552", TOKEN):
        assert secret not in caplog.text and secret not in str(sim.state())
    assert "create_account" in caplog.text


# --- mailboxes ---------------------------------------------------------------------------------

def test_mailboxes(sim, provider):
    account = provider.create_account(hosting(mailboxes=2))
    ada = provider.create_mailbox(account.id, MailboxSpec(local_part="Ada", password=MAILBOX_PASSWORD,
                                                          name="Ada Lovelace", quota_gb=5))
    assert ada.id.startswith("EA") and ada.address == "ada@shop.example" and ada.quota_gb == 5
    provider.create_mailbox(account.id, MailboxSpec(local_part="bob", password=MAILBOX_PASSWORD))
    with pytest.raises(LimitExceeded):
        provider.create_mailbox(account.id, MailboxSpec(local_part="eve", password=MAILBOX_PASSWORD))
    with pytest.raises(ValidationError):
        provider.create_mailbox(account.id, MailboxSpec(local_part="eve", password=MAILBOX_PASSWORD, type="enhanced"))
    listed = provider.list_mailboxes(account.id)
    assert [(m.address, m.name, m.quota_gb) for m in listed] == [("ada@shop.example", "Ada Lovelace", 5),
                                                                 ("bob@shop.example", "bob", 8)]
    changed = provider.update_mailbox(account.id, ada.id, {"name": "Ada L.", "quota_gb": 2, "enabled": False,
                                                           "password": "New-Box-Pass-4"})
    assert (changed.name, changed.quota_gb, changed.enabled) == ("Ada L.", 2, False)
    assert provider.get_account(account.id).usage.mailboxes == 2
    provider.delete_mailbox(account.id, ada.id)
    with pytest.raises(NotFound):
        provider.delete_mailbox(account.id, ada.id)
    with pytest.raises(NotFound):
        provider.delete_mailbox(account.id, "ada")
    assert MAILBOX_PASSWORD not in str(sim.state()) and "New-Box-Pass-4" not in str(sim.state())


def test_kinds_refuse_each_others_calls(sim, provider):
    domain = provider.create_account(hosting())
    account = provider.create_account(relay())
    with pytest.raises(NotSupported):
        provider.list_mailboxes(account.id)
    with pytest.raises(NotSupported):
        provider.set_password(account.id, "Some-Pass-123")
    for call in (provider.relay_regenerate_password, provider.relay_usage):
        with pytest.raises(NotSupported):
            call(domain.id)
    with pytest.raises(NotSupported):
        provider.relay_associate_domain(domain.id, "shop.example")
    assert provider.dns_records(account.id) == []
    with pytest.raises(NotFound):
        provider.get_account("acc_9999")


# --- relay accounts -------------------------------------------------------------------------------

def test_a_relay_password_is_a_one_time_secret_masked_everywhere(sim, provider, caplog):
    caplog.set_level(logging.DEBUG, logger="provisioner")
    account = provider.create_account(relay())
    password = account.one_time_secrets["relay_password"]
    assert check_password(sim.sim.relays[int(account.id)].password_hash, password)
    assert account.status is AccountStatus.ACTIVE and account.domain == "shop.example"
    assert account.external_id == "2042" and account.paid_until == dt.date(2027, 11, 21)
    assert account.limits == {"qboxmail_product": "relay", "relay_type": "transactional", "relay_plan": "prepaid",
                              "relay_messages": 20000, "relay_max_domains": 2}
    assert "password" not in str(account.native).lower() and password not in str(account.native)
    assert password not in repr(account)
    assert password not in caplog.text and password not in str(sim.state())
    assert provider.http.masker.text(f"echoed {password} back") == "echoed *** back"
    native = sim.sim.relays[int(account.id)]
    assert native.bounce_notification == "ada@client.example" and native.type == "transactional"
    # Adopted, not created again: and then there is no password to show.
    again = provider.create_account(relay())
    assert again.id == account.id and again.one_time_secrets == {}
    assert provider.find_account(relay()).id == account.id and len(sim.state()) == 1


def test_the_relay_look_up_pages_through_everything_when_the_search_misses(sim, provider, monkeypatch):
    from provisioner.simulators import qboxmail as simulator
    # An API whose search does not cover descriptions: only the full list finds the account.
    monkeypatch.setattr(simulator, "_matches", lambda query, *values: not query.strip())
    first = provider.create_account(relay())
    again = provider.create_account(relay())
    assert again.id == first.id and len(sim.state()) == 1 and sim.calls()["delivery_accounts.create"] == 1


def test_regenerated_passwords_are_returned_once_and_masked(sim, provider, caplog):
    caplog.set_level(logging.DEBUG, logger="provisioner")
    account = provider.create_account(relay())
    new = provider.relay_regenerate_password(account.id)
    assert new != account.one_time_secrets["relay_password"]
    assert check_password(sim.sim.relays[int(account.id)].password_hash, new)
    assert new not in caplog.text and provider.http.masker.text(new) == "***"


def test_promotional_is_newsletter_upstream_and_the_type_cannot_change(sim, provider):
    account = provider.create_account(relay(relay_type="promotional"))
    assert sim.sim.relays[int(account.id)].type == "newsletter"
    assert account.limits["relay_type"] == "promotional"
    with pytest.raises(ValidationError) as info:
        provider.set_limits(account.id, {"qboxmail_product": "relay", "relay_type": "transactional"})
    assert "cannot be changed" in info.value.safe_message
    provider.set_limits(account.id, {"qboxmail_product": "relay", "relay_type": "promotional",
                                     "relay_messages": 50000, "relay_max_domains": 3})
    assert provider.get_account(account.id).limits["relay_messages"] == 50000
    assert sim.state()[0]["limits"]["relay_max_domains"] == 3


def test_one_free_relay_account_per_customer(sim, provider):
    first = provider.create_account(relay(relay_plan="free"))
    assert first.paid_until is None and first.limits["relay_messages"] == 3000
    with pytest.raises(ValidationError) as info:
        provider.create_account(relay(service_id="2043", relay_plan="free"))
    assert info.value.safe_message == qb.FREE_PLAN_TAKEN and not info.value.retryable
    assert len(sim.state()) == 1
    with pytest.raises(ValidationError):
        provider.set_limits(first.id, {"qboxmail_product": "relay", "relay_plan": "free", "relay_messages": 9000})


def test_an_admin_token_counts_free_accounts_per_configured_customer(sim):
    sim.api("POST", "/api/delivery/accounts", {"description": "mine", "type": "transactional", "plan": "free"})
    account = sim.provider(customer_code="C000000042").create_account(relay(relay_plan="free"))
    assert sim.sim.relays[int(account.id)].customer_code == "C000000042"


def test_paid_accounts_are_pending_until_paid(make_sim):
    sim = make_sim(activation_delay=60)
    provider = sim.provider(payment_method="stripe")
    account = provider.create_account(relay())
    assert account.status is AccountStatus.PENDING and account.one_time_secrets
    assert sim.sim.relays[int(account.id)].state == "wait_pay"
    sim.clock.now += 61                                                     # the payment arrived
    assert provider.get_account(account.id).status is AccountStatus.ACTIVE
    sim.mutate(account.id, qboxmail_status="error")                         # errorStatus: payment not made
    assert provider.get_account(account.id).status is AccountStatus.PENDING
    sim.mutate(account.id, status="active")
    provider.suspend_account(account.id, "Overdue")
    assert provider.get_account(account.id).status is AccountStatus.SUSPENDED
    provider.unsuspend_account(account.id)
    sim.mutate(account.id, qboxmail_status="blocked")
    assert provider.get_account(account.id).status is AccountStatus.SUSPENDED
    with pytest.raises(AuthError):
        provider.unsuspend_account(account.id)               # Qboxmail blocked it: not ours to undo


def test_prepaid_renewal_extends_the_expiry_never_past_what_is_paid(sim, provider):
    account = provider.create_account(relay())
    assert account.paid_until == dt.date(2027, 11, 21)
    assert provider.renew(account.id, dt.date(2027, 6, 1)) is None                 # nothing due
    assert provider.renew(account.id, dt.date(2028, 1, 10)) is None                # a package would overshoot
    assert "delivery_accounts.update" not in sim.calls()
    assert provider.renew(account.id, dt.date(2028, 11, 20)) == dt.date(2028, 11, 21)   # within the slack
    assert provider.renew(account.id, dt.date(2030, 11, 21)) == dt.date(2030, 11, 21)   # two packages
    assert sim.calls()["delivery_accounts.update"] == 3
    assert provider.get_account(account.id).paid_until == dt.date(2030, 11, 21)
    assert provider.renew(account.id, dt.date(2029, 1, 1)) is None                  # never backwards
    monthly = provider.create_account(relay(service_id="2099", relay_plan="monthly"))
    assert monthly.paid_until is None and provider.renew(monthly.id, dt.date(2030, 1, 1)) is None


def test_a_purchase_answered_500_is_not_repeated(sim, provider):
    account = provider.create_account(relay())
    sim.faults(error_rate=1.0, only_actions=["delivery_accounts.update"])
    with pytest.raises(Unavailable):
        provider.renew(account.id, dt.date(2028, 11, 21))
    assert sim.calls()["delivery_accounts.update"] == 1


def test_relay_client_area_methods(sim, provider):
    account = provider.create_account(relay(relay_max_domains=1))
    assert provider.relay_set_allowed_ips(account.id, ["203.0.113.7", "198.51.100.0/24", "203.0.113.7"]) == [
        "203.0.113.7/32", "198.51.100.0/24"]
    with pytest.raises(ValidationError):
        provider.relay_set_allowed_ips(account.id, ["not-an-ip"])
    provider.relay_set_bounce_address(account.id, "Bounces@Shop.example")
    assert sim.sim.relays[int(account.id)].bounce_notification == "bounces@shop.example"
    provider.relay_set_bounce_address(account.id, None)
    assert sim.sim.relays[int(account.id)].bounce_notification_to_sender is True
    with pytest.raises(ValidationError):
        provider.relay_set_bounce_address(account.id, "nope")
    provider.relay_associate_domain(account.id, "shop.example")
    provider.relay_associate_domain(account.id, "shop.example")                     # already: no change
    with pytest.raises(LimitExceeded) as info:
        provider.relay_associate_domain(account.id, "news.example")
    assert "(1)" in info.value.safe_message
    sim.mutate(account.id, messages_sent=1200)
    usage = provider.relay_usage(account.id)
    assert usage["domains"] == ["shop.example"] and usage["messages_sent"] == 1200
    assert usage["quota"] == 20000 and usage["messages_remaining"] == 18800 and usage["expires"] == "2027-11-21"
    provider.relay_dissociate_domain(account.id, "shop.example")
    provider.relay_dissociate_domain(account.id, "shop.example")
    provider.relay_associate_domain(account.id, "news.example")
    assert provider.relay_usage(account.id)["domains"] == ["news.example"]
    assert sim.calls()["delivery_domains.create"] == 2


def test_list_accounts_pages_through_both_kinds(sim, provider):
    domains = {provider.create_account(hosting(service_id=str(n), domain=f"d{n}.example")).id for n in range(3)}
    relays = {provider.create_account(relay(service_id=str(n), domain=f"r{n}.example")).id for n in range(4)}
    seen, page = [], 1
    while True:
        result = provider.list_accounts(page=page, per_page=2)
        assert len(result.items) <= 2 and result.total == 7
        seen += [a.id for a in result.items]
        if not result.has_more:
            break
        page += 1
    assert page == 4 and sorted(seen) == sorted(domains | relays) and len(seen) == 7
    only = sim.provider(product_kinds=["relay"]).list_accounts(page=1, per_page=10)
    assert {a.id for a in only.items} == relays and only.total == 4
