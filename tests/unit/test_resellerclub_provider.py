"""The ResellerClub adapter: error and status mapping, month arithmetic, customers,
adoption, search paging, DNS and prices; against its simulator where calls matter."""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import replace

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from provisioner.providers import resellerclub as rc
from provisioner.providers.base import AccountSpec, AccountStatus, Capability, ClientInfo
from provisioner.providers.errors import (
    AuthError,
    ConfigurationError,
    Conflict,
    MalformedResponse,
    NotFound,
    NotSupported,
    RateLimited,
    Unavailable,
    ValidationError,
)
from provisioner.providers.http import HttpClient
from provisioner.providers.resellerclub import (
    ResellerClubProvider,
    add_months,
    classify_error,
    order_status,
    renew_months,
    resellerclub_error,
    split_phone,
)
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer

USERID, KEY = "100001", "unit-rc-key-1f2e"
CLIENT = ClientInfo(id="77", email="Owner@Example.com", first_name="Ada", last_name="Lovelace",
                    company="Example Ltd", country="DE", address="1 Main St", city="Berlin",
                    state="Berlin", postcode="10115", phone="+49.3012345678")
US = {"mailboxes": 2, "region": "us", "email_product": "enterpriseemail"}
IN = {"mailboxes": 2, "region": "in", "email_product": "enterpriseemail"}
BIZ = {"mailboxes": 1, "region": "us", "email_product": "eelite"}


def response(status: int, body=None, headers: dict | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = b"" if body is None else json.dumps(body).encode()
    resp.headers = CaseInsensitiveDict(headers or {})
    resp.url = "https://test.httpapi.com/api/x.json"
    return resp


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(HttpClient, "_sleep", lambda self, seconds: None)


@pytest.fixture(scope="module")
def server():
    with SimulatorServer(create_simulator_app("resellerclub", auth_userid=USERID, api_key=KEY)) as srv:
        yield srv


@pytest.fixture
def sim(server):
    requests.post(f"{server.url}/_sim/reset", timeout=5)
    yield server
    requests.post(f"{server.url}/_sim/reset", timeout=5)


class FakeClock:
    def __init__(self):
        self.now = dt.datetime(2026, 11, 21, 12, tzinfo=dt.timezone.utc).timestamp()

    def __call__(self) -> float:
        return self.now


def config(url: str, **extra) -> dict:
    return {"provider": "resellerclub", "base_url": f"{url}/api", "auth_userid": USERID, "api_key": KEY,
            **extra}


@pytest.fixture
def provider(sim):
    p = ResellerClubProvider("rc", config(sim.url))
    yield p
    p.close()


def spec(domain: str = "example.com", limits: dict | None = None, client: ClientInfo = CLIENT,
         cycle: str | None = "monthly") -> AccountSpec:
    return AccountSpec(service_id=domain, domain=domain, client=client, limits=dict(limits or US),
                       billing_cycle=cycle)


def state(sim) -> dict:
    return requests.get(f"{sim.url}/_sim/state", timeout=5).json()


def calls(sim) -> dict:
    return requests.get(f"{sim.url}/_sim/calls", timeout=5).json()["calls"]


class FlakySession(requests.Session):
    """Breaks the calls whose URL contains ``path``: ``lost`` lets the request take
    effect and drops the answer; ``fail`` answers 500 without touching the upstream."""

    def __init__(self, path: str, mode: str, times: int = 1):
        super().__init__()
        self.path, self.mode, self.remaining, self.attempts = path, mode, times, 0

    def request(self, method, url, *args, **kwargs):
        if self.path not in url or self.remaining <= 0:
            return super().request(method, url, *args, **kwargs)
        self.remaining -= 1
        self.attempts += 1
        if self.mode == "lost":
            super().request(method, url, *args, **kwargs)
            raise requests.ReadTimeout("simulated: the answer was lost")
        return response(500, {"status": "ERROR", "message": "An unexpected error occurred"})


# --- error mapping ------------------------------------------------------------------

@pytest.mark.parametrize("status, body, expected", [
    (500, {"status": "ERROR", "message": "Access Denied: You are not authorized to perform this action"},
     AuthError),
    (200, {"status": "Error", "message": "Invalid credentials"}, AuthError),
    (403, {"status": "error", "message": "Your IP address is not whitelisted"}, AuthError),
    (500, {"status": "ERROR", "message": "No Entity found for Entityid: 1"}, NotFound),
    (200, {"status": "ERROR", "message": "Website doesn't exist for example.com"}, NotFound),
    (500, {"status": "ERROR", "message": "Customer not found: a@example.com"}, NotFound),
    (500, {"status": "ERROR", "message": "Customer a@example.com already exists"}, Conflict),
    (400, {"status": "ERROR", "message": "An e-mail order already exists for example.com"}, Conflict),
    (500, {"status": "ERROR", "message": "domain-name is invalid: x"}, ValidationError),
    (200, {"status": "ERROR", "message": "months is required"}, ValidationError),
    (500, {"status": "ERROR", "message": "Insufficient funds in your account"}, ValidationError),
    (400, {"status": "ERROR", "message": "Something unusual"}, ValidationError),
    (500, {"status": "ERROR", "message": "An unexpected error occurred, please try again later"}, Unavailable),
    (503, {"status": "ERROR", "message": "Service down for maintenance"}, Unavailable),
    (429, {"status": "ERROR", "message": "Too many requests"}, RateLimited),
    (200, {"actionstatus": "Failed", "actionstatusdesc": "Order could not be processed: invalid state"},
     ValidationError),
])
def test_error_shapes_map_onto_the_hierarchy(status, body, expected):
    err = resellerclub_error(response(status, body), body)
    assert type(err) is expected
    assert err.retryable == (expected in (Unavailable, RateLimited))


def test_auth_errors_are_permanent_and_rate_limits_carry_retry_after():
    body = {"status": "ERROR", "message": "rate limit exceeded"}
    err = resellerclub_error(response(429, body, {"Retry-After": "7"}), body)
    assert isinstance(err, RateLimited) and err.retry_after == 7
    bare = resellerclub_error(response(429, None, {"Retry-After": "3"}), None)
    assert isinstance(bare, RateLimited) and bare.retry_after == 3
    assert not classify_error("Access Denied", 500).retryable


@pytest.mark.parametrize("status, body", [
    (200, {"entityid": "1", "actionstatus": "Success", "status": "Success"}),
    (200, 80000001), (200, [{"type": "MX"}]), (200, {"recsindb": "0", "recsonpage": "0"}),
    (500, None), (404, "<html>not here</html>"),
])
def test_answers_that_are_not_error_envelopes_are_left_to_the_status_mapping(status, body):
    assert resellerclub_error(response(status, body), body) is None


def test_a_plain_5xx_through_the_client_is_unavailable(sim):
    p = ResellerClubProvider("rc", config(sim.url), session=FlakySession("details.json", "fail", 5))
    with pytest.raises(Unavailable):
        p.get_account("80000001")


# --- statuses ---------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("InActive", AccountStatus.PENDING), ("Active", AccountStatus.ACTIVE),
    ("Suspended", AccountStatus.SUSPENDED), ("Pending Delete Restorable", AccountStatus.DELETED),
    ("Deleted", AccountStatus.DELETED), ("Archived", AccountStatus.DELETED),
    ("active", AccountStatus.ACTIVE), (" Pending  Delete Restorable ", AccountStatus.DELETED),
    ("Something New", AccountStatus.PENDING), (None, AccountStatus.PENDING),
])
def test_status_mapping(value, expected):
    assert order_status(value) is expected


