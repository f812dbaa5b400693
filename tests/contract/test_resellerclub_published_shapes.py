"""The ResellerClub simulator driven as published clients drive the real API.

Every request is shaped as one of these clients sends it (path, method, parameters),
and every answer is checked against the shape that client's own fixtures show. The
sources, listed in docs/providers/resellerclub.md ("Where the API facts come from"):

- [pit] Pitchero/ResellerClub: ``src/Orders/BusinessEmails/BusinessEmailOrder.php``
  (add, renew, delete requests) and its tests ``tests/unit/Orders/BusinessEmails/
  BusinessEmailOrderTest.php``, ``Responses/CreateResponseTest.php``,
  ``Responses/RenewalResponseTest.php``, ``Responses/AddedEmailAccountResponseFactoryTest.php``;
- [tis] TI-Sin-Problemas/resellerclub-python: ``tests/responses/customers/customer_details.txt``
  and ``sign_up.txt`` (captured answers), ``src/resellerclub/models/customer.py``;
- [whmcs] EnduranceIndia/whmcs-resellerclub-modules (ResellerClub's own WHMCS modules):
  ``customers/details.json?username=``, ``customers/signup.json`` and the rule "an error
  answer means: sign the customer up";
- [lb] LogicBoxes' password policies: the 2015 one (support.netearthgroup.com, "Updated
  User Password Policy on OrderBox") and the newer one of the v2 APIs
  (blog.netearthgroup.com/new-password-policy-on-the-lb-platform).

What stays unverified (error texts, HTTP statuses of refusals, delete/suspend answers,
the eelite/in and eelite/uk paths) is not asserted here beyond what these show.
"""
from __future__ import annotations

import re

import pytest

from provisioner.simulators.resellerclub import create_app

USERID, KEY = "715226", "published-shapes-rc-key"
AUTH = {"auth-userid": USERID, "api-key": KEY}
DOMAIN = "test-domain.co.uk.onlyfordemo.com"            # [pit] fixtures' domains

#: [pit] BusinessEmailOrderTest::testResponseFromBusinessEmailOrderDelete (and the write part
#: of every other write fixture)
WRITE_KEYS = {"description", "entityid", "actiontype", "actiontypedesc", "eaqid", "actionstatus",
              "actionstatusdesc", "status"}
#: [pit] CreateResponseTest / RenewalResponseTest: what an invoiced write adds
INVOICE_KEYS = {"invoiceid", "sellingcurrencysymbol", "sellingamount", "unutilisedsellingamount",
                "customerid"}
#: [pit] AddedEmailAccountResponseFactoryTest::testOnlyAddResponse
ONLY_ADD_KEYS = {"customercost", "eaqid", "customerid", "invoiceid"}
#: [pit] BusinessEmailOrderTest::testResponseFromBusinessEmailOrderGet (details.json)
DETAILS_KEYS = {"orderid", "eaqid", "description", "currentstatus", "paused", "emailaccounts", "customercost",
                "parentkey", "orderstatus", "creationtime", "recurring", "entitytypeid", "isDeletionRequest",
                "isImmediateReseller", "productkey", "customerid", "resellercost", "orderSuspendedByParent",
                "endtime", "entityid", "jumpConditions", "currentOrderPrice", "isOrderSuspendedUponExpiry",
                "actioncompleted", "domainname", "productcategory", "allowdeletion", "moneybackperiod"}
#: [tis] customer_details.txt, a captured customers/details.json answer
CUSTOMER_KEYS = {"city", "langpref", "twofactorsmsauth_enabled", "totalreceipts", "company", "username", "pin",
                 "country", "ispasswdexpired", "useremail", "telno", "customerid", "twofactorgoogleauth_enabled",
                 "creationdt", "zip", "address1", "parentid", "salescontactid", "name",
                 "isDominicanTaxConfiguredByParent", "resellerid", "salespersonshash", "telnocc", "other_state",
                 "customerstatus", "stateid", "twofactorauth_enabled", "state"}


@pytest.fixture
def client():
    return create_app(auth_userid=USERID, api_key=KEY).test_client()


