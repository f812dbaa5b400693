"""Contract: the account lifecycle, one upstream account per billing service."""
from __future__ import annotations

import datetime as dt
import math

import pytest

from provisioner.providers.base import AccountStatus, Capability
from provisioner.providers.errors import NotFound, Unavailable


def test_connection(upstream):
    upstream.provider.test_connection()


def test_create_makes_exactly_one_account(upstream):
    spec = upstream.spec()
    account = upstream.provider.create_account(spec)
    live = upstream.sim.accounts(live=True)
    assert [a["id"] for a in live] == [account.id]
    assert live[0]["domain"] == spec.domain == account.domain
    assert account.status in (AccountStatus.ACTIVE, AccountStatus.PENDING)
    assert upstream.provider.get_account(account.id).id == account.id


def test_find_account_finds_the_created_one(upstream):
    spec = upstream.spec()
    assert upstream.provider.find_account(spec) is None
    account = upstream.provider.create_account(spec)
    upstream.provider.create_account(upstream.spec())          # someone else's service
    found = upstream.provider.find_account(spec)
    assert found is not None and found.id == account.id


def test_second_create_adopts_the_existing_account(upstream):
    spec = upstream.spec()
    first = upstream.provider.create_account(spec)
    again = upstream.provider.create_account(spec)
    assert again.id == first.id
    assert len(upstream.sim.accounts(live=True)) == 1


def test_create_retried_after_a_lost_answer_adopts(upstream):
    # The upstream does the work but answers too late: the client gives up.
    spec = upstream.spec()
    # Only the create itself: upstreams that log in or look up first must get that far.
    upstream.sim.faults(timeout_rate=1.0, timeout_s=1.0, only_actions=[upstream.target.create_action])
    with pytest.raises(Unavailable) as info:
        upstream.with_timeout(0.3).create_account(spec)
    assert info.value.retryable
    upstream.sim.clear_faults()
    assert len(upstream.sim.accounts(live=True)) == 1       # it was applied
    account = upstream.provider.create_account(spec)
    live = upstream.sim.accounts(live=True)
    assert [a["id"] for a in live] == [account.id]


def test_suspend_is_idempotent_and_unsuspend_restores(upstream):
    upstream.require(Capability.SUSPEND)
    p = upstream.provider
    account = p.create_account(upstream.spec())
    p.suspend_account(account.id, "Overdue on Payment")
    assert upstream.sim.account(account.id)["status"] == "suspended"
    assert p.get_account(account.id).status is AccountStatus.SUSPENDED
    p.suspend_account(account.id, "Overdue on Payment")            # a no-op, not an error
    assert upstream.sim.account(account.id)["status"] == "suspended"
    p.unsuspend_account(account.id)
    assert upstream.sim.account(account.id)["status"] == "active"
    p.unsuspend_account(account.id)
    assert p.get_account(account.id).status is AccountStatus.ACTIVE


def test_drift_behind_our_back_is_visible(upstream):
    account = upstream.provider.create_account(upstream.spec())
    upstream.sim.mutate(account.id, status="suspended")
    assert upstream.provider.get_account(account.id).status is AccountStatus.SUSPENDED


def test_limits_change(upstream):
    upstream.require(Capability.LIMITS)
    account = upstream.provider.create_account(upstream.spec(mailboxes=2))
    upstream.provider.set_limits(account.id, {**upstream.target.limits, "mailboxes": 7})
    assert upstream.sim.account(account.id)["limits"]["mailboxes"] == 7
    assert upstream.provider.get_account(account.id).limits["mailboxes"] == 7


def test_password_change(upstream):
    upstream.require(Capability.PASSWORD)
    account = upstream.provider.create_account(upstream.spec())
    before = upstream.sim.total_calls()
    upstream.provider.set_password(account.id, "N3w-Secret-Pass!")
    assert upstream.sim.total_calls() > before
    assert "N3w-Secret-Pass!" not in str(upstream.sim.state())     # never stored in clear


def test_renew_never_moves_backwards(upstream):
    upstream.require(Capability.TERMS)
    p = upstream.provider
    account = p.create_account(upstream.spec())
    p.renew(account.id, dt.date(2027, 12, 21))
    assert p.get_account(account.id).paid_until == dt.date(2027, 12, 21)
    p.renew(account.id, dt.date(2027, 1, 1))
    assert p.get_account(account.id).paid_until == dt.date(2027, 12, 21)


def test_delete_and_find_ignores_deleted(upstream):
    p = upstream.provider
    spec = upstream.spec()
    account = p.create_account(spec)
    p.delete_account(account.id)
    assert upstream.sim.accounts(live=True) == []
    assert p.find_account(spec) is None
    try:
        assert p.get_account(account.id).status is AccountStatus.DELETED
    except NotFound:
        pass                          # upstreams that forget deleted objects
    p.delete_account(account.id)      # deleting twice is not an error: the goal holds
    fresh = p.create_account(spec)    # the service may be ordered again
    if not upstream.target.reuses_ids:
        assert fresh.id != account.id
    assert [a["id"] for a in upstream.sim.accounts(live=True)] == [fresh.id]


def test_get_unknown_account_is_not_found(upstream):
    with pytest.raises(NotFound) as info:
        upstream.provider.get_account("acc_9999")
    assert not info.value.retryable


def test_list_accounts_pages_through_everything(upstream):
    upstream.require(Capability.BULK_LIST)
    p = upstream.provider
    created = {p.create_account(upstream.spec()).id for _ in range(23)}
    per_page = 10
    before = upstream.sim.total_calls()
    seen: list[str] = []
    page = 1
    while True:
        result = p.list_accounts(page=page, per_page=per_page)
        assert len(result.items) <= per_page
        seen.extend(a.id for a in result.items)
        if not result.has_more:
            break
        page += 1
    pages = math.ceil(len(created) / per_page)
    assert sorted(seen) == sorted(created)
    assert result.total == len(created)
    assert pages <= upstream.sim.total_calls() - before <= pages + 1
