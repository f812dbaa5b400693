"""A real Modoboa, driven through its REST API v2, and real IMAP logins through Dovecot.

These prove the real-instance machinery (tests/real/modoboa_instance.py) and pin down what
the real API answers, which the simulator must match. The same journeys driven by signed
hooks through the provisioner live in test_modoboa_hooks.py.
"""
from __future__ import annotations

import pytest

from tests.real.modoboa_api import Api, imap_append, imap_login, imap_quota, unique_domain

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
    assert domain["enabled"] is True and domain["mailbox_count"] == 0
    # The create answer's mailbox has no usage; reads have it.
    assert user["username"] == address and user["mailbox"]["quota"] == "50"
    assert "quota_usage" not in user["mailbox"]
    listed = api.get("/accounts/", domain=domain["pk"]).json()
    assert listed["count"] == 1 and listed["next"] is None
    assert [(a["username"], a["mailbox"]["quota_usage"]) for a in listed["results"]] == [(address, 0)]
    one = api.get(f"/accounts/{user['pk']}/").json()
    assert one["mailbox"]["quota_usage"] == 0
    read = api.get(f"/domains/{domain['pk']}/").json()
    assert read["mailbox_count"] == 1 and read["allocated_quota_in_percent"] == 10


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
    # A DELETE, on the domain or on its delete action, is refused and deletes nothing.
    for path in (f"/domains/{domain['pk']}/", f"/domains/{domain['pk']}/delete/"):
        refused = api.delete(path)
        assert (refused.status_code, refused.json()) == (400, {"name": ["This field is required."]})
    assert api.get(f"/domains/{domain['pk']}/").status_code == 200
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
    name = domain["name"]

    def answer(response):
        return response.status_code, response.json()

    assert answer(api.post("/domains/", {"name": name, "type": "domain", "quota": "10",
                                         "default_mailbox_quota": "1"})) == \
        (400, {"name": ["domain with this name already exists."]})
    assert answer(api.post("/accounts/", {"username": address, "role": "SimpleUsers", "password": PASSWORD})) == \
        (400, {"username": ["user with this username already exists."]})
    weak = api.post("/accounts/", {"username": f"weak@{name}", "role": "SimpleUsers", "password": "weakpassword"})
    assert weak.status_code == 400 and list(weak.json()) == ["password"], weak.text
    # Not a field error: a body of its own.
    assert answer(api.post("/accounts/", {"username": f"big@{name}", "role": "SimpleUsers", "password": PASSWORD,
                                          "mailbox": {"use_domain_quota": False, "quota": "5000"}})) == \
        (400, {"error": f"{name}: domain quota exceeded"})
    assert answer(api.post("/accounts/", {"username": "bob@no-such-domain.example.com", "role": "SimpleUsers",
                                          "password": PASSWORD})) == \
        (404, {"detail": "No Domain matches the given query."})
    assert api.get("/accounts/", domain=name).status_code == 400
    assert answer(api.post("/aliases/", {"address": f"sales@{name}", "recipients": [], "enabled": True})) == \
        (400, {"recipients": ["This list may not be empty."]})


def test_alias_created_and_deleted(api, account):
    domain, _, address = account
    created = api.post("/aliases/", {"address": f"sales@{domain['name']}", "recipients": [address],
                                     "enabled": True})
    assert created.status_code == 201, created.text
    assert created.json()["recipients"] == [address]
    pk = created.json()["pk"]
    # Aliases filter by the domain's name, accounts by its pk (each refuses the other with 400).
    listed = api.get("/aliases/", domain=domain["name"]).json()
    assert [a["address"] for a in listed["results"]] == [f"sales@{domain['name']}"]   # no mailbox's own alias
    assert api.get("/aliases/", domain=domain["pk"]).status_code == 400
    again = api.post("/aliases/", {"address": f"sales@{domain['name']}", "recipients": [address], "enabled": True})
    assert (again.status_code, again.json()) == (400, {"address": ["This alias already exists"]})
    assert api.delete(f"/aliases/{pk}/").status_code == 204
    assert api.delete(f"/aliases/{pk}/").status_code == 404


def test_mailbox_usage_and_quota_reach_modoboa(modoboa_real, api):
    """Dovecot enforces the mailbox's quota and writes usage where Modoboa reads it."""
    port = modoboa_real.imap_port
    domain = api.create_domain(unique_domain(), quota=10, default_mailbox_quota=1)
    address = f"dora@{domain['name']}"
    user = api.create_account(address, PASSWORD, quota=1)
    assert imap_quota(port, address, PASSWORD) == (0, 1024)
    assert imap_append(port, address, PASSWORD, 300_000) == "OK"
    used, limit = imap_quota(port, address, PASSWORD)
    assert limit == 1024 and 250 <= used <= 350, (used, limit)
    # quota_usage is a whole percentage of the mailbox's quota, not a size.
    assert api.get(f"/accounts/{user['pk']}/").json()["mailbox"]["quota_usage"] == used * 100 // 1024
    assert imap_append(port, address, PASSWORD, 900_000) == "NO"        # over the quota
    assert api.patch(f"/accounts/{user['pk']}/", {"mailbox": {"quota": "2"}}).status_code == 200
    assert imap_quota(port, address, PASSWORD) == (used, 2048)
    assert api.get(f"/accounts/{user['pk']}/").json()["mailbox"]["quota_usage"] == used * 100 // 2048
    assert imap_append(port, address, PASSWORD, 900_000) == "OK"