# --- months ---------------------------------------------------------------------------

@pytest.mark.parametrize("day, months, expected", [
    (dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)), (dt.date(2028, 1, 31), 1, dt.date(2028, 2, 29)),
    (dt.date(2026, 11, 21), 2, dt.date(2027, 1, 21)), (dt.date(2026, 3, 31), 12, dt.date(2027, 3, 31)),
    (dt.date(2026, 5, 15), 0, dt.date(2026, 5, 15)),
])
def test_add_months(day, months, expected):
    assert add_months(day, months) == expected


@pytest.mark.parametrize("paid, until, grace, expected", [
    (dt.date(2026, 12, 21), dt.date(2027, 12, 21), 0, 12),
    (dt.date(2026, 12, 21), dt.date(2027, 1, 21), 0, 1),
    (dt.date(2026, 12, 21), dt.date(2027, 1, 20), 0, 0),      # never further than until
    (dt.date(2026, 12, 22), dt.date(2027, 1, 21), 0, 0),
    (dt.date(2026, 12, 22), dt.date(2027, 1, 21), 7, 1),      # ordered a day late: still renewed
    (dt.date(2026, 12, 30), dt.date(2027, 1, 21), 7, 0),      # more than the grace: not
    (dt.date(2027, 12, 21), dt.date(2027, 1, 1), 7, 0),       # already past until: nothing
    (dt.date(2026, 1, 31), dt.date(2026, 2, 28), 0, 1),       # month ends clamp
    (dt.date(2026, 1, 31), dt.date(2026, 3, 30), 0, 1),
    (dt.date(2026, 1, 31), dt.date(2026, 3, 31), 0, 2),
])
def test_renew_months(paid, until, grace, expected):
    assert renew_months(paid, until, grace) == expected


