"""A real Modoboa, driven through its REST API v2, and real IMAP logins through Dovecot.

These prove the real-instance machinery (tests/real/modoboa_instance.py) and pin down what
the real API answers, which the simulator must match. The same journeys driven by signed
hooks through the provisioner live in test_modoboa_hooks.py.
"""
from __future__ import annotations

import pytest

from tests.real.modoboa_api import Api, imap_login, unique_domain

pytestmark = [pytest.mark.real, pytest.mark.e2e]

PASSWORD = "Real-Mailbox-Pw-42"
OTHER_PASSWORD = "Other-Mailbox-Pw-43"


@pytest.fixture
def api(modoboa_real) -> Api:
    return Api(modoboa_real.url, modoboa_real.http)


@pytest.fixture
def account(api):
    """A domain (quota 500 MB, 100 MB per mailbox by default) with one account (50 MB)."""
    domain = api.create_domain(unique_domain())
    address = f"alice@{domain['name']}"
    user = api.create_account(address, PASSWORD)
    return domain, user, address


def test_domain_and_account_as_created(api, account):
    domain, user, address = account
    assert domain["quota"] == "500" and domain["default_mailbox_quota"] == "100"
    assert domain["enabled"] is True
    assert user["username"] == address and user["mailbox"]["quota"] == "50"
    listed = api.get("/accounts/", domain=domain["pk"]).json()
    assert [a["username"] for a in listed] == [address] if isinstance(listed, list) else \
        [a["username"] for a in listed["results"]] == [address]


def test_login_with_the_right_password_only(modoboa_real, account):
    _, _, address = account
    assert imap_login(modoboa_real.imap_port, address, PASSWORD)
    assert not imap_login(modoboa_real.imap_port, address, "Wrong-Password-1")
    assert not imap_login(modoboa_real.imap_port, f"nobody@{address.split('@')[1]}", PASSWORD)


def test_disabled_domain_refuses_login_until_enabled(modoboa_real, api, account):
    domain, _, address = account
    answer = api.patch(f"/domains/{domain['pk']}/", {"enabled": False})
    assert answer.status_code == 200, answer.text
    assert answer.json()["enabled"] is False
    assert not imap_login(modoboa_real.imap_port, address, PASSWORD)
    assert api.patch(f"/domains/{domain['pk']}/", {"enabled": True}).status_code == 200
    assert imap_login(modoboa_real.imap_port, address, PASSWORD)


def test_disabled_account_refuses_login_until_enabled(modoboa_real, api, account):
    _, user, address = account
    assert api.patch(f"/accounts/{user['pk']}/", {"is_active": False}).status_code == 200
    assert not imap_login(modoboa_real.imap_port, address, PASSWORD)
    assert api.patch(f"/accounts/{user['pk']}/", {"is_active": True}).status_code == 200
    assert imap_login(modoboa_real.imap_port, address, PASSWORD)


def test_changed_password_is_the_only_one(modoboa_real, api, account):
    _, user, address = account
    answer = api.patch(f"/accounts/{user['pk']}/", {"password": OTHER_PASSWORD})
    assert answer.status_code == 200, answer.text
    assert imap_login(modoboa_real.imap_port, address, OTHER_PASSWORD)
    assert not imap_login(modoboa_real.imap_port, address, PASSWORD)


def test_deleted_domain_refuses_login_and_takes_its_accounts(modoboa_real, api, account):
    domain, user, address = account
    # DELETE on the delete action is not how Modoboa deletes a domain.
    assert api.delete(f"/domains/{domain['pk']}/delete/").status_code == 400
    answer = api.post(f"/domains/{domain['pk']}/delete/", {"keep_folder": False})
    assert answer.status_code == 204, answer.text
    assert not imap_login(modoboa_real.imap_port, address, PASSWORD)
    assert api.get(f"/domains/{domain['pk']}/").status_code == 404
    # auto_account_removal (set by the fixture) removes the domain's accounts with it.
    assert api.get(f"/accounts/{user['pk']}/").status_code == 404


def test_quota_change_is_stored(api, account):
    domain, user, _ = account
    answer = api.patch(f"/domains/{domain['pk']}/", {"quota": "800"})
    assert answer.status_code == 200, answer.text
    assert api.get(f"/domains/{domain['pk']}/").json()["quota"] == "800"
    assert api.patch(f"/accounts/{user['pk']}/", {"mailbox": {"quota": "80"}}).status_code == 200
    assert api.get(f"/accounts/{user['pk']}/").json()["mailbox"]["quota"] == "80"


def test_error_shapes(api, account):
    domain, _, address = account
    duplicate = api.post("/domains/", {"name": domain["name"], "type": "domain", "quota": "10",
                                       "default_mailbox_quota": "1"})
    assert duplicate.status_code == 400 and list(duplicate.json()) == ["name"], duplicate.text
    again = api.post("/accounts/", {"username": address, "role": "SimpleUsers", "password": PASSWORD})
    assert again.status_code == 400 and "username" in again.json(), again.text
    weak = api.post("/accounts/", {"username": f"weak@{domain['name']}", "role": "SimpleUsers",
                                   "password": "weak"})
    assert weak.status_code == 400 and "password" in weak.json(), weak.text
    too_big = api.post("/accounts/", {"username": f"big@{domain['name']}", "role": "SimpleUsers",
                                      "password": PASSWORD, "mailbox": {"use_domain_quota": False,
                                                                        "quota": "5000"}})
    assert too_big.status_code == 400 and "error" in too_big.json(), too_big.text
    unknown = api.post("/accounts/", {"username": "bob@no-such-domain.example.com", "role": "SimpleUsers",
                                      "password": PASSWORD})
    assert unknown.status_code == 404, unknown.text
    assert api.get("/accounts/", domain=domain["name"]).status_code == 400
