"""Contract: mailboxes, aliases and distribution lists under an account."""
from __future__ import annotations

import pytest

from provisioner.providers.base import Capability, MailboxSpec
from provisioner.providers.errors import Conflict, LimitExceeded, NotFound, NotSupported

PASSWORD = "Mailbox-Pass-123!"


@pytest.fixture
def account(upstream):
    # the target's default limits allow 2 mailboxes, 1 alias and 1 list
    return upstream.provider.create_account(upstream.spec())


def test_mailboxes_lifecycle_and_limit(upstream, account):
    upstream.require(Capability.MAILBOXES)
    p = upstream.provider
    first = p.create_mailbox(account.id, MailboxSpec(local_part="ada", password=PASSWORD, name="Ada"))
    assert first.id and first.address.startswith("ada@")
    p.create_mailbox(account.id, MailboxSpec(local_part="bob", password=PASSWORD))
    if upstream.provider.supports(Capability.LIMITS):     # else the provisioner enforces limits
        with pytest.raises(LimitExceeded) as info:
            p.create_mailbox(account.id, MailboxSpec(local_part="eve", password=PASSWORD))
        assert not info.value.retryable
    assert sorted(m.address.split("@")[0] for m in p.list_mailboxes(account.id)) == ["ada", "bob"]

    changed = p.update_mailbox(account.id, first.id, {"name": "Ada L.", "quota_gb": 5})
    assert changed.id == first.id and changed.name == "Ada L." and changed.quota_gb == 5
    p.update_mailbox(account.id, first.id, {"password": "Another-Pass-456!"})

    p.delete_mailbox(account.id, first.id)
    assert [m.address.split("@")[0] for m in p.list_mailboxes(account.id)] == ["bob"]
    state = upstream.sim.account(account.id)
    assert len(state["mailboxes"]) == 1
    assert PASSWORD not in str(upstream.sim.state())
    with pytest.raises(NotFound):
        p.delete_mailbox(account.id, first.id)


def test_mailbox_quota_above_the_limit(upstream, account):
    upstream.require(Capability.MAILBOXES)
    quota = upstream.target.limits.get("mailbox_quota_gb")
    if quota is None:
        pytest.skip(f"{upstream.kind} has no mailbox quota limit")
    with pytest.raises(LimitExceeded):
        upstream.provider.create_mailbox(
            account.id, MailboxSpec(local_part="big", password=PASSWORD, quota_gb=quota + 1))


def test_duplicate_mailbox_is_a_conflict(upstream, account):
    upstream.require(Capability.MAILBOXES)
    p = upstream.provider
    p.create_mailbox(account.id, MailboxSpec(local_part="ada", password=PASSWORD))
    with pytest.raises(Conflict):
        p.create_mailbox(account.id, MailboxSpec(local_part="ada", password=PASSWORD))


def test_aliases_lifecycle_and_limit(upstream, account):
    upstream.require(Capability.ALIASES)
    p = upstream.provider
    alias = p.create_alias(account.id, "info", "ada@elsewhere.example")
    assert alias.id and alias.address.startswith("info@") and alias.target == "ada@elsewhere.example"
    if upstream.provider.supports(Capability.LIMITS):
        with pytest.raises(LimitExceeded):
            p.create_alias(account.id, "sales", "ada@elsewhere.example")
    assert [a.id for a in p.list_aliases(account.id)] == [alias.id]
    p.delete_alias(account.id, alias.id)
    assert p.list_aliases(account.id) == []
    assert upstream.sim.account(account.id)["aliases"] == []


def test_lists_lifecycle_and_limit(upstream, account):
    upstream.require(Capability.LISTS)
    p = upstream.provider
    lst = p.create_list(account.id, "team", ["a@example.org", "b@example.org"])
    assert lst.id and lst.address.startswith("team@")
    assert sorted(lst.members) == ["a@example.org", "b@example.org"]
    if upstream.provider.supports(Capability.LIMITS):
        with pytest.raises(LimitExceeded):
            p.create_list(account.id, "board", ["a@example.org"])
    updated = p.update_list(account.id, lst.id, ["c@example.org"])
    assert updated.id == lst.id and updated.members == ["c@example.org"]
    assert [x.members for x in p.list_lists(account.id)] == [["c@example.org"]]
    p.delete_list(account.id, lst.id)
    assert p.list_lists(account.id) == []
    assert upstream.sim.account(account.id)["lists"] == []


def test_unsupported_objects_raise_not_supported(upstream, account):
    missing = [c for c in (Capability.MAILBOXES, Capability.ALIASES, Capability.LISTS)
               if not upstream.provider.supports(c)]
    if not missing:
        pytest.skip(f"{upstream.kind} supports every client-area object")
    calls = {Capability.MAILBOXES: lambda: upstream.provider.list_mailboxes(account.id),
             Capability.ALIASES: lambda: upstream.provider.list_aliases(account.id),
             Capability.LISTS: lambda: upstream.provider.list_lists(account.id)}
    for capability in missing:
        with pytest.raises(NotSupported):
            calls[capability]()
