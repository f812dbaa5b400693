"""What providers declare for intake to judge before any upstream call (no upstream runs:
the adapters are built against an address nothing listens on)."""
from __future__ import annotations

import pytest

from provisioner.products import CORE_LIMITS
from provisioner.providers.base import ClientInfo
from provisioner.providers.errors import ValidationError
from provisioner.providers.qboxmail import QboxmailProvider
from provisioner.providers.registry import PROVIDERS, provider_class
from provisioner.providers.resellerclub import ResellerClubProvider

NOWHERE = "http://127.0.0.1:9"
FULL = ClientInfo(id="77", email="owner@example.com", first_name="Ada", country="DE", address="1 Main St",
                  city="Berlin", postcode="10115", phone="+49.3012345678")
BARE = ClientInfo(id="77", email="owner@example.com", first_name="Ada", country="DE")


def rc(**config) -> ResellerClubProvider:
    return ResellerClubProvider("rc", {"base_url": NOWHERE, "auth_userid": "1", "api_key": "k", **config})


def qbox(**config) -> QboxmailProvider:
    return QboxmailProvider("qb", {"base_url": NOWHERE, "api_token": "t", **config})


def test_resellerclub_names_what_a_customer_sign_up_lacks():
    assert rc().missing_client_fields(FULL) == []
    assert rc().missing_client_fields(BARE) == ["address", "city", "postcode", "phone"]
    nothing = ClientInfo(id="77")
    assert rc().missing_client_fields(nothing) == ["email", "address", "city", "postcode", "phone", "country"]


def test_resellerclub_customer_defaults_fill_gaps():
    defaults = {"address": "1 Reseller Way", "city": "Berlin", "postcode": "10115", "country": "DE",
                "phone_cc": "49", "phone": "3012345678"}
    assert rc(customer_defaults=defaults).missing_client_fields(BARE) == []
    # the e-mail is the customer's username: no default stands in for it
    assert rc(customer_defaults=defaults).missing_client_fields(ClientInfo(id="77")) == ["email"]


def test_intake_and_the_sign_up_agree():
    """What intake names missing is exactly what customer_details refuses."""
    with pytest.raises(ValidationError, match="address, city, postcode, phone number"):
        rc().customer_details(BARE)
    assert rc().customer_details(FULL)["zipcode"] == "10115"


def test_resellerclub_limits():
    assert rc().limit_problems({"mailboxes": 3, "region": "us", "email_product": "enterpriseemail"}) == {}
    only_us = rc(product_lines=["enterpriseemail/us"])
    assert set(only_us.limit_problems({"mailboxes": 3, "region": "in"})) == {"email_product"}
    assert set(rc().limit_problems({"mailboxes": 0})) == {"mailboxes"}
    assert ResellerClubProvider.fixed_limits == {"region", "email_product"}


def test_qboxmail_limits_and_passwords():
    assert QboxmailProvider.fixed_limits == {"qboxmail_product", "relay_type"}
    assert qbox().limit_problems({"qboxmail_product": "relay", "relay_type": "promotional"}) == {}
    assert set(qbox().limit_problems({"qboxmail_product": "relay", "relay_type": "bulk"})) == {"relay_type"}
    assert set(qbox().limit_problems({"qboxmail_product": "hosting", "mailbox_quota_gb": 0})) == {"mailbox_quota_gb"}
    assert set(qbox(product_kinds=["hosting"]).limit_problems({"qboxmail_product": "relay"})) == {"qboxmail_product"}
    assert qbox().password_problem("Long-enough-2026", {"qboxmail_product": "hosting"}) is None
    assert "at least 8" in qbox().password_problem("short1", {"qboxmail_product": "hosting"})
    assert "generated" in qbox().password_problem("Long-enough-2026", {"qboxmail_product": "relay"})


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_every_provider_declares_only_limits_it_knows(kind):
    cls = provider_class(kind)
    assert cls.fixed_limits <= cls.extra_limits | set(CORE_LIMITS)
