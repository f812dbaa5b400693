"""Intake refuses, with a 422 naming the problem and storing nothing, the hooks whose job
the provider would fail before any upstream call: a ResellerClub create without the
postal details a customer sign-up needs, a change of a limit fixed at creation (a
Qboxmail relay's sending type, a ResellerClub order's region), limits the upstream is
not set up for, a password the adapter would not set. ``/hooks/v1/events/validate``
answers the same. No upstream runs here: none is called."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, update

from provisioner.models import Event, Job, Service
from tests.helpers import event_body

# product_configs: enterprise-email-us [20], enterprise-email-in [21], qboxmail-hosting [50],
# qboxmail-relay [51]
POSTAL = {"address": "1 Main St", "city": "Berlin", "state": "Berlin", "postcode": "10115",
          "phone": "+49.3012345678"}
DEFAULTS = {"address": "1 Reseller Way", "city": "Berlin", "postcode": "10115", "state": "Berlin",
            "country": "DE", "phone_cc": "49", "phone": "3012345678"}


def rc_create(service_id: str = "620", product_id: str = "20", **client) -> dict:
    body = event_body("service.create", service_id, domain=f"svc{service_id}.example.com",
                      product_id=product_id, options={"Total Mailboxes": 3})
    body["client"].update(client)
    return body


def relay_body(kind: str, service_id: str = "651", **fields) -> dict:
    options = fields.pop("options", {"Sending Type": "transactional", "Messages": 10000})
    return event_body(kind, service_id, domain=f"relay{service_id}.example.com", product_id="51",
                      options=options, **fields)


def counts(runtime) -> tuple[int, int, int]:
    with runtime.db.read() as session:
        return tuple(session.execute(select(func.count()).select_from(model)).scalar_one()
                     for model in (Event, Job, Service))


def send_both(client, signer, body: dict):
    """The answers of validate and of the real endpoint to one body (both signed alike)."""
    raw = json.dumps(body)
    judged = client.post("/hooks/v1/events/validate", data=raw, headers=signer.headers(raw))
    answer = client.post("/hooks/v1/events", data=raw, headers=signer.headers(raw))
    return judged, answer


def refused(client, signer, runtime, body: dict, code: str) -> dict:
    """Asserts validate and the endpoint both answer 422 ``code`` and that nothing was stored."""
    before = counts(runtime)
    judged, answer = send_both(client, signer, body)
    assert answer.status_code == 422, answer.get_json()
    error = answer.get_json()["error"]
    assert error["code"] == code
    assert judged.status_code == 422 and judged.get_json() == answer.get_json()
    assert counts(runtime) == before
    return error


def accepted(client, signer, body: dict) -> dict:
    judged, answer = send_both(client, signer, body)
    assert judged.status_code == 200 and judged.get_json()["valid"] is True, judged.get_json()
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()


def with_account(runtime, service_id: str, upstream_id: str) -> None:
    """As if the create's job had made the upstream account."""
    with runtime.db.transaction() as session:
        session.execute(update(Service).where(Service.id == service_id).values(upstream_id=upstream_id))


# --- client details a new account needs ------------------------------------------------------

def test_resellerclub_create_without_postal_details_is_refused(client, signer, runtime):
    error = refused(client, signer, runtime, rc_create(), "client_details_missing")
    assert set(error["fields"]) == {"client.address", "client.city", "client.postcode", "client.phone"}
    assert "(resellerclub) needs the client's address, city, postcode, phone" in error["message"]
    assert counts(runtime) == (0, 0, 0)


def test_only_what_is_missing_is_named(client, signer, runtime):
    body = rc_create(**{**POSTAL, "phone": "", "email": ""})
    error = refused(client, signer, runtime, body, "client_details_missing")
    assert set(error["fields"]) == {"client.phone", "client.email"}


def test_a_phone_resellerclub_cannot_read_counts_as_missing(client, signer, runtime):
    error = refused(client, signer, runtime, rc_create(**{**POSTAL, "phone": "call me"}),
                    "client_details_missing")
    assert set(error["fields"]) == {"client.phone"}


def test_complete_client_details_are_accepted(client, signer, runtime):
    receipt = accepted(client, signer, rc_create(**POSTAL))
    assert receipt["service_id"] == "620"
    assert counts(runtime) == (1, 1, 1)


def test_customer_defaults_fill_the_gaps(client, signer, runtime):
    runtime.catalog.upstreams["resellerclub"]["customer_defaults"] = dict(DEFAULTS)
    accepted(client, signer, rc_create())
    assert counts(runtime) == (1, 1, 1)


def test_partial_customer_defaults_leave_the_rest_missing(client, signer, runtime):
    runtime.catalog.upstreams["resellerclub"]["customer_defaults"] = {"phone_cc": "49", "phone": "3012345678"}
    error = refused(client, signer, runtime, rc_create(), "client_details_missing")
    assert set(error["fields"]) == {"client.address", "client.city", "client.postcode"}


