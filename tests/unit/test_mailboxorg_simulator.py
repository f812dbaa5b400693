"""The mailbox.org simulator: JSON-RPC methods, sessions, plan restrictions, invoices, /_sim/ API."""
from __future__ import annotations

import base64
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from provisioner.simulators.mailboxorg import create_app, minimal_pdf

USER, PASSWORD = "reseller", "Reseller-Pass-1"
ACCOUNT_PASSWORD = "Customer-Secret-77"
MAILBOX_PASSWORD = "Mailbox-Secret-77"


class FakeClock:
    def __init__(self, now: float = 1_790_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Api:
    """JSON-RPC 2.0 posts to /v1/ through the Flask test client."""

    def __init__(self, client):
        self.client = client
        self.session: str | None = None
        self.next_id = 0

    def raw(self, method: str, params=None, *, session: str | None = None, path: str = "/v1/"):
        self.next_id += 1
        headers = {"HPLS-AUTH": session} if session else {}
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        return self.client.post(path, json=body, headers=headers)

    def auth(self, user: str = USER, password: str = PASSWORD) -> dict:
        body = self.raw("auth", {"user": user, "pass": password}).get_json()
        if "result" in body:
            self.session = body["result"]["session"]
        return body

    def __call__(self, method: str, **params) -> dict:
        if self.session is None:
            self.auth()
        r = self.raw(method, params, session=self.session)
        assert r.status_code == 200, r.data
        body = r.get_json()
        assert body["jsonrpc"] == "2.0" and body["id"] == self.next_id
        return body

    def ok(self, method: str, **params):
        body = self(method, **params)
        assert "result" in body and "error" not in body, body
        return body["result"]

    def refused(self, method: str, **params) -> dict:
        body = self(method, **params)
        assert "error" in body and "result" not in body, body
        assert set(body["error"]) == {"code", "message"}
        return body["error"]


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def app(clock):
    return create_app(username=USER, password=PASSWORD, clock=clock, taken_domains=["taken.example"])


@pytest.fixture
def api(app):
    return Api(app.test_client())


def add_account(api, name="prov-1", **params):
    return api.ok("account.add", account=name, password=ACCOUNT_PASSWORD, plan="reseller", **params)


DOMAIN_PASSWORD = "Domain-Pass-1"


def add_domain(api, account="prov-1", domain="example.com"):
    return api.ok("domain.add", account=account, domain=domain, password=DOMAIN_PASSWORD)


def login(api, user: str, password: str) -> Api:
    """Another login to the same simulator (an account, domain or mailbox)."""
    other = Api(api.client)
    assert "result" in other.auth(user, password)
    return other


def as_domain(api, address: str) -> Api:
    return login(api, address.partition("@")[2], DOMAIN_PASSWORD)


def add_mail(api, address, plan="standard", **extra):
    # mail.add: account and domain logins only
    return as_domain(api, address).ok("mail.add", mail=address, password=MAILBOX_PASSWORD, plan=plan,
                                      first_name="Ada", last_name="Lovelace", inboxsave=True, forwards=[], **extra)


def state(app) -> list[dict]:
    return app.test_client().get("/_sim/state").get_json()["accounts"]


# --- sessions ---------------------------------------------------------------------------------

def test_auth_opens_a_session_and_bad_credentials_are_access_denied(api):
    body = api.auth()
    assert set(body["result"]) == {"session", "level"} and body["result"]["level"] == "reseller"
    assert api.auth(password="wrong")["error"] == {"code": 2, "message": "Access denied"}
    assert api.auth(user="someone")["error"]["code"] == 2


def test_sessions_expire_twenty_minutes_after_their_last_use(api, clock):
    api.auth()
    assert api.ok("hello.innerworld")
    clock.now += 1199                       # each use renews the session
    assert api.ok("account.list") == []
    clock.now += 1199
    assert api.ok("account.list") == []
    clock.now += 1201
    assert api.refused("account.list") == {"code": 253, "message": "This Auth-ID is invalid"}
    assert api.raw("account.list").get_json()["error"]["code"] == 253        # no session at all
    api.auth()
    assert api.ok("account.list") == []


def test_session_ttl_is_an_option(clock):
    api = Api(create_app(username=USER, password=PASSWORD, clock=clock, session_ttl=5).test_client())
    api.auth()
    clock.now += 6
    assert api.refused("account.list")["code"] == 253


def test_deauth_ends_the_session(api):
    api.auth()
    assert api.ok("deauth") is True
    assert api.refused("account.list")["code"] == 253


def test_protocol_errors_answer_in_the_json_rpc_shape(api, app):
    client = app.test_client()
    assert client.post("/v1/", data="{not json", content_type="application/json").get_json()["error"]["code"] == -32700
    assert client.post("/v1/", json={"id": 1, "method": "auth"}).get_json()["error"]["code"] == -32600
    assert api.refused("no.such.method") == {"code": -32601, "message": "Method not found"}
    r = api.raw("auth", [1, 2])
    assert r.get_json()["error"]["code"] == -32602
    assert api.raw("hello.world", path="/v1").get_json()["result"] == "Hello World!"    # without the slash too
    r = client.get("/v1/")
    assert r.status_code == 405 and r.get_json()["error"]["code"] == -32601 and r.get_json()["id"] is None


# --- accounts ------------------------------------------------------------------------------------

def test_account_lifecycle_and_answer_shapes(api, app):
    record = add_account(api, tarifflimits={"light": 1, "standard": "3"}, max_mailinglist=2, memo="svc 1",
                         contact_mail="owner@example.net", address_main_country="DE")
    assert record["account"] == "prov-1" and record["status"] == "aktiv" and record["type"] == "BMBO"
    assert record["tarifflimits"] == {"light": 1, "standard": 3, "premium": 0}
    assert record["max_mailinglist"] == 2 and record["plan"] == "reseller"
    assert record["contact"] == {"mail": "owner@example.net"} and record["address_main"] == {"country": "DE"}
    assert api.ok("account.get", account="prov-1") == record
    assert [a["account"] for a in api.ok("account.list")] == ["prov-1"]

    changed = api.ok("account.set", account="prov-1", plan="profi", tarifflimits={"premium": 4}, max_mailinglist=0)
    assert changed["plan"] == "profi" and changed["tarifflimits"] == {"light": 0, "standard": 0, "premium": 4}
    assert api.refused("account.set", account="prov-1", plan="gold")["code"] == -32602    # not a published plan

    assert api.ok("account.del", account="prov-1") is True
    assert api.ok("account.get", account="prov-1")["status"] == "deleted"    # kept, as deleted
    assert api.refused("account.del", account="prov-1")["message"] == "Account does not exist"
    assert api.refused("account.set", account="prov-1", plan="gold")["message"] == "Account does not exist"
    assert api.refused("account.add", account="prov-1", password=ACCOUNT_PASSWORD,
                       plan="reseller")["message"] == "Account already exists"
    assert api.refused("account.get", account="prov-9")["message"] == "Account does not exist"


@pytest.mark.parametrize("params, text", [
    ({"account": "Bad Name!", "password": ACCOUNT_PASSWORD, "plan": "reseller"}, "account"),
    ({"account": "prov-2", "password": "short", "plan": "reseller"}, "password"),
    ({"account": "prov-2", "password": ACCOUNT_PASSWORD, "plan": "diamond"}, "plan"),
    ({"account": "prov-2", "password": ACCOUNT_PASSWORD, "plan": "reseller", "tarifflimits": {"huge": 1}}, "huge"),
    ({"account": "prov-2", "password": ACCOUNT_PASSWORD, "plan": "reseller", "tarifflimits": {"light": -1}},
     "light"),
    ({"account": "prov-2", "password": ACCOUNT_PASSWORD, "plan": "reseller", "tarifflimits": [1, 2]},
     "tarifflimits"),
    ({"account": "prov-2", "plan": "reseller"}, "password"),
])
def test_account_add_checks_its_params(api, params, text):
    error = api.refused("account.add", **params)
    assert error["code"] == -32602 and text in error["message"]


@pytest.mark.parametrize("status", ["disabled", "aktiv", "deleted"])
def test_account_set_has_no_status(api, app, status):
    add_account(api)
    error = api.refused("account.set", account="prov-1", status=status)
    assert error["code"] == -32602 and "status" in error["message"]
    assert api.ok("account.get", account="prov-1")["status"] == "aktiv"


def test_deleting_an_account_removes_its_domains_mailboxes_and_lists(api, app):
    add_account(api, tarifflimits={"standard": 2}, max_mailinglist=1)
    add_domain(api)
    add_mail(api, "ada@example.com")
    login(api, "prov-1", ACCOUNT_PASSWORD).ok("mailinglist.add", mailinglist="team@example.com",
                                              password="List-Pass-1", account="prov-1")
    api.ok("account.del", account="prov-1")
    [entry] = state(app)
    assert entry["status"] == "deleted" and entry["domain"] is None
    assert entry["mailboxes"] == entry["lists"] == [] and entry["native"]["invoices"]      # invoices stay
    assert api.refused("mail.get", mail="ada@example.com")["code"] == 1001
    add_account(api, "prov-2")
    add_domain(api, "prov-2")                 # the domain is free again


# --- domains ----------------------------------------------------------------------------------------

def test_domains(api):
    add_account(api)
    record = add_domain(api)
    assert record["domain"] == "example.com" and record["account"] == "prov-1" and record["count_mails"] == 0
    assert api.ok("domain.get", domain="example.com")["account"] == "prov-1"
    assert [d["domain"] for d in api.ok("domain.list", account="prov-1")] == ["example.com"]
    assert api.ok("domain.list", account="prov-1", filter="nothing") == []
    assert api.refused("domain.add", account="prov-1", domain="example.com",
                       password="Domain-Pass-1")["message"] == "Domain already exists"
    assert api.refused("domain.add", account="prov-1", domain="taken.example",
                       password="Domain-Pass-1")["message"] == "Domain already exists"
    assert api.refused("domain.get", domain="taken.example")["code"] == 1001      # not ours to see
    assert api.refused("domain.add", account="prov-1", domain="not a domain",
                       password="Domain-Pass-1")["code"] == -32602
    assert api.ok("domain.set", domain="example.com", memo="main")["memo"] == "main"
    assert api.ok("domain.del", account="prov-1", domain="example.com") is True
    assert api.refused("domain.get", domain="example.com")["message"] == "Domain does not exist"


# --- mailboxes -------------------------------------------------------------------------------------------

def test_mailboxes_count_against_their_plan_limit(api, app):
    add_account(api, tarifflimits={"light": 1, "standard": 2})
    add_domain(api)
    record = add_mail(api, "ada@example.com", additional_mail_quota="3")
    assert record["plan"] == "standard" and record["active"] is True and record["inboxsave"] is True
    assert record["parent_uid"] == "prov-1"
    assert record["additional_mail_quota"] == "3" and record["first_name"] == "Ada"
    add_mail(api, "bob@example.com")
    domain = as_domain(api, "ada@example.com")
    error = domain.refused("mail.add", mail="eve@example.com", password=MAILBOX_PASSWORD, plan="standard",
                           first_name="Eve", last_name="")
    assert error["code"] == 1003 and "standard" in error["message"]
    add_mail(api, "eve@example.com", plan="light")
    assert domain.refused("mail.add", mail="zed@example.com", password=MAILBOX_PASSWORD, plan="premium",
                          first_name="Z", last_name="")["code"] == 1003       # premium: 0 allowed
    assert api.refused("mail.set", mail="eve@example.com", plan="standard")["code"] == 1003
    assert domain.refused("mail.add", mail="ada@example.com", password=MAILBOX_PASSWORD, plan="light",
                          first_name="A", last_name="")["message"] == "Mail address already exists"
    assert domain.refused("mail.add", mail="y@example.com", password=MAILBOX_PASSWORD, plan="gold",
                          first_name="A", last_name="")["code"] == -32602
    assert domain.refused("mail.add", mail="y@example.com", password=MAILBOX_PASSWORD, plan="light")["code"] == -32602
    assert api.ok("domain.get", domain="example.com")["count_mails"] == 3
    [entry] = state(app)
    assert entry["limits"] == {"light_mailboxes": 1, "standard_mailboxes": 2, "premium_mailboxes": 0,
                               "mailboxes": 3, "mailing_lists": 0, "account_plan": "reseller"}
    assert {(m["id"], m["plan"], m["quota_gb"]) for m in entry["mailboxes"]} == {
        ("ada@example.com", "standard", 13), ("bob@example.com", "standard", 10), ("eve@example.com", "light", 2)}
    assert MAILBOX_PASSWORD not in str(state(app))


def test_mail_set_get_del_and_aliases(api, app):
    add_account(api, tarifflimits={"standard": 2, "premium": 1})
    add_domain(api)
    add_mail(api, "ada@example.com")
    changed = api.ok("mail.set", mail="ada@example.com", plan="premium", first_name="Ada L.", active="0",
                     aliases=["info@example.com"], password="Another-Pass-9")
    assert changed["plan"] == "premium" and changed["active"] is False and changed["aliases"] == ["info@example.com"]
    assert api.ok("mail.get", mail="ada@example.com") == changed
    assert state(app)[0]["aliases"] == [{"id": "info@example.com", "address": "info@example.com",
                                         "target": "ada@example.com"}]
    assert as_domain(api, "info@example.com").refused(
        "mail.add", mail="info@example.com", password=MAILBOX_PASSWORD, plan="standard",
        first_name="I", last_name="")["code"] == 1002        # the alias holds the address
    assert api.refused("mail.set", mail="ada@example.com", aliases=["x@elsewhere.example"])["code"] == -32602
    assert api.ok("mail.del", mail="ada@example.com") is True
    assert api.refused("mail.del", mail="ada@example.com")["message"] == "Mail address does not exist"


def test_mail_list_pages(api):
    add_account(api, tarifflimits={"light": 5})
    add_domain(api)
    for name in ("eve", "ada", "cid", "bob", "dan"):
        add_mail(api, f"{name}@example.com", plan="light")
    everything = api.ok("mail.list", domain="example.com")
    assert [m["mail"].split("@")[0] for m in everything] == ["ada", "bob", "cid", "dan", "eve"]
    page = api.ok("mail.list", domain="example.com", page=2, page_size=2)
    assert page["totalHits"] == 5 and page["totalPages"] == 3
    assert [m["mail"] for m in page["results"]] == ["cid@example.com", "dan@example.com"]
    assert api.ok("mail.list", domain="example.com", page=4, page_size=2)["results"] == []
    assert api.refused("mail.list", domain="example.com", page_size=2)["code"] == -32602
    assert api.refused("mail.list", domain="example.com", page=2)["code"] == -32602
    assert api.refused("mail.list", domain="example.com", page=1, page_size=-1)["code"] == -32602


# --- mailing lists --------------------------------------------------------------------------------------------

def test_mailing_lists_count_against_max_mailinglist(api, app):
    add_account(api, max_mailinglist=1)
    add_domain(api)
    account = login(api, "prov-1", ACCOUNT_PASSWORD)
    assert account.ok("mailinglist.add", mailinglist="team@example.com", password="List-Pass-1", account="prov-1",
                      adminmail="ada@example.net") is True
    error = account.refused("mailinglist.add", mailinglist="board@example.com", password="List-Pass-1",
                            account="prov-1")
    assert error["code"] == 1003 and "mailing lists" in error["message"]
    assert account.ok("mailinglist.get", mailinglist="team@example.com", account="prov-1") == {
        "mailinglist": "team@example.com", "adminmail": "ada@example.net"}
    assert account.ok("mailinglist.set", mailinglist="team@example.com", account="prov-1", adminmail="b@example.org")
    assert [x["adminmail"] for x in account.ok("mailinglist.list", account="prov-1")] == ["b@example.org"]
    assert state(app)[0]["lists"] == [{"id": "team@example.com", "address": "team@example.com"}]
    assert account.refused("mailinglist.add", mailinglist="x@other.example", password="List-Pass-1",
                           account="prov-1")["code"] == -32602
    assert account.refused("mailinglist.delete", mailinglist="team@example.com",
                           account="prov-1")["code"] == -32601           # the method is mailinglist.del
    assert account.ok("mailinglist.del", mailinglist="team@example.com", account="prov-1") is True
    assert account.refused("mailinglist.del", mailinglist="team@example.com", account="prov-1")["code"] == 1001


# --- invoices ---------------------------------------------------------------------------------------------------

def test_invoices_are_listed_and_downloaded_as_base64_zlib_files(api, app):
    add_account(api, tarifflimits={"standard": 2})
    invoices = api.ok("account.invoice.list", account="prov-1")
    assert len(invoices) == 3
    assert set(invoices[0]) == {"invoice_id", "invoiceNumber", "date", "amount", "paymentType", "status",
                                "availableDownloadFileTypes", "token"}
    assert [i["status"] for i in invoices] == ["paid", "paid", "open"]
    assert invoices[0]["date"] < invoices[1]["date"] < invoices[2]["date"]
    packed = api.ok("account.invoice.get", account="prov-1", token=invoices[0]["token"])["bin"]
    pdf = zlib.decompress(base64.b64decode(packed))
    assert pdf.startswith(b"%PDF-1.7") and invoices[0]["invoice_id"].encode() in pdf and b"prov-1" in pdf
    csv = zlib.decompress(base64.b64decode(api.ok("account.invoice.get", account="prov-1",
                                                  token=invoices[0]["token"], type="csv")["bin"]))
    assert csv.startswith(b"date,services,description,quantity,currency,net,vat_percent,total\n")
    assert api.refused("account.invoice.get", token=invoices[0]["token"], type="html")["code"] == -32602
    assert api.refused("account.invoice.get", token="nope")["code"] == 1001
    assert api.refused("account.invoice.get", account="prov-2", token=invoices[0]["token"])["code"] == 1001
    assert "token" not in str(state(app)[0]["native"]["invoices"])


def test_minimal_pdf_has_a_correct_cross_reference_table():
    pdf = minimal_pdf(["Invoice (1) \\ test"])
    start = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[start:].startswith(b"xref\n0 6\n")
    offsets = [int(line[:10]) for line in pdf[start:].split(b"\n")[3:8]]
    for number, offset in enumerate(offsets, start=1):
        assert pdf[offset:].startswith(f"{number} 0 obj".encode())
    assert b"(Invoice \\(1\\) \\\\ test)" in pdf


# --- /_sim/ API, faults, concurrency ---------------------------------------------------------------------------

def test_calls_are_counted_per_method(api, app):
    api.auth()
    api.ok("account.list")
    api.ok("account.list")
    calls = app.test_client().get("/_sim/calls").get_json()
    assert calls["calls"] == {"auth": 1, "account.list": 2} and calls["total"] == 3


def test_mutate_status_and_limits_behind_our_back(api, app):
    add_account(api, tarifflimits={"standard": 2})
    client = app.test_client()
    add_domain(api)
    add_mail(api, "ada@example.com")
    r = client.post("/_sim/mutate", json={"account_id": "prov-1", "status": "suspended"})
    assert r.status_code == 200 and r.get_json()["account"]["status"] == "suspended"
    # the only suspension the API allows: mailboxes off, the adapter's note in the memo
    assert api.ok("mail.get", mail="ada@example.com")["active"] is False
    assert api.ok("account.get", account="prov-1")["memo"].endswith("; suspended")
    r = client.post("/_sim/mutate", json={"account_id": "prov-1", "status": "active"})
    assert r.get_json()["account"]["status"] == "active" and api.ok("mail.get", mail="ada@example.com")["active"]
    r = client.post("/_sim/mutate", json={"account_id": "prov-1", "limits": {"standard_mailboxes": 7,
                                                                             "account_plan": "profi"}})
    assert r.get_json()["account"]["limits"]["standard_mailboxes"] == 7
    assert api.ok("account.get", account="prov-1")["plan"] == "profi"
    assert client.post("/_sim/mutate", json={"account_id": "prov-1", "status": "pending"}).status_code == 400
    assert client.post("/_sim/mutate", json={"account_id": "prov-1",
                                             "limits": {"aliases": 3}}).status_code == 400
    assert client.post("/_sim/mutate", json={"account_id": "prov-9", "status": "active"}).status_code == 404
    client.post("/_sim/mutate", json={"account_id": "prov-1", "status": "deleted"})
    assert api.ok("account.get", account="prov-1")["status"] == "deleted"


def test_faults_answer_in_the_json_rpc_error_shape(api, app):
    client = app.test_client()
    api.auth()
    client.post("/_sim/faults", json={"error_rate": 1.0})
    r = api.raw("account.list", session=api.session)
    assert r.status_code == 500 and r.get_json()["error"]["code"] == -32603
    client.post("/_sim/faults", json={"reset": True, "rate_limit_per_s": 1})
    api.raw("account.list", session=api.session)
    r = api.raw("account.list", session=api.session)
    assert r.status_code == 429 and r.headers["Retry-After"] and r.get_json()["jsonrpc"] == "2.0"
    client.post("/_sim/faults", json={"reset": True, "malformed_rate": 1.0})
    r = api.raw("account.list", session=api.session)
    assert r.status_code == 200 and r.get_json(silent=True) is None


def test_reset_forgets_accounts_and_sessions(api, app):
    add_account(api)
    app.test_client().post("/_sim/reset")
    assert state(app) == []
    assert api.refused("account.list")["code"] == 253


def test_concurrent_adds_of_one_account_make_one():
    app = create_app(username=USER, password=PASSWORD)
    api = Api(app.test_client())
    api.auth()

    def add(_):
        return Api(app.test_client()).raw("account.add", {"account": "prov-7", "password": ACCOUNT_PASSWORD,
                                                          "plan": "reseller"}, session=api.session).get_json()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(add, range(8)))
    assert sum("result" in a for a in answers) == 1
    assert len(state(app)) == 1


