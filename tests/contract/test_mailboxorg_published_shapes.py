"""The mailbox.org simulator against the published shapes of the real API.

Every request here is shaped as a public client sends it, every check is what that
client's own tests assert about the real API's answers:

- heshsum/mailbox-org-api, ``mailbox_org_api/APIClient.py`` (requests: ``{"method",
  "params", "jsonrpc": "2.0", "id": "<string>"}``, session in ``HPLS-AUTH``) and
  ``tests/TestAPIClient.py`` (its assertions, run against api.mailbox.org with an
  account login);
- PerlServices/API-MailboxOrg, ``lib/API/MailboxOrg/API/*.pm`` (generated from the
  method reference https://api.mailbox.org/v1/doc/methods/index.html: parameters and
  "Available for user level");
- the method reference itself for account.add / account.get (plans, statuses).

Sources and what is still unverified: docs/providers/mailboxorg.md.
"""
from __future__ import annotations

import base64
import itertools
import zlib

import pytest

from provisioner.simulators.mailboxorg import create_app

RESELLER, RESELLER_PASS = "shape-reseller", "Shape-Reseller-Pass-1"
ACCOUNT, ACCOUNT_PASS = "shape_bmbo_api", "Shape-Account-Pass-2"
DOMAIN = "shape-test.example"
MAIL = f"1790000000@{DOMAIN}"


class Client:
    """heshsum/mailbox-org-api's APIClient.api_request and auth, over the Flask test client."""

    def __init__(self, http):
        self.http = http
        self.ids = itertools.count(1)
        self.headers: dict[str, str] = {}
        self.level: str | None = None

    def request(self, method: str, params: dict) -> dict:
        body = {"method": method, "params": params, "jsonrpc": "2.0", "id": str(next(self.ids))}
        answer = self.http.post("/v1/", json=body, headers=self.headers)
        assert answer.status_code == 200
        data = answer.get_json()
        assert data["jsonrpc"] == "2.0" and data["id"] == body["id"]
        return data

    def result(self, method: str, params: dict):
        data = self.request(method, params)
        assert "result" in data, data
        return data["result"]

    def error(self, method: str, params: dict) -> dict:
        data = self.request(method, params)
        assert "result" not in data and set(data["error"]) == {"code", "message"}, data
        return data["error"]

    def auth(self, user: str, password: str) -> dict:
        answer = self.result("auth", {"user": user, "pass": password})
        self.level = answer["level"]
        self.headers["HPLS-AUTH"] = str(answer["session"])
        return answer


@pytest.fixture
def app():
    return create_app(username=RESELLER, password=RESELLER_PASS)


@pytest.fixture
def reseller(app) -> Client:
    api = Client(app.test_client())
    api.auth(RESELLER, RESELLER_PASS)
    api.result("account.add", {"account": ACCOUNT, "password": ACCOUNT_PASS, "plan": "basic",
                               "tarifflimits": {"light": 2, "standard": 2, "premium": 1}, "memo": "shape test",
                               "max_mailinglist": 1, "language": "de_DE"})
    api.result("domain.add", {"account": ACCOUNT, "domain": DOMAIN, "password": "Shape-Domain-Pass-3"})
    return api


@pytest.fixture
def account(app, reseller) -> Client:
    """The account login heshsum's tests use (``api.level == 'account'``)."""
    api = Client(app.test_client())
    api.auth(ACCOUNT, ACCOUNT_PASS)
    return api


@pytest.fixture
def mailbox(account) -> str:
    # APIClient.mail_add: mail, password, plan, first_name, last_name, inboxsave, forwards
    account.result("mail.add", {"mail": MAIL, "password": "Shape-Mail-Pass-4", "plan": "standard",
                                "first_name": "1790000000", "last_name": "1790000000", "inboxsave": True,
                                "forwards": []})
    return MAIL


def test_hello_world_and_auth(app):
    api = Client(app.test_client())
    assert api.result("hello.world", {}) == "Hello World!"
    assert api.error("auth", {"user": "wröng_üser?", "pass": "wröng_pässwörd!"}) == {"code": 2,
                                                                                      "message": "Access denied"}
    assert set(api.auth(RESELLER, RESELLER_PASS)) == {"session", "level"} and api.level == "reseller"
    assert api.result("hello.innerworld", {})