def test_renew_sends_the_months_needed_and_nothing_when_paid(sim, provider):
    account = provider.create_account(spec(cycle="monthly"))
    paid = account.paid_until
    provider.renew(account.id, add_months(paid, 5))
    assert provider.get_account(account.id).paid_until == add_months(paid, 5)
    before = calls(sim).get("enterpriseemail/us/renew", 0)
    provider.renew(account.id, add_months(paid, 5))               # already there: no call
    provider.renew(account.id, add_months(paid, 5) + dt.timedelta(days=20))   # < a month short
    assert calls(sim).get("enterpriseemail/us/renew", 0) == before == 1


def test_create_orders_the_billing_cycle_in_months(sim, provider):
    account = provider.create_account(spec(cycle="Annually"))
    native = state(sim)["accounts"][0]["native"]
    created = dt.datetime.fromtimestamp(int(native["creationtime"]), dt.timezone.utc).date()
    assert account.paid_until == add_months(created, 12)


# --- customers ------------------------------------------------------------------------

def test_customer_is_signed_up_once_and_reused(sim, provider):
    provider.create_account(spec("one.example"))
    provider.create_account(spec("two.example", IN))
    provider.create_account(spec("three.example", BIZ))
    customers = state(sim)["customers"]
    assert len(customers) == 1
    customer = customers[0]
    assert customer["username"] == "owner@example.com"
    assert (customer["name"], customer["company"], customer["telnocc"], customer["telno"]) == \
        ("Ada Lovelace", "Example Ltd", "49", "3012345678")
    assert (customer["address1"], customer["city"], customer["zip"], customer["country"]) == \
        ("1 Main St", "Berlin", "10115", "DE")
    assert calls(sim)["customers/signup"] == 1
    assert {a["native"]["customerid"] for a in state(sim)["accounts"]} == {customer["customerid"]}


def test_an_existing_customer_is_found_by_username(sim, provider):
    other = ResellerClubProvider("rc2", config(sim.url))
    other.create_account(spec("first.example"))
    provider.create_account(spec("second.example"))
    assert calls(sim)["customers/signup"] == 1 and len(state(sim)["customers"]) == 1


def test_a_parallel_signup_is_resolved_by_looking_up_again(sim, provider, monkeypatch):
    ResellerClubProvider("rc2", config(sim.url)).create_account(spec("first.example"))
    real, looked = provider._customer_lookup, []

    def lookup(name):                            # the first look-up misses the racing signup
        looked.append(name)
        return None if len(looked) == 1 else real(name)
    monkeypatch.setattr(provider, "_customer_lookup", lookup)
    provider.create_account(spec("second.example"))
    assert len(state(sim)["customers"]) == 1 and calls(sim)["customers/signup"] == 2
    assert len(looked) == 2


def test_missing_postal_details_fail_clearly_before_any_signup(sim, provider):
    bare = ClientInfo(id="8", email="bare@example.com", first_name="B", country="DE")
    with pytest.raises(ValidationError) as info:
        provider.create_account(spec(client=bare))
    assert "address, city, postcode, phone number" in info.value.safe_message
    assert not info.value.retryable
    assert "customers/signup" not in calls(sim) and state(sim)["accounts"] == []


def test_customer_defaults_fill_what_billing_did_not_send(sim):
    defaults = {"address": "9 Reseller Rd", "city": "Pune", "postcode": "411001", "state": "MH",
                "phone_cc": "91", "phone": "2012345678"}
    p = ResellerClubProvider("rc", config(sim.url, customer_defaults=defaults))
    p.create_account(spec(client=ClientInfo(id="8", email="bare@example.com", first_name="B", country="IN")))
    [customer] = state(sim)["customers"]
    assert (customer["address1"], customer["city"], customer["state"], customer["telnocc"]) == \
        ("9 Reseller Rd", "Pune", "MH", "91")


def test_the_customer_password_stays_out_of_logs(sim, provider, caplog, monkeypatch):
    monkeypatch.setattr(rc, "new_customer_password", lambda avoid=(): "Gen3rated_Pw#x")
    caplog.set_level(logging.DEBUG, logger="provisioner")
    provider.create_account(spec())
    assert "create_customer" in caplog.text
    assert "Gen3rated_Pw#x" not in caplog.text and KEY not in caplog.text
    assert "Gen3rated_Pw#x" not in json.dumps(state(sim))


# The two published LogicBoxes policies (docs/providers/resellerclub.md): 2015 and v2.
OLD_SYMBOLS, NEW_SYMBOLS = set("@#$%^&+=.\\-_*"), set("~*!@$#%_+.?:,{}")


