"""The ResellerClub simulator through Flask's test client: paths, parameters, answer
shapes, errors and the /_sim/ control API."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from provisioner.simulators.resellerclub import add_months, create_app
from tests.helpers import StillClock

USERID, KEY = "100001", "sim-test-key"
AUTH = {"auth-userid": USERID, "api-key": KEY}
PASSWORD = "Cust0mer-Pass9"
T0 = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.timezone.utc).timestamp()


@pytest.fixture
def clock():
    return StillClock(T0)


@pytest.fixture
def app(clock):
    return create_app(auth_userid=USERID, api_key=KEY, clock=clock)


@pytest.fixture
def client(app):
    return app.test_client()


def get(client, path, **params):
    return client.get(f"/api/{path}", query_string={**AUTH, **params})


def post(client, path, **form):
    return client.post(f"/api/{path}", data={**AUTH, **form})


def signup(client, username="owner@example.com", **extra) -> int:
    form = {"username": username, "passwd": PASSWORD, "name": "Ada Lovelace", "company": "Example Ltd",
            "address-line-1": "1 Main St", "city": "Berlin", "state": "Berlin", "country": "DE",
            "zipcode": "10115", "phone-cc": "49", "phone": "3012345678", "lang-pref": "en", **extra}
    r = post(client, "customers/signup.json", **form)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def order(client, domain="example.com", line="enterpriseemail/us", accounts=2, months=1, customer=None,
          **extra) -> dict:
    customer = customer or signup(client, f"owner@{domain}")
    r = post(client, f"{line}/add.json", **{"domain-name": domain, "customer-id": customer, "months": months,
                                            "no-of-accounts": accounts, "invoice-option": "NoInvoice",
                                            **extra})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def error_of(response) -> str:
    body = response.get_json()
    assert set(body) == {"status", "message"} and body["status"] == "ERROR", body
    return body["message"]


# --- credentials ---------------------------------------------------------------

@pytest.mark.parametrize("params", [{}, {"auth-userid": USERID}, {"api-key": KEY},
                                    {"auth-userid": USERID, "api-key": "wrong"},
                                    {"auth-userid": "999", "api-key": KEY}])
def test_every_call_needs_both_credentials(client, params):
    r = client.get("/api/enterpriseemail/us/search.json",
                   query_string={**params, "no-of-records": 1, "page-no": 1})
    assert r.status_code == 500
    assert error_of(r).startswith("Access Denied")


def test_credentials_are_accepted_in_the_form_body_too(client):
    r = client.post("/api/customers/signup.json", data={**AUTH, "username": "x@example.com"})
    assert "Access Denied" not in error_of(r)          # past the check: a missing field


def test_create_app_validates_its_options():
    with pytest.raises(ValueError):
        create_app(activation_delay=-1)
    with pytest.raises(ValueError):
        create_app(api_key="")
    create_app(unknown_option="ignored")                # registry passes extra options


# --- customers -------------------------------------------------------------------

def test_signup_answers_a_bare_id_and_details_find_it_by_username(client):
    customer_id = signup(client)
    assert isinstance(customer_id, int)
    details = get(client, "customers/details.json", username="OWNER@example.com").get_json()
    assert details["customerid"] == str(customer_id) and details["username"] == "owner@example.com"
    assert details["customerstatus"] == "Active" and details["telnocc"] == "49"
    by_id = get(client, "customers/details-by-id.json", **{"customer-id": customer_id}).get_json()
    assert by_id == details
    assert PASSWORD not in str(details)


def test_signup_refuses_duplicates_and_bad_fields(client):
    signup(client)
    r = post(client, "customers/signup.json", username="owner@example.com", passwd=PASSWORD)
    assert "is required" in error_of(r)
    form = {"passwd": PASSWORD, "name": "A", "company": "B", "address-line-1": "C", "city": "D",
            "state": "E", "country": "DE", "zipcode": "1", "phone-cc": "49", "phone": "301234",
            "lang-pref": "en"}
    assert "already exists" in error_of(post(client, "customers/signup.json",
                                             username="owner@example.com", **form))
    assert "Password must be 8 - 15 characters" in error_of(
        post(client, "customers/signup.json", username="n@example.com", **{**form, "passwd": "alllowercase"}))
    assert "country is invalid" in error_of(post(client, "customers/signup.json", username="n@example.com",
                                                 **{**form, "country": "Germany"}))


def test_unknown_customer_is_an_error(client):
    assert "not found" in error_of(get(client, "customers/details.json", username="nobody@example.com"))


# --- orders ------------------------------------------------------------------------

def test_add_answers_the_documented_write_fields(client):
    answer = order(client)
    assert {"description", "entityid", "actiontype", "actiontypedesc", "eaqid", "actionstatus",
            "actionstatusdesc"} <= answer.keys()
    assert "invoiceid" not in answer                  # NoInvoice
    assert answer["description"] == "example.com"
    with_invoice = order(client, "other.example", **{"invoice-option": "PayInvoice"})
    assert {"invoiceid", "sellingamount", "customerid"} <= with_invoice.keys()


def test_orderid_answers_a_bare_integer_and_details_the_documented_fields(client, clock):
    answer = order(client, months=1)
    order_id = get(client, "enterpriseemail/us/orderid.json", **{"domain-name": "example.com"}).get_json()
    assert order_id == int(answer["entityid"])
    details = get(client, "enterpriseemail/us/details.json", **{"order-id": order_id}).get_json()
    assert {"entityid", "description", "domainname", "currentstatus", "productcategory", "productkey",
            "creationtime", "endtime", "isImmediateReseller", "parentkey", "customerid", "emailaccounts",
            "isOrderSuspendedUponExpiry", "orderSuspendedByParent", "allowdeletion"} <= details.keys()
    assert details["productkey"] == "enterpriseemailus" and details["emailaccounts"] == "2"
    assert details["currentstatus"] == "Active"
    assert int(details["creationtime"]) == int(T0)
    # Jan 31 + 1 month ends on the last day of February
    end = dt.datetime.fromtimestamp(int(details["endtime"]), dt.timezone.utc)
    assert end.date() == dt.date(2026, 2, 28)


def test_orders_live_on_their_own_product_line(client):
    answer = order(client, line="enterpriseemail/in")
    order_id = answer["entityid"]
    assert get(client, "enterpriseemail/in/details.json", **{"order-id": order_id}).get_json()["productkey"] \
        == "enterpriseemailin"
    assert "No Entity found" in error_of(get(client, "enterpriseemail/us/details.json", **{"order-id": order_id}))
    assert "No order found" in error_of(get(client, "enterpriseemail/us/orderid.json",
                                            **{"domain-name": "example.com"}))
    biz = order(client, "biz.example", line="eelite/us")
    assert get(client, "eelite/us/details.json", **{"order-id": biz["entityid"]}).get_json()["productkey"] \
        == "eeliteus"
    assert client.post("/api/eelite/eu/add.json", data=AUTH).status_code == 404   # no such server
    assert client.post("/api/enterpriseemail/uk/add.json", data=AUTH).status_code == 404


def test_a_second_live_order_for_a_domain_is_refused(client):
    customer = signup(client)
    order(client, customer=customer)
    r = post(client, "enterpriseemail/in/add.json", **{"domain-name": "example.com", "customer-id": customer,
                                                     "months": 1, "no-of-accounts": 1})
    assert "already exists" in error_of(r)


def test_add_validates_its_parameters(client):
    customer = signup(client)
    base = {"domain-name": "example.com", "customer-id": customer, "months": 1, "no-of-accounts": 1}
    for change, text in [({"domain-name": "not a domain"}, "domain-name is invalid"),
                         ({"customer-id": 1}, "customer-id is invalid"),
                         ({"months": 0}, "months is invalid"),
                         ({"no-of-accounts": "x"}, "no-of-accounts is invalid"),
                         ({"invoice-option": "Later"}, "invoice-option is invalid")]:
        assert text in error_of(post(client, "enterpriseemail/us/add.json", **{**base, **change}))
    del base["months"]
    assert "months is required" in error_of(post(client, "enterpriseemail/us/add.json", **base))


def test_activation_is_asynchronous(clock):
    client = create_app(auth_userid=USERID, api_key=KEY, activation_delay=60, clock=clock).test_client()
    answer = order(client)
    assert answer["actionstatus"] == "InvoicePaid" and "5-10 minutes" in answer["actionstatusdesc"]
    details = lambda: get(client, "enterpriseemail/us/details.json",  # noqa: E731
                          **{"order-id": answer["entityid"]}).get_json()
    assert details()["currentstatus"] == "InActive"
    add = post(client, "enterpriseemail/us/add-email-account.json", **{"order-id": answer["entityid"],
                                                                      "no-of-accounts": 1})
    assert "not allowed" in error_of(add)
    clock.now += 61
    assert details()["currentstatus"] == "Active"
    assert client.get("/_sim/state").get_json()["accounts"][0]["status"] == "active"


def test_email_accounts_are_added_and_deleted(client):
    order_id = order(client, accounts=2)["entityid"]
    post(client, "enterpriseemail/us/add-email-account.json", **{"order-id": order_id, "no-of-accounts": 3})
    details = get(client, "enterpriseemail/us/details.json", **{"order-id": order_id}).get_json()
    assert details["emailaccounts"] == "5"
    post(client, "enterpriseemail/us/delete-email-account.json", **{"order-id": order_id, "no-of-accounts": 4})
    assert get(client, "enterpriseemail/us/details.json", **{"order-id": order_id}).get_json()["emailaccounts"] \
        == "1"
    r = post(client, "enterpriseemail/us/delete-email-account.json", **{"order-id": order_id, "no-of-accounts": 1})
    assert "at least one must remain" in error_of(r)


def test_renew_adds_calendar_months_to_the_end(client):
    order_id = order(client, months=1)["entityid"]
    answer = post(client, "enterpriseemail/us/renew.json", **{"order-id": order_id, "months": 12}).get_json()
    assert answer["actiontype"] == "Renew" and answer["status"] == "Success"
    details = get(client, "enterpriseemail/us/details.json", **{"order-id": order_id}).get_json()
    end = dt.datetime.fromtimestamp(int(details["endtime"]), dt.timezone.utc).date()
    assert end == dt.date(2027, 2, 28)
    # months count from the day itself: Jan 31 + 2 is Mar 31, not (Feb 28) + 1
    day = lambda stamp: dt.datetime.fromtimestamp(stamp, dt.timezone.utc).date()  # noqa: E731
    assert day(add_months(T0, 2)) == dt.date(2026, 3, 31)
    assert day(add_months(add_months(T0, 1), 1)) == dt.date(2026, 3, 28)


def test_suspend_and_unsuspend_through_orders(client):
    order_id = order(client)["entityid"]
    r = post(client, "orders/suspend.json", **{"order-id": order_id, "reason": "Overdue on Payment"})
    assert r.get_json()["entityid"] == order_id
    details = get(client, "enterpriseemail/us/details.json", **{"order-id": order_id}).get_json()
    assert details["currentstatus"] == "Suspended" and details["orderSuspendedByParent"] == "true"
    assert client.get("/_sim/state").get_json()["accounts"][0]["suspend_reason"] == "Overdue on Payment"
    again = post(client, "orders/suspend.json", **{"order-id": order_id, "reason": "again"})
    assert "already Suspended" in error_of(again)
    assert "reason is required" in error_of(post(client, "orders/suspend.json", **{"order-id": order_id}))
    post(client, "orders/unsuspend.json", **{"order-id": order_id})
    details = get(client, "enterpriseemail/us/details.json", **{"order-id": order_id}).get_json()
    assert details["currentstatus"] == "Active" and details["orderSuspendedByParent"] == "false"
    assert "already Active" in error_of(post(client, "orders/unsuspend.json", **{"order-id": order_id}))


def test_delete_keeps_the_order_for_look_ups(client):
    order_id = order(client)["entityid"]
    answer = post(client, "enterpriseemail/us/delete.json", **{"order-id": order_id}).get_json()
    assert answer["actiontype"] == "Delete" and answer["status"] == "Success"
    details = get(client, "enterpriseemail/us/details.json", **{"order-id": order_id}).get_json()
    assert details["currentstatus"] == "Deleted"
    assert "already Deleted" in error_of(post(client, "enterpriseemail/us/delete.json", **{"order-id": order_id}))
    assert "not allowed" in error_of(post(client, "orders/suspend.json", **{"order-id": order_id,
                                                                           "reason": "x"}))
    # the domain may be ordered again; orderid.json then names the live order
    fresh = order(client, customer=int(details["customerid"]))["entityid"]
    assert get(client, "enterpriseemail/us/orderid.json", **{"domain-name": "example.com"}).get_json() \
        == int(fresh)


def test_methods_are_enforced_in_the_error_shape(client):
    r = client.get("/api/enterpriseemail/us/add.json", query_string=AUTH)
    assert r.status_code == 405 and error_of(r)
    r = client.get("/api/enterpriseemail/us/nothing.json", query_string=AUTH)
    assert r.status_code == 404 and "not found" in error_of(r)


# --- search --------------------------------------------------------------------

def test_search_pages_with_numbered_keys_and_dotted_names(client):
    customer = signup(client)
    ids = [order(client, f"d{i}.example", customer=customer)["entityid"] for i in range(5)]
    page = get(client, "enterpriseemail/us/search.json", **{"no-of-records": 2, "page-no": 3}).get_json()
    assert page["recsonpage"] == "1" and page["recsindb"] == "5"
    assert set(page) == {"1", "recsonpage", "recsindb"}
    row = page["1"]
    assert row["orders.orderid"] == ids[4] and row["entity.description"] == "d4.example"
    assert {"entity.customerid", "orders.creationdt", "orders.creationtime", "orders.endtime",
            "entity.currentstatus", "entitytype.entitytypename", "entitytype.entitytypekey",
            "hosting_group_info.location"} <= row.keys()
    empty = get(client, "enterpriseemail/us/search.json", **{"no-of-records": 2, "page-no": 9}).get_json()
    assert empty == {"recsonpage": "0", "recsindb": "5"}


def test_search_filters(client):
    customer = signup(client)
    first = order(client, "a.example", customer=customer)["entityid"]
    second = order(client, "b.example", customer=customer)["entityid"]
    post(client, "orders/suspend.json", **{"order-id": second, "reason": "x"})
    found = get(client, "enterpriseemail/us/search.json",
                **{"no-of-records": 10, "page-no": 1, "status": "Suspended"}).get_json()
    assert found["recsindb"] == "1" and found["1"]["orders.orderid"] == second
    found = get(client, "enterpriseemail/us/search.json",
                **{"no-of-records": 10, "page-no": 1, "domain-name": "a.example"}).get_json()
    assert found["1"]["orders.orderid"] == first
    r = client.get("/api/enterpriseemail/us/search.json",
                   query_string=[*AUTH.items(), ("no-of-records", 10), ("page-no", 1),
                                 ("order-id", first), ("order-id", second), ("order-by", "domainname")])
    assert r.get_json()["recsindb"] == "2"
    assert "no-of-records is required" in error_of(get(client, "enterpriseemail/us/search.json", **{"page-no": 1}))
    assert "status is invalid" in error_of(get(client, "enterpriseemail/us/search.json",
                                               **{"no-of-records": 1, "page-no": 1, "status": "Gone"}))


# --- DNS and prices -------------------------------------------------------------------

def test_dns_records_are_a_list_of_type_host_value_class(client):
    order_id = order(client)["entityid"]
    records = get(client, "enterpriseemail/us/dns-record.json", **{"order-id": order_id}).get_json()
    assert records and all(set(r) == {"type", "host", "value", "class"} for r in records)
    assert {r["type"] for r in records} >= {"MX", "TXT", "CNAME"}
    assert all(r["host"].endswith("example.com") for r in records)


def test_price_tables_have_the_documented_shape(client):
    cost = get(client, "products/reseller-price.json").get_json()
    price = get(client, "products/customer-price.json").get_json()
    assert {"enterpriseemailus", "enterpriseemailin", "eeliteus", "domcno"} <= cost.keys()
    ranges = cost["enterpriseemailus"]["email_account_ranges"]
    assert list(ranges)[:2] == ["1-5", "6-10"] and "101-10000" in ranges
    assert set(ranges["1-5"]) == {"add", "renew"} and set(ranges["1-5"]["add"]) == {"1", "3", "6", "12"}
    assert price["enterpriseemailus"]["email_account_ranges"]["1-5"]["add"]["1"] \
        > ranges["1-5"]["add"]["1"] > 0


# --- the control API ------------------------------------------------------------------

def test_state_lists_orders_normalised_with_the_native_record(client):
    order_id = order(client, accounts=3)["entityid"]
    state = client.get("/_sim/state").get_json()
    [account] = state["accounts"]
    assert account["id"] == order_id and account["domain"] == "example.com"
    assert account["status"] == "active" and account["limits"] == {"mailboxes": 3}
    assert account["mailboxes"] == account["aliases"] == account["lists"] == []
    assert account["native"]["currentstatus"] == "Active"
    [customer] = state["customers"]
    assert customer["username"] == "owner@example.com"
    assert PASSWORD not in str(state) and "password" not in str(state)


def test_mutate_changes_status_and_limits(client):
    order_id = order(client)["entityid"]
    r = client.post("/_sim/mutate", json={"account_id": order_id, "status": "suspended", "limits": {"mailboxes": 7}})
    account = r.get_json()["account"]
    assert account["status"] == "suspended" and account["native"]["currentstatus"] == "Suspended"
    assert account["native"]["emailaccounts"] == "7"
    for status, native in (("pending", "InActive"), ("deleted", "Deleted"), ("active", "Active")):
        r = client.post("/_sim/mutate", json={"account_id": order_id, "status": status})
        assert r.get_json()["account"]["native"]["currentstatus"] == native
    assert client.post("/_sim/mutate", json={"account_id": "424242", "status": "active"}).status_code == 404
    r = client.post("/_sim/mutate", json={"account_id": order_id, "limits": {"aliases": 1}})
    assert r.status_code == 400
    r = client.post("/_sim/mutate", json={"account_id": order_id, "limits": {"mailboxes": 0}})
    assert r.status_code == 400


def test_reset_and_calls(client):
    order(client)
    calls = client.get("/_sim/calls").get_json()
    assert calls["calls"]["customers/signup"] == 1 and calls["calls"]["enterpriseemail/us/add"] == 1
    client.post("/_sim/reset")
    assert client.get("/_sim/state").get_json() == {"accounts": [], "customers": []}
    assert client.get("/_sim/calls").get_json()["total"] == 0
    assert order(client)["entityid"] == "80000001"        # ids start again


def test_faults_answer_in_the_resellerclub_shape(client):
    client.post("/_sim/faults", json={"error_rate": 1.0})
    r = get(client, "enterpriseemail/us/search.json", **{"no-of-records": 1, "page-no": 1})
    assert r.status_code == 500 and "try again" in error_of(r)
    client.post("/_sim/faults", json={"reset": True, "malformed_rate": 1.0})
    r = get(client, "enterpriseemail/us/search.json", **{"no-of-records": 1, "page-no": 1})
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.get_json(force=True)
    client.post("/_sim/faults", json={"reset": True, "rate_limit_per_s": 1})
    get(client, "products/reseller-price.json")
    r = get(client, "products/reseller-price.json")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "Too many requests" in error_of(r)


# --- issue 14: shapes as published clients show them ------------------------------------

#: the keys of a captured customers/details.json answer (TI-Sin-Problemas/resellerclub-python,
#: tests/responses/customers/customer_details.txt)
CUSTOMER_KEYS = {"city", "langpref", "twofactorsmsauth_enabled", "totalreceipts", "company", "username", "pin",
                 "country", "ispasswdexpired", "useremail", "telno", "customerid", "twofactorgoogleauth_enabled",
                 "creationdt", "zip", "address1", "parentid", "salescontactid", "name",
                 "isDominicanTaxConfiguredByParent", "resellerid", "salespersonshash", "telnocc", "other_state",
                 "customerstatus", "stateid", "twofactorauth_enabled", "state"}


def test_customer_details_answer_every_field_the_real_api_does(client):
    customer_id = signup(client)
    details = get(client, "customers/details.json", username="owner@example.com").get_json()
    assert set(details) == CUSTOMER_KEYS
    assert details["customerid"] == str(customer_id) and details["customerstatus"] == "Active"
    assert details["isDominicanTaxConfiguredByParent"] is False and details["salespersonshash"] == {}
    assert re.fullmatch(r"\d{4}", details["pin"]) and details["stateid"] == "0"
    assert {details[k] for k in ("twofactorauth_enabled", "twofactorsmsauth_enabled",
                                 "twofactorgoogleauth_enabled", "ispasswdexpired")} == {"false"}
    assert get(client, "customers/details-by-id.json", **{"customer-id": customer_id}).get_json() == details
    assert PASSWORD not in json.dumps(details) and "password_hash" not in details


@pytest.mark.parametrize("path, password, ok", [
    ("customers/signup.json", "Cust0mer-Pass9", True),        # 2015 policy: '-' is one of its symbols
    ("customers/signup.json", "Cust0mer!Pass9", False),       # '!' is not
    ("customers/signup.json", "Cust0merPass99", False),       # no symbol
    ("customers/signup.json", "Ada#Pass0word", False),        # contains the name
    ("customers/signup.json", "Ab1#efghijklmnop", False),     # 16 characters
    ("customers/signup.json", "Ab1#efgh", True),              # 8 characters
    ("customers/v2/signup.json", "Cust0mer!Pass9", True),     # newer policy: '!' is one of its symbols
    ("customers/v2/signup.json", "Cust0mer-Pass9", False),    # '-' is not
    ("customers/v2/signup.json", "Ab1#efgh", False),          # 8 characters
    ("customers/v2/signup.json", "Ab1#efghijklmnop", True),   # 16 characters
    ("customers/v2/signup.json", "qwe12345dsa", False),       # the WHMCS module's generated form
])
def test_signup_enforces_the_published_password_policies(client, path, password, ok):
    r = post(client, path, username="n@example.com", passwd=password, name="Ada Lovelace", company="X",
             **{"address-line-1": "1 Main St", "city": "Berlin", "state": "Berlin", "country": "DE",
                "zipcode": "10115", "phone-cc": "49", "phone": "3012345678", "lang-pref": "en"})
    if ok:
        assert r.status_code == 200 and isinstance(r.get_json(), int)
    else:
        assert r.status_code == 500 and error_of(r).startswith("Password must be")


def test_writes_answer_the_real_actiontypes_and_statuses(client):
    answer = order(client)
    assert (answer["actiontype"], answer["actionstatus"], answer["status"]) == ("Add", "InvoicePaid", "Success")
    order_id = answer["entityid"]
    add = post(client, "enterpriseemail/us/add-email-account.json",
               **{"order-id": order_id, "no-of-accounts": 1}).get_json()
    assert (add["actiontype"], add["actionstatus"]) == ("AddEmailAccount", "InvoicePaid")
    delete = post(client, "enterpriseemail/us/delete-email-account.json",
                  **{"order-id": order_id, "no-of-accounts": 1}).get_json()
    assert delete["actiontype"] == "DeleteEmailAccount"
    assert delete["actionstatus"] in ("InvoicePaid", "ExecutionStarted", "PendingExecution")
    renew = post(client, "enterpriseemail/us/renew.json", **{"order-id": order_id, "months": 1}).get_json()
    assert (renew["actiontype"], renew["actionstatus"]) == ("Renew", "InvoicePaid")


@pytest.mark.parametrize("option", ["PayInvoice", "KeepInvoice"])
def test_add_email_account_with_an_invoice_nests_under_the_invoice_id(client, option):
    order_id = order(client)["entityid"]
    body = post(client, "enterpriseemail/us/add-email-account.json",
                **{"order-id": order_id, "no-of-accounts": 1, "invoice-option": option}).get_json()
    (invoice, inner), = body.items()
    assert invoice == inner["invoiceid"] and inner["entityid"] == order_id
    assert inner["actiontype"] == "AddEmailAccount" and inner["status"] == "Success"


def test_only_add_answers_carry_no_entityid(client):
    order_id = order(client)["entityid"]
    body = post(client, "enterpriseemail/us/add-email-account.json",
                **{"order-id": order_id, "no-of-accounts": 1, "invoice-option": "OnlyAdd"}).get_json()
    assert set(body) == {"customercost", "eaqid", "customerid", "invoiceid"}
    added = order(client, "only.example", **{"invoice-option": "OnlyAdd"})
    assert "entityid" not in added and "invoiceid" in added
    assert get(client, "enterpriseemail/us/orderid.json", **{"domain-name": "only.example"}).status_code == 200


def test_renew_no_of_accounts_adds_accounts(client):
    order_id = order(client, accounts=2)["entityid"]
    details = lambda: get(client, "enterpriseemail/us/details.json",  # noqa: E731
                          **{"order-id": order_id}).get_json()
    post(client, "enterpriseemail/us/renew.json", **{"order-id": order_id, "months": 1, "no-of-accounts": 0})
    assert details()["emailaccounts"] == "2"
    post(client, "enterpriseemail/us/renew.json", **{"order-id": order_id, "months": 1, "no-of-accounts": 3})
    assert details()["emailaccounts"] == "5"                      # 2 + 3 additional, not 3
    assert "no-of-accounts is invalid" in error_of(post(client, "enterpriseemail/us/renew.json", **{
        "order-id": order_id, "months": 1, "no-of-accounts": -1}))


def test_armed_failures_answer_failed_once_and_change_nothing(client):
    order_id = order(client, accounts=2)["entityid"]
    r = client.post("/_sim/fail-actions", json={"action": "add-email-account", "description": "No funds"})
    assert r.status_code == 200
    body = post(client, "enterpriseemail/us/add-email-account.json",
                **{"order-id": order_id, "no-of-accounts": 1}).get_json()
    assert (body["status"], body["actionstatus"], body["actionstatusdesc"]) == ("Failed", "Failed", "No funds")
    assert get(client, "enterpriseemail/us/details.json", **{"order-id": order_id}).get_json()["emailaccounts"] \
        == "2"
    again = post(client, "enterpriseemail/us/add-email-account.json",
                 **{"order-id": order_id, "no-of-accounts": 1}).get_json()
    assert again["status"] == "Success"
    assert client.post("/_sim/fail-actions", json={"action": "nope"}).status_code == 400


@pytest.mark.parametrize("region, key", [("in", "eelitein"), ("uk", "eeliteuk")])
def test_business_email_in_and_uk(client, region, key):
    answer = order(client, f"{region}.example", line=f"eelite/{region}")
    details = get(client, f"eelite/{region}/details.json", **{"order-id": answer["entityid"]}).get_json()
    assert details["productkey"] == key
    assert key in get(client, "products/reseller-price.json").get_json()