def test_deauth_ends_the_session(account):
    assert account.result("deauth", {}) is True
    assert account.error("account.get", {"account": ACCOUNT}) == {"code": 253, "message": "This Auth-ID is invalid"}


def test_account_get_and_set_with_an_account_login(account):
    assert account.level == "account"
    record = account.result("account.get", {"account": ACCOUNT})
    assert record["account"] == ACCOUNT and record["type"] == "BMBO" and record["status"] == "aktiv"
    assert record["plan"] == "basic" and record["language"] == "de_DE"
    assert {"company", "ustid", "address_main", "address_payment", "contact", "memo", "monthly_fee",
            "invoice_type", "payment_type", "tarifflimits"} <= set(record)
    account.result("account.set", {"account": ACCOUNT, "memo": "1790000001"})
    assert account.result("account.get", {"account": ACCOUNT})["memo"] == "1790000001"


@pytest.mark.parametrize("plan", ["basic", "profi", "profixl", "reseller"])
def test_account_plans_are_the_published_ones(reseller, plan):
    assert reseller.result("account.set", {"account": ACCOUNT, "plan": plan})["plan"] == plan


def test_account_set_takes_no_status_and_no_unpublished_plan(reseller):
    assert reseller.error("account.set", {"account": ACCOUNT, "status": "disabled"})["code"] == -32602
    assert reseller.error("account.set", {"account": ACCOUNT, "plan": "silver"})["code"] == -32602


def test_invoice_list_and_files(account):
    invoices = account.result("account.invoice.list", {"account": ACCOUNT})
    for invoice in invoices:
        assert invoice["invoiceNumber"].startswith("BMBO-") and invoice["invoice_id"].startswith("BMBO-")
        assert isinstance(invoice["amount"], (int, float)) and invoice["paymentType"] == "invoice"
        assert invoice["availableDownloadFileTypes"] == ["csv", "pdf", "xml"] and invoice["token"]
        assert invoice["date"] and invoice["status"]
    first = invoices[0]
    # APIClient.account_invoice_get: {account, token}; the answer names the invoice
    assert first["invoice_id"] in str(account.result("account.invoice.get",
                                                     {"account": ACCOUNT, "token": first["token"]}))

    def file(kind: str) -> bytes:       # APIClient.account_invoice_get_file
        answer = account.result("account.invoice.get", {"account": ACCOUNT, "token": first["token"], "type": kind})
        return zlib.decompress(base64.b64decode(answer["bin"]))
    assert "date,services,description,quantity,currency,net,vat_percent,total" in str(file("csv"))
    assert "PDF-1.7" in str(file("pdf"))
    assert 'xml version="1.0" encoding="UTF-8"' in str(file("xml"))


def test_invoice_get_as_the_perl_client_sends_it(app, account):
    token = account.result("account.invoice.list", {"account": ACCOUNT})[0]["token"]
    anonymous = Client(app.test_client())            # API::MailboxOrg::API::Invoice::get: no auth
    answer = anonymous.result("account.invoice.get", {"token": token})
    assert zlib.decompress(base64.b64decode(answer["bin"])).startswith(b"%PDF")


def test_domain_list(account):
    domains = account.result("domain.list", {"account": ACCOUNT})
    assert [d["domain"] for d in domains] == [DOMAIN]
    assert all(isinstance(d["count_mails"], int) for d in domains)
    account.result("domain.set", {"domain": DOMAIN, "memo": "1790000002"})
    assert account.result("domain.get", {"domain": DOMAIN})["memo"] == "1790000002"