def meets(pw: str, low: int, high: int, symbols: set[str]) -> bool:
    return (low <= len(pw) <= high and any(c.isupper() for c in pw) and any(c.islower() for c in pw)
            and any(c.isdigit() for c in pw) and any(c in symbols for c in pw)
            and all(c.isalnum() or c in symbols for c in pw))


def test_generated_passwords_meet_both_published_policies():
    for _ in range(200):
        pw = rc.new_customer_password()
        assert meets(pw, 8, 15, OLD_SYMBOLS), pw           # 2015: signup.json
        assert meets(pw, 9, 16, NEW_SYMBOLS), pw           # newer: v2/signup.json
        assert pw.isascii() and " " not in pw


def test_generated_passwords_avoid_the_customer_name(monkeypatch):
    picks = iter("Ada" + "1@xyzwvutsrq" + "Qb2#kLmnopqr")   # first draw contains "ada"
    monkeypatch.setattr(rc.secrets, "choice", lambda seq: next(picks))
    monkeypatch.setattr(rc.secrets.SystemRandom, "shuffle", lambda self, x: None)
    pw = rc.new_customer_password(avoid=["Ada", "Lovelace"])
    assert "ada" not in pw.lower() and meets(pw, 9, 15, OLD_SYMBOLS & NEW_SYMBOLS)


def test_the_simulator_accepts_generated_passwords_on_both_signups(sim):
    import requests as rq
    for path, n in (("customers/signup.json", 0), ("customers/v2/signup.json", 1)):
        r = rq.post(f"{sim.url}/api/{path}", data={
            "auth-userid": USERID, "api-key": KEY, "username": f"pw{n}@example.com",
            "passwd": rc.new_customer_password(avoid=["Ada", "Lovelace"]), "name": "Ada Lovelace",
            "company": "X", "address-line-1": "1 Main St", "city": "Berlin", "state": "Berlin",
            "country": "DE", "zipcode": "10115", "phone-cc": "49", "phone": "3012345678",
            "lang-pref": "en"}, timeout=5)
        assert r.status_code == 200 and isinstance(r.json(), int), r.text


@pytest.mark.parametrize("phone, expected", [
    ("+49.3012345678", ("49", "3012345678")), ("+1.5551234567", ("1", "5551234567")),
    ("+91 20 1234 5678", ("91", "2012345678")), ("3012345678", None), ("", None), ("+49.12", None),
])
def test_split_phone(phone, expected):
    assert split_phone(phone) == expected


# --- create, adopt, find --------------------------------------------------------------

def test_an_existing_order_for_the_domain_is_adopted(sim, provider):
    first = ResellerClubProvider("someone-else", config(sim.url)).create_account(spec())
    before = calls(sim)
    adopted = provider.create_account(spec())
    assert adopted.id == first.id
    assert calls(sim)["enterpriseemail/us/add"] == before["enterpriseemail/us/add"] == 1
    assert "customers/details" not in {k for k, v in calls(sim).items() if v > before.get(k, 0)}


def test_a_conflicting_add_adopts_the_order_made_meanwhile(sim, provider, monkeypatch):
    made = ResellerClubProvider("other", config(sim.url)).create_account(spec())
    real, looked = provider.find_account, []

    def find(s):                                  # the look-up ran before the other order existed
        looked.append(s)
        return None if len(looked) == 1 else real(s)
    monkeypatch.setattr(provider, "find_account", find)
    assert provider.create_account(spec()).id == made.id
    assert len(looked) == 2 and calls(sim)["enterpriseemail/us/add"] == 2      # refused, then adopted
    assert len(state(sim)["accounts"]) == 1


def test_a_lost_create_answer_is_adopted_on_retry(sim):
    p = ResellerClubProvider("rc", config(sim.url), session=FlakySession("/add.json", "lost"))
    with pytest.raises(Unavailable) as info:
        p.create_account(spec())
    assert info.value.retryable
    assert len(state(sim)["accounts"]) == 1                    # the order was placed
    again = p.create_account(spec())
    assert [a["id"] for a in state(sim)["accounts"]] == [again.id]


def test_creates_are_not_retried_by_the_client(sim):
    session = FlakySession("/add.json", "fail", times=5)
    p = ResellerClubProvider("rc", config(sim.url), session=session)
    with pytest.raises(Unavailable):
        p.create_account(spec())
    assert session.attempts == 1 and state(sim)["accounts"] == []


def test_find_ignores_deleted_orders_and_a_new_order_follows(sim, provider):
    account = provider.create_account(spec())
    provider.delete_account(account.id)
    provider.delete_account(account.id)                        # twice: the goal holds
    assert provider.find_account(spec()) is None
    assert provider.get_account(account.id).status is AccountStatus.DELETED
    fresh = provider.create_account(spec())
    assert fresh.id != account.id and provider.find_account(spec()).id == fresh.id