def post(client, path: str, **form):
    return client.post(f"/api/{path}", data={**AUTH, **form})


def get(client, path: str, **params):
    return client.get(f"/api/{path}", query_string={**AUTH, **params})


def customer(client, username: str = "email@email.com") -> int:
    # [whmcs] _createCustomer's fields; the password under both [lb] policies
    r = post(client, "customers/signup.json", username=username, passwd="Shap3s#Pass_1", name="Customer Name",
             company="Customer Company", **{"address-line-1": "Customer Address", "address-line-2": "",
                                            "address-line-3": "", "city": "City", "state": "State",
                                            "country": "US", "zipcode": "12345", "phone-cc": "1",
                                            "phone": "1234567890", "lang-pref": "en"})
    assert r.status_code == 200
    assert isinstance(r.get_json(), int)                # [tis] sign_up.txt: "30930235", a bare number
    return r.get_json()


def add(client, invoice: str = "NoInvoice", domain: str = DOMAIN, accounts: int = 1) -> dict:
    # [pit] BusinessEmailOrder::create: exactly these five parameters on eelite/us/add
    r = post(client, "eelite/us/add.json", **{"domain-name": domain, "customer-id": customer(client),
                                              "months": 1, "no-of-accounts": accounts,
                                              "invoice-option": invoice})
    assert r.status_code == 200
    return r.get_json()


def test_add_answers_the_create_response_shape(client):
    body = add(client)
    assert set(body) == WRITE_KEYS                       # NoInvoice: no invoice fields
    assert (body["actiontype"], body["status"], body["description"]) == ("Add", "Success", DOMAIN)
    assert body["actionstatus"] in ("InvoicePaid", "PendingExecution")
    assert re.fullmatch(r"\d+", body["entityid"]) and re.fullmatch(r"\d+", body["eaqid"])


@pytest.mark.parametrize("invoice", ["PayInvoice", "KeepInvoice"])
def test_an_invoiced_add_is_flat_with_the_invoice_fields(client, invoice):
    body = add(client, invoice)                          # [pit] CreateResponseTest: flat, not nested
    assert set(body) == WRITE_KEYS | INVOICE_KEYS
    assert body["actionstatus"] == "InvoicePaid" and re.fullmatch(r"\d+", body["invoiceid"])


def test_renew_answers_the_renewal_response_shape(client):
    order_id = add(client)["entityid"]
    # [pit] BusinessEmailOrder::renew: order-id, months, no-of-accounts, invoice-option
    r = post(client, "eelite/us/renew.json", **{"order-id": order_id, "months": 1, "no-of-accounts": 0,
                                                "invoice-option": "PayInvoice"})
    body = r.get_json()
    assert r.status_code == 200 and set(body) == WRITE_KEYS | INVOICE_KEYS   # [pit] RenewalResponseTest
    assert (body["actiontype"], body["actionstatus"], body["entityid"]) == ("Renew", "InvoicePaid", order_id)


def test_renew_no_of_accounts_is_additional_accounts(client):
    order_id = add(client, accounts=1)["entityid"]
    # [pit] RenewRequest: "Additional email accounts to be purchased ..., if required"
    post(client, "eelite/us/renew.json", **{"order-id": order_id, "months": 1, "no-of-accounts": 2,
                                            "invoice-option": "NoInvoice"})
    assert get(client, "eelite/us/details.json", **{"order-id": order_id}).get_json()["emailaccounts"] == "3"


@pytest.mark.parametrize("invoice", ["NoInvoice", "PayInvoice", "KeepInvoice", "OnlyAdd"])
def test_add_email_account_answers_per_invoice_option(client, invoice):
    order_id = add(client)["entityid"]
    r = post(client, "eelite/us/add-email-account.json", **{"order-id": order_id, "no-of-accounts": 1,
                                                            "invoice-option": invoice})
    body = r.get_json()
    assert r.status_code == 200
    if invoice == "OnlyAdd":                             # [pit] testOnlyAddResponse: no entityid
        assert set(body) == ONLY_ADD_KEYS
        return
    if invoice in ("PayInvoice", "KeepInvoice"):         # [pit] nested under the invoice id
        (invoice_id, body), = body.items()
        assert invoice_id == body["invoiceid"]
        assert set(body) == WRITE_KEYS | INVOICE_KEYS
    else:                                                # [pit] testNoInvoiceResponse
        assert set(body) == WRITE_KEYS
    assert (body["actiontype"], body["actionstatus"], body["status"]) == ("AddEmailAccount", "InvoicePaid",
                                                                         "Success")
    assert body["entityid"] == order_id