def test_mail_add_get_and_list(account, mailbox):
    assert account.result("mail.get", {"mail": mailbox, "include_quota_usage": False})["mail"] == mailbox
    # APIClient.mail_list sends details (False) along
    mails = account.result("mail.list", {"domain": DOMAIN, "details": False})
    for mail in mails:
        assert "@" in mail["mail"] and DOMAIN in mail["mail"] and mail["parent_uid"] == ACCOUNT
        assert mail["domain"] == DOMAIN and mail["type"] in ["inbox", "inboxforward", "forward"]
        assert mail["memo"] is not None and mail["forwards"] is not None and mail["aliases"] is not None
        assert mail["capabilities"] is not None and mail["creation_date"] is not None
        assert mail["possible_capabilities"] == ["MAIL_BLACKLIST", "MAIL_SPAMPROTECTION", "MAIL_PASSWORDRESET_SMS",
                                                 "MAIL_BACKUPRECOVER"]
        assert mail["plan"] in ["premium", "standard", "light"]
    paginated = account.result("mail.list", {"domain": DOMAIN, "details": False, "page_size": 50, "page": 1})
    assert paginated["totalHits"] is not None and paginated["totalPages"] is not None
    assert paginated["results"] is not None
    account.error("mail.list", {"domain": DOMAIN, "details": False, "page": 2})
    account.error("mail.list", {"domain": DOMAIN, "details": False, "page_size": -1})


def test_mail_set_answers_what_mail_get_reads(account, mailbox):
    sent = {"require_reset_password": True, "plan": "premium", "first_name": "1790000000",
            "last_name": "1790000000", "inboxsave": True, "forwards": [f"f_forward@{DOMAIN}"],
            "aliases": [f"f_alias@{DOMAIN}"], "alternate_mail": f"f_alternate@{DOMAIN}", "memo": "memo_string",
            "active": True, "title": "Title", "position": "Job Position", "department": "Department",
            "company": "Company", "street": "Street 1", "postal_code": "12345", "city": "City",
            "phone": "+492345678", "fax": "+492345678", "cell_phone": "+492345678",
            "uid_extern": "external_uid_value", "language": "de_DE"}
    account.result("mail.set", {"mail": mailbox, **sent})
    got = account.result("mail.get", {"mail": mailbox, "include_quota_usage": False})
    for key, value in sent.items():
        assert got[key] == value, key
    # APIClient.mail_set_state, mail_set_password: the answer is the mail.get record
    account.result("mail.set", {"mail": mailbox, "active": False})
    assert account.result("mail.get", {"mail": mailbox, "include_quota_usage": False})["active"] is False
    answer = account.result("mail.set", {"mail": mailbox, "password": "Shape-Mail-Pass-5"})
    assert answer == account.result("mail.get", {"mail": mailbox, "include_quota_usage": False})
    # APIClient.mail_set_additional_mail_quota sends the plan along, the quota as a string
    account.result("mail.set", {"mail": mailbox, "plan": "premium", "additional_mail_quota": "23"})
    assert int(account.result("mail.get", {"mail": mailbox})["additional_mail_quota"]) == 23


def test_mailing_lists_as_the_clients_send_them(account):
    # APIClient.mailinglist_add/set send adminmail and password even when they are None
    assert account.result("mailinglist.add", {"mailinglist": f"team@{DOMAIN}", "password": "Shape-List-Pass-6",
                                              "account": ACCOUNT, "adminmail": None}) is True
    assert [x["mailinglist"] for x in account.result("mailinglist.list", {"account": ACCOUNT})] == [f"team@{DOMAIN}"]
    assert account.result("mailinglist.get", {"mailinglist": f"team@{DOMAIN}", "account": ACCOUNT})
    assert account.result("mailinglist.set", {"mailinglist": f"team@{DOMAIN}", "account": ACCOUNT,
                                              "password": None, "adminmail": f"owner@{DOMAIN}"}) is True
    assert account.result("mailinglist.del", {"mailinglist": f"team@{DOMAIN}", "account": ACCOUNT}) is True
    assert account.result("mailinglist.list", {"account": ACCOUNT}) == []


@pytest.mark.parametrize("method, params", [
    ("mail.add", {"mail": f"x@{DOMAIN}", "password": "Shape-Mail-Pass-7", "plan": "light", "first_name": "X",
                  "last_name": "Y", "inboxsave": True, "forwards": []}),
    ("mailinglist.add", {"mailinglist": f"team@{DOMAIN}", "password": "Shape-List-Pass-6", "account": ACCOUNT}),
    ("mailinglist.list", {"account": ACCOUNT}),
])
def test_methods_the_reference_keeps_from_the_reseller_level(reseller, method, params):
    """mail.add: "Available for user level: admin, account, domain"; mailinglist.*: admin, account."""
    reseller.error(method, params)