def test_orders_of_every_line_are_found_by_a_fresh_provider(sim, provider):
    ids = {name: provider.create_account(spec(f"{name}.example", limits)).id
           for name, limits in (("us", US), ("in", IN), ("biz", BIZ))}
    fresh = ResellerClubProvider("rc", config(sim.url))
    assert fresh.get_account(ids["in"]).limits == {"mailboxes": 2, "region": "in", "email_product": "enterpriseemail"}
    assert fresh.get_account(ids["biz"]).limits["email_product"] == "eelite"
    fresh.suspend_account(ids["biz"], "test")
    assert fresh.get_account(ids["biz"]).status is AccountStatus.SUSPENDED


def test_unknown_and_malformed_ids_are_not_found(sim, provider):
    with pytest.raises(NotFound):
        provider.get_account("acc_9999")
    with pytest.raises(NotFound):
        provider.get_account("424242")
    provider.delete_account("424242")                          # nothing to delete: fine


def test_asynchronous_activation_is_pending():
    clock = FakeClock()
    with SimulatorServer(create_simulator_app("resellerclub", auth_userid=USERID, api_key=KEY,
                                              activation_delay=600, clock=clock)) as srv:
        p = ResellerClubProvider("rc", config(srv.url))
        account = p.create_account(spec())
        assert account.status is AccountStatus.PENDING
        assert p.find_account(spec()).status is AccountStatus.PENDING     # pending is not "none"
        clock.now += 601
        assert p.get_account(account.id).status is AccountStatus.ACTIVE


# --- limits, suspension ------------------------------------------------------------------

def test_set_limits_adds_and_deletes_the_difference(sim, provider):
    account = provider.create_account(spec())
    provider.set_limits(account.id, {**US, "mailboxes": 6})
    provider.set_limits(account.id, {**US, "mailboxes": 6})      # nothing left to do
    provider.set_limits(account.id, {**US, "mailboxes": 3})
    assert provider.get_account(account.id).limits["mailboxes"] == 3
    c = calls(sim)
    assert c["enterpriseemail/us/add-email-account"] == 1 and c["enterpriseemail/us/delete-email-account"] == 1
    with pytest.raises(ValidationError):
        provider.set_limits(account.id, {**US, "region": "in"})
    with pytest.raises(ValidationError):
        provider.set_limits(account.id, {**US, "mailboxes": 0})


def test_suspend_and_unsuspend_are_idempotent(sim, provider):
    account = provider.create_account(spec())
    provider.suspend_account(account.id, "Overdue on Payment")
    provider.suspend_account(account.id, "Overdue on Payment")
    assert state(sim)["accounts"][0]["suspend_reason"] == "Overdue on Payment"
    provider.unsuspend_account(account.id)
    provider.unsuspend_account(account.id)
    assert provider.get_account(account.id).status is AccountStatus.ACTIVE


# --- search paging --------------------------------------------------------------------------

def test_search_answers_are_parsed(provider):
    line = rc.PRODUCT_LINES["enterpriseemail/us"]
    answer = {"recsonpage": "2", "recsindb": "12",
              "2": {"orders.orderid": "80000007", "entity.description": "B.example",
                    "entity.currentstatus": "Suspended", "orders.endtime": "1797825600",
                    "entitytype.entitytypekey": "enterpriseemailin"},
              "1": {"orders.orderid": "80000003", "entity.description": "a.example",
                    "entity.currentstatus": "InActive", "orders.endtime": "1797825600"}}
    items, total = provider.parse_search(answer, line)
    assert total == 12 and [a.id for a in items] == ["80000003", "80000007"]
    assert items[0].status is AccountStatus.PENDING and items[1].status is AccountStatus.SUSPENDED
    assert items[1].domain == "b.example" and items[1].limits["region"] == "in"
    assert items[0].paid_until == dt.date(2026, 12, 21)
    for bad in ({"1": {}}, [], {"1": {"orders.orderid": "x"}, "recsindb": "1"}, {"1": "row", "recsindb": "1"}):
        with pytest.raises(MalformedResponse):
            provider.parse_search(bad, line)


@pytest.mark.parametrize("per_page", [1, 2, 3, 4, 10])
def test_list_accounts_pages_across_product_lines(sim, provider, per_page):
    created = []
    for i, limits in enumerate([US, US, IN, US, IN, BIZ, IN]):
        created.append(provider.create_account(spec(f"d{i}.example", limits)).id)
    seen, page = [], 1
    while True:
        result = provider.list_accounts(page=page, per_page=per_page)
        assert len(result.items) <= per_page and result.total == len(created)
        seen += [a.id for a in result.items]
        if not result.has_more:
            break
        page += 1
    assert sorted(seen) == sorted(created) and len(seen) == len(set(seen))