def test_delete_answers_the_order_response_shape(client):
    order_id = add(client)["entityid"]
    body = post(client, "eelite/us/delete.json", **{"order-id": order_id}).get_json()   # [pit] delete
    assert set(body) == WRITE_KEYS and body["status"] == "Success"


def test_details_answers_the_get_response_fields(client):
    order_id = add(client)["entityid"]
    body = get(client, "eelite/us/details.json", **{"order-id": order_id}).get_json()
    assert set(body) - {"autoRenew"} == DETAILS_KEYS
    assert (body["productkey"], body["productcategory"], body["domainname"]) == ("eeliteus", "hosting", DOMAIN)
    assert body["orderid"] == body["entityid"] == order_id
    assert body["parentkey"].endswith(f"_{USERID}") and body["orderstatus"] == [] == body["jumpConditions"]
    assert re.fullmatch(r"\d+", body["creationtime"]) and re.fullmatch(r"\d+", body["endtime"])


def test_customer_details_answer_the_captured_fields(client):
    customer_id = customer(client)
    # [whmcs] GET /customers/details.json with the client's e-mail as username
    body = get(client, "customers/details.json", username="email@email.com").get_json()
    assert set(body) == CUSTOMER_KEYS
    assert body["customerid"] == str(customer_id) and body["username"] == body["useremail"] == "email@email.com"
    assert body["resellerid"] == body["parentid"] == USERID
    assert body["isDominicanTaxConfiguredByParent"] is False and body["salespersonshash"] == {}
    assert all(isinstance(body[k], str) for k in CUSTOMER_KEYS - {"isDominicanTaxConfiguredByParent",
                                                                  "salespersonshash"})


def test_an_unknown_customer_answers_the_error_envelope(client):
    # [whmcs] strtolower($client_details['status']) == 'error' -> sign the customer up
    r = get(client, "customers/details.json", username="nobody@example.com")
    body = r.get_json()
    assert set(body) == {"status", "message"} and body["status"].lower() == "error"


@pytest.mark.parametrize("path, password, ok", [
    ("customers/signup.json", "qwe7777dsa", False),      # [whmcs] its generator: fails the 2015 policy
    ("customers/signup.json", "Shap3s#Pass_1", True),
    ("customers/v2/signup.json", "Shap3s#Pass_1", True),
    ("customers/v2/signup.json", "Shap3s^Pass^1", False),   # '^' is not in the newer symbol set
    ("customers/signup.json", "Shap3s!Pass!1", False),      # '!' is not in the 2015 symbol set
])
def test_signup_enforces_the_lb_policies(client, path, password, ok):
    r = post(client, path, username="p@example.com", passwd=password, name="P Q", company="C",
             **{"address-line-1": "A", "city": "C", "state": "S", "country": "US", "zipcode": "12345",
                "phone-cc": "1", "phone": "1234567890", "lang-pref": "en"})
    assert (r.status_code == 200) is ok
    if not ok:
        assert r.get_json()["status"] == "ERROR"


def test_a_failed_write_answers_failed(client):
    order_id = add(client)["entityid"]
    client.post("/_sim/fail-actions", json={"action": "renew", "description": "Insufficient funds"})
    body = post(client, "eelite/us/renew.json", **{"order-id": order_id, "months": 1, "no-of-accounts": 0,
                                                   "invoice-option": "NoInvoice"}).get_json()
    assert (body["status"], body["actionstatus"], body["actionstatusdesc"]) == ("Failed", "Failed",
                                                                               "Insufficient funds")