def test_options_are_checked():
    with pytest.raises(ValueError):
        create_app(session_ttl=0)
    with pytest.raises(ValueError):
        create_app(username="")
    app = create_app(api_key="ignored")        # `provisioner simulate` may pass options it does not use
    assert Api(app.test_client()).auth(user="dev-reseller", password="dev-mailboxorg-password")["result"]


# --- login levels -----------------------------------------------------------------------------------------------

def test_logins_below_the_reseller_have_their_levels_and_scopes(api):
    add_account(api, tarifflimits={"standard": 2}, max_mailinglist=1)
    add_domain(api)
    add_account(api, "prov-2")
    add_domain(api, "prov-2", "other.example")
    add_mail(api, "ada@example.com")
    assert api.refused("mail.add", mail="bob@example.com", password=MAILBOX_PASSWORD, plan="standard",
                       first_name="B", last_name="", inboxsave=True, forwards=[])["code"] == 1004   # reseller
    assert api.refused("mailinglist.list", account="prov-1")["code"] == 1004

    account = login(api, "prov-1", ACCOUNT_PASSWORD)
    assert account.auth("prov-1", ACCOUNT_PASSWORD)["result"]["level"] == "account"
    assert account.ok("account.get", account="prov-1")["account"] == "prov-1"
    assert account.ok("mailinglist.list", account="prov-1") == []
    assert account.refused("account.get", account="prov-2")["code"] == 1004               # not its account
    assert account.refused("account.list")["code"] == 1004
    assert account.refused("account.set", account="prov-1", max_mailinglist=9)["code"] == 1004
    assert account.ok("account.set", account="prov-1", memo="ours")["memo"] == "ours"

    domain = as_domain(api, "ada@example.com")
    assert domain.auth("example.com", DOMAIN_PASSWORD)["result"]["level"] == "domain"
    assert domain.refused("domain.list", account="prov-1")["code"] == 1004
    assert domain.refused("mail.list", domain="other.example")["code"] == 1004
    assert domain.refused("mailinglist.list", account="prov-1")["code"] == 1004
    assert [m["mail"] for m in domain.ok("mail.list", domain="example.com")] == ["ada@example.com"]

    mail = login(api, "ada@example.com", MAILBOX_PASSWORD)
    assert mail.auth("ada@example.com", MAILBOX_PASSWORD)["result"]["level"] == "mail"
    assert mail.ok("mail.get", mail="ada@example.com")["mail"] == "ada@example.com"
    assert mail.refused("mail.list", domain="example.com")["code"] == 1004
    assert Api(api.client).auth("prov-1", "wrong-password")["error"]["code"] == 2


def test_invoice_download_needs_only_its_token(api):
    add_account(api)
    token = api.ok("account.invoice.list", account="prov-1")[0]["token"]
    body = Api(api.client).raw("account.invoice.get", {"token": token}).get_json()      # no session
    assert zlib.decompress(base64.b64decode(body["result"]["bin"])).startswith(b"%PDF")