def test_test_connection(sim, provider):
    provider.test_connection()
    with pytest.raises(AuthError):
        ResellerClubProvider("rc", {**config(sim.url), "api_key": "wrong"}).test_connection()


# --- DNS and prices ------------------------------------------------------------------------

def test_dns_records(sim, provider):
    account = provider.create_account(spec())
    records = provider.dns_records(account.id)
    assert {r.type for r in records} >= {"MX", "TXT", "CNAME"}
    assert all(r.host and r.value for r in records)
    assert next(r for r in records if r.type == "TXT").purpose == "SPF"


@pytest.mark.parametrize("record, expected", [
    ({"type": "mx", "host": "example.com", "value": "10 mx1.example.net", "class": "IN"},
     ("MX", "mx1.example.net", 10)),
    ({"type": "CNAME", "host": "webmail.example.com", "value": "webmail.example.net"},
     ("CNAME", "webmail.example.net", None)),
    ({"type": "TXT", "host": "example.com", "value": ""}, None),
    ("not a record", None),
])
def test_dns_record_parsing(record, expected):
    parsed = rc._dns_record(record)
    assert (None if parsed is None else (parsed.type, parsed.value, parsed.priority)) == expected


def test_dns_records_as_a_hash_map(provider, monkeypatch):
    provider._remember("80000001", rc.PRODUCT_LINES["enterpriseemail/us"])
    monkeypatch.setattr(provider, "_get", lambda *a, **k: {
        "1": {"type": "MX", "host": "example.com", "value": "mx.example.net", "class": "IN"},
        "2": {"type": "TXT", "host": "example.com", "value": "v=spf1 -all", "class": "IN"}})
    assert [r.type for r in provider.dns_records("80000001")] == ["MX", "TXT"]


def test_price_table_from_the_simulator(sim, provider):
    rows = provider.price_table()
    products = {r.product for r in rows}
    assert products == {"enterpriseemailus", "enterpriseemailin", "eeliteus"}       # no domains
    first = rows[0]
    assert (first.product, first.accounts, first.action, first.months) == ("eeliteus", "1-5", "add", 1)
    assert all(r.price is not None and r.margin == round(r.price - r.cost, 2) > 0 for r in rows)
    us = [r for r in rows if r.product == "enterpriseemailus"]
    assert [r.accounts for r in us][::8][:3] == ["1-5", "6-10", "11-15"]        # numeric range order
    assert len(us) == 11 * 2 * 4


def test_price_table_parsing(provider, monkeypatch):
    cost = {"enterpriseemailus": {"email_account_ranges": {
                "6-10": {"renew": {"12": "9.5"}, "add": {"1": 1.0}},
                "1-5": {"add": {"3": 2.0, "1": 1.5, "x": 3}}}},
            "domcno": {"addnewdomain": {"1": 8.0}}, "junk": "text"}
    price = {"enterpriseemailus": {"email_account_ranges": {"1-5": {"add": {"1": 2.25}}}}}
    answers = {"products/reseller-price.json": cost, "products/customer-price.json": price}
    monkeypatch.setattr(provider, "_get", lambda path, action, params=(): answers[path])
    rows = provider.price_table()
    assert [(r.accounts, r.action, r.months, r.cost, r.price, r.margin) for r in rows] == [
        ("1-5", "add", 1, 1.5, 2.25, 0.75), ("1-5", "add", 3, 2.0, None, None),
        ("6-10", "add", 1, 1.0, None, None), ("6-10", "renew", 12, 9.5, None, None)]
    monkeypatch.setattr(provider, "_get", lambda *a, **k: ["not", "a", "table"])
    with pytest.raises(MalformedResponse):
        provider.price_table()


# --- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize("change, text", [
    ({"api_key": ""}, "api_key is required"), ({"auth_userid": None}, "auth_userid is required"),
    ({"invoice_option": "Later"}, "invoice_option"), ({"product_lines": ["eelite/eu"]}, "unknown product line"),
    ({"timeout": "soon"}, "timeout"), ({"customer_defaults": {"fax": "1"}}, "unknown key"),
    ({"renew_grace_days": -1}, "renew_grace_days"),
])
def test_bad_settings_are_configuration_errors(change, text):
    with pytest.raises(ConfigurationError, match=text):
        ResellerClubProvider("rc", {**config("http://127.0.0.1:9"), **change})


def test_limits_select_a_configured_product_line():
    p = ResellerClubProvider("rc", config("http://127.0.0.1:9", product_lines=["enterpriseemail/in"]))
    assert p.line_for_limits({"region": "IN"}).key == "enterpriseemailin"
    for limits in ({"region": "us"}, {"region": "eu"}, {"email_product": "eelite", "region": "in"},
                   {"email_product": "titan"}):
        with pytest.raises(ConfigurationError):
            p.line_for_limits(limits)