def test_a_create_for_a_service_with_an_account_needs_no_sign_up(client, signer, runtime):
    accepted(client, signer, rc_create(**POSTAL))
    with_account(runtime, "620", "90001")
    # billing systems resend the create; the account exists, so no customer is signed up
    accepted(client, signer, rc_create())


def test_upstreams_without_a_customer_sign_up_need_no_postal_details(client, signer, runtime):
    accepted(client, signer, event_body("service.create", "1042"))           # the sandbox
    accepted(client, signer, relay_body("service.create"))                   # qboxmail


# --- limits fixed at creation -----------------------------------------------------------------

def test_a_relay_sending_type_cannot_change_in_place(client, signer, runtime):
    accepted(client, signer, relay_body("service.create"))
    with_account(runtime, "651", "4711")
    change = relay_body("service.change_package", options={"Sending Type": "promotional", "Messages": 10000})
    error = refused(client, signer, runtime, change, "fixed_limit_change")
    assert error["fields"] == {"limits.relay_type": "fixed once the account exists"}
    assert "account's relay_type (transactional to promotional); order a new service" in error["message"]
    with runtime.db.read() as session:
        assert session.get(Service, "651").limits["relay_type"] == "transactional"
    # the other limits may change
    accepted(client, signer, relay_body("service.change_package",
                                        options={"Sending Type": "transactional", "Messages": 20000}))


def test_a_create_resent_with_another_sending_type_is_refused_too(client, signer, runtime):
    accepted(client, signer, relay_body("service.create"))
    with_account(runtime, "651", "4711")
    again = relay_body("service.create", options={"Sending Type": "promotional"})
    error = refused(client, signer, runtime, again, "fixed_limit_change")
    assert set(error["fields"]) == {"limits.relay_type"}


def test_before_the_account_exists_the_sending_type_may_change(client, signer, runtime):
    accepted(client, signer, relay_body("service.create"))
    accepted(client, signer, relay_body("service.change_package", options={"Sending Type": "promotional"}))


def test_a_resellerclub_order_cannot_move_region(client, signer, runtime):
    accepted(client, signer, rc_create(**POSTAL))
    with_account(runtime, "620", "90001")
    move = event_body("service.change_package", "620", domain="svc620.example.com", product_id="21",
                      options={"Total Mailboxes": 3})
    error = refused(client, signer, runtime, move, "fixed_limit_change")
    assert error["fields"] == {"limits.region": "fixed once the account exists"}
    assert "region (us to in)" in error["message"]


# --- limits the upstream is not set up for; passwords it would not set ------------------------

def test_a_product_line_the_upstream_does_not_sell_is_refused(client, signer, runtime):
    runtime.catalog.upstreams["resellerclub"]["product_lines"] = ["enterpriseemail/us"]
    error = refused(client, signer, runtime, rc_create("621", "21", **POSTAL), "limits_not_supported")
    assert set(error["fields"]) == {"limits.email_product"}
    assert "product_lines" in error["message"]


def test_a_relay_product_on_a_hosting_only_upstream_is_refused(client, signer, runtime):
    runtime.catalog.upstreams["qboxmail"]["product_kinds"] = ["hosting"]
    error = refused(client, signer, runtime, relay_body("service.create"), "limits_not_supported")
    assert set(error["fields"]) == {"limits.qboxmail_product"}


@pytest.mark.parametrize("product_id, password, needle", [
    ("50", "short1", "at least 8 characters"),
    ("51", "Long-enough-2026", "generated by the platform"),
])
def test_a_password_qboxmail_would_not_set_is_refused(client, signer, runtime, product_id, password, needle):
    create = event_body("service.create", "652", domain="q652.example.com", product_id=product_id, options={})
    accepted(client, signer, create)
    change = event_body("service.change_password", "652", domain="q652.example.com", product_id=product_id,
                        options={}, password=password)
    with_account(runtime, "652", "D123456789" if product_id == "50" else "4711")
    error = refused(client, signer, runtime, change, "password_not_accepted")
    assert needle in error["message"] and set(error["fields"]) == {"service.password"}
    assert password not in json.dumps(error)


def test_a_strong_hosting_password_is_accepted(client, signer, runtime):
    accepted(client, signer, event_body("service.create", "652", domain="q652.example.com", product_id="50",
                                        options={}))
    accepted(client, signer, event_body("service.change_password", "652", domain="q652.example.com",
                                        product_id="50", options={}, password="Long-enough-2026"))


def test_before_the_account_exists_the_create_takes_any_password(client, signer, runtime):
    # the create's job uses it when Qboxmail accepts it, else generates one: nothing fails
    accepted(client, signer, event_body("service.create", "652", domain="q652.example.com", product_id="50",
                                        options={}))
    accepted(client, signer, event_body("service.change_password", "652", domain="q652.example.com",
                                        product_id="50", options={}, password="short1"))