def test_capabilities_and_unsupported_calls():
    p = ResellerClubProvider("rc", config("http://127.0.0.1:9"))
    assert p.supports(Capability.PRICING) and p.supports(Capability.DNS) and p.supports(Capability.TERMS)
    assert not p.supports(Capability.MAILBOXES) and not p.supports(Capability.PASSWORD)
    assert p.extra_limits == {"region", "email_product"}
    with pytest.raises(NotSupported):
        p.list_mailboxes("1")
    with pytest.raises(NotSupported):
        p.set_password("1", "x")


def test_account_spec_password_is_never_sent(sim, provider, caplog):
    caplog.set_level(logging.DEBUG, logger="provisioner")
    provider.create_account(replace(spec(), password="Never-Sent-77!"))
    assert "Never-Sent-77!" not in caplog.text and "Never-Sent-77!" not in json.dumps(state(sim))


# --- issue 14: the API as published clients see it --------------------------------------

def arm(sim, action: str, description: str = "Insufficient funds in your reseller account") -> None:
    r = requests.post(f"{sim.url}/_sim/fail-actions", json={"action": action, "description": description},
                      timeout=5)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body", [
    {"status": "Failed", "actionstatus": "Failed", "actionstatusdesc": "Order could not be executed"},
    {"status": "Failed", "actionstatusdesc": "Order could not be executed"},
    {"actionstatus": "Failed", "actionstatusdesc": "Order could not be executed", "status": "Success"},
    {"78877737": {"status": "Failed", "actionstatus": "Failed", "actionstatusdesc": "Order could not be executed",
                  "invoiceid": "78877737"}},                   # PayInvoice/KeepInvoice nesting
])
def test_every_failed_shape_is_an_error_with_a_safe_message(body):
    err = resellerclub_error(response(200, body), body)
    assert type(err) is ValidationError and not err.retryable and err.refused
    assert "could not be executed" in err.message
    assert "could not be executed" not in err.safe_message and err.safe_message == rc.FAILED_SAFE_MESSAGE


@pytest.mark.parametrize("body", [
    {"status": "Success", "actionstatus": "InvoicePaid", "actiontype": "Add", "entityid": "1"},
    {"actionstatus": "PendingExecution", "actiontype": "Add", "entityid": "1"},
    {"actionstatus": "ExecutionStarted", "actiontype": "DeleteEmailAccount", "entityid": "1"},
    {"78877737": {"status": "Success", "actionstatus": "InvoicePaid", "entityid": "80030154"}},
    {"customercost": "90.54", "eaqid": "469769356", "customerid": "17824872", "invoiceid": "78877478"},
])
def test_successful_write_shapes_are_not_errors(body):
    assert resellerclub_error(response(200, body), body) is None


def test_write_answers_are_read_flat_nested_and_without_an_id():
    flat = rc.WriteAnswer.of({"entityid": "79767882", "actiontype": "Add", "actionstatus": "InvoicePaid",
                              "invoiceid": "77433277", "status": "Success"})
    assert flat == rc.WriteAnswer("79767882", "Add", "InvoicePaid", "77433277")
    nested = rc.WriteAnswer.of({"78877737": {"entityid": "80030154", "actiontype": "AddEmailAccount",
                                             "actionstatus": "InvoicePaid", "status": "Success"}})
    assert nested == rc.WriteAnswer("80030154", "AddEmailAccount", "InvoicePaid", "78877737")
    only_add = rc.WriteAnswer.of({"customercost": "90.54", "eaqid": "469769356", "customerid": "17824872",
                                  "invoiceid": "78877478"})
    assert only_add.entity_id is None and only_add.invoice_id == "78877478"


@pytest.mark.parametrize("action, run", [
    ("add", lambda p: p.create_account(spec())),
    ("add-email-account", lambda p: p.set_limits(p.create_account(spec()).id, {"mailboxes": 5})),
    ("delete-email-account", lambda p: p.set_limits(p.create_account(spec()).id, {"mailboxes": 1})),
    ("renew", lambda p: p.renew(p.create_account(spec()).id, dt.date(2031, 1, 1))),
])
def test_a_failed_write_fails_the_step_and_changes_nothing(sim, provider, action, run):
    arm(sim, action)
    with pytest.raises(ValidationError) as caught:
        run(provider)
    assert "Insufficient funds" in caught.value.message
    assert "Insufficient" not in caught.value.safe_message
    accounts = state(sim)["accounts"]
    if action == "add":
        assert accounts == []
    else:
        assert accounts[0]["limits"]["mailboxes"] == 2             # as ordered


@pytest.mark.parametrize("option", ["NoInvoice", "PayInvoice", "KeepInvoice", "OnlyAdd"])
def test_every_invoice_option_orders_once_and_adds_accounts(sim, option):
    p = ResellerClubProvider("rc", config(sim.url, invoice_option=option))
    account = p.create_account(spec())                 # OnlyAdd: no entityid, adopted by domain
    assert account.domain == "example.com" and len(state(sim)["accounts"]) == 1
    p.set_limits(account.id, {"mailboxes": 4})        # PayInvoice/KeepInvoice: nested answer
    assert p.get_account(account.id).limits["mailboxes"] == 4
    assert calls(sim)["enterpriseemail/us/add"] == 1
    p.close()


def test_an_answer_without_an_order_id_is_never_ordered_again(sim, monkeypatch):
    p = ResellerClubProvider("rc", config(sim.url, invoice_option="OnlyAdd"))
    found = []
    real = p.find_account
    monkeypatch.setattr(p, "find_account", lambda s: found.append(1) or (real(s) if len(found) > 2 else None))
    with pytest.raises(MalformedResponse):             # not found yet: retryable, nothing lost
        p.create_account(spec())
    assert len(state(sim)["accounts"]) == 1
    account = p.create_account(spec())                 # the retry adopts it
    assert calls(sim)["enterpriseemail/us/add"] == 1 and account.domain == "example.com"
    p.close()


def test_renew_asks_for_no_additional_accounts(sim, provider, monkeypatch):
    account = provider.create_account(spec())
    sent = []
    real = provider._post
    monkeypatch.setattr(provider, "_post", lambda path, action, data=(), **kw:
                        sent.append((path, list(data))) or real(path, action, data, **kw))
    provider.renew(account.id, add_months(account.paid_until, 3))
    path, data = sent[-1]
    assert path.endswith("renew.json") and ("no-of-accounts", 0) in data and ("months", 3) in data
    assert provider.get_account(account.id).limits["mailboxes"] == 2     # the count stays


class LookupSession(requests.Session):
    """Answers ``customers/details.json`` with ``body`` under HTTP ``status``."""

    def __init__(self, status: int, body):
        super().__init__()
        self.status, self.body = status, body

    def request(self, method, url, *args, **kwargs):
        if "customers/details.json" in url:
            return response(self.status, self.body)
        return super().request(method, url, *args, **kwargs)


@pytest.mark.parametrize("status, body", [
    (500, {"status": "ERROR", "message": "Some wording nobody has seen before"}),
    (200, {"status": "ERROR", "message": "xyz"}),
    (400, {"status": "error", "message": "Invalid username"}),
])
def test_any_error_answer_of_the_customer_look_up_means_sign_up(sim, status, body):
    p = ResellerClubProvider("rc", config(sim.url), session=LookupSession(status, body))
    p.create_account(spec())
    assert [c["username"] for c in state(sim)["customers"]] == ["owner@example.com"]
    p.close()


@pytest.mark.parametrize("status, body, error", [
    (502, None, Unavailable), (429, {"status": "ERROR", "message": "slow down"}, RateLimited),
])
def test_a_look_up_that_got_no_answer_signs_nobody_up(sim, status, body, error):
    p = ResellerClubProvider("rc", config(sim.url), session=LookupSession(status, body))
    with pytest.raises(error):
        p.create_account(spec())
    assert state(sim)["customers"] == [] and state(sim)["accounts"] == []
    p.close()


def test_business_email_in_and_uk_lines(sim):
    assert ResellerClubProvider("rc", config(sim.url)).lines == tuple(
        rc.PRODUCT_LINES[p] for p in ("enterpriseemail/us", "enterpriseemail/in", "eelite/us"))
    p = ResellerClubProvider("rc", config(sim.url, product_lines=["eelite/us", "eelite/in", "eelite/uk"]))
    for region, key in (("in", "eelitein"), ("uk", "eeliteuk")):
        account = p.create_account(spec(f"{region}.example", {"mailboxes": 1, "region": region,
                                                               "email_product": "eelite"}))
        assert account.native["productkey"] == key
        assert account.limits == {"mailboxes": 1, "region": region, "email_product": "eelite"}
    fresh = ResellerClubProvider("rc", config(sim.url, product_lines=["eelite/in", "eelite/uk"]))
    assert {a.native["entitytype.entitytypekey"] for a in fresh.list_accounts().items} == {"eelitein", "eeliteuk"}
    with pytest.raises(ConfigurationError, match="not sold in region uk"):
        p.line_for_limits({"region": "uk", "email_product": "enterpriseemail"})
    assert {r.product for r in p.price_table()} == {"eeliteus", "eelitein", "eeliteuk"}
    p.close()
    fresh.close()
