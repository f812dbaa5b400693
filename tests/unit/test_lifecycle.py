"""Desired-state transitions and the converge step, with an in-memory provider."""
from __future__ import annotations

import datetime as dt
import itertools

import pytest

from provisioner import events as ev
from provisioner.lifecycle import apply_event, converge, record_observation
from provisioner.models import Service
from provisioner.products import LimitSpec, Product
from provisioner.providers.base import (AccountSpec, AccountStatus, Capability, Provider, UpstreamAccount)
from provisioner.providers.errors import Conflict, NotFound, Unavailable
from provisioner.secrets import SecretBox, new_fernet_key


class FakeProvider(Provider):
    """Keeps accounts in a dict and records every call."""
    kind = "fake"
    capabilities = frozenset({Capability.SUSPEND, Capability.LIMITS, Capability.PASSWORD, Capability.TERMS})

    def __init__(self, activate_after_reads: int = 0):
        super().__init__("fake", {})
        self.accounts: dict[str, UpstreamAccount] = {}
        self.calls: list[str] = []
        self.passwords: dict[str, str] = {}
        self.fail_next: dict[str, Exception] = {}
        self.lose_answer: set[str] = set()   # applied upstream, answer lost (a timeout)
        self._ids = itertools.count(1)
        self.activate_after_reads = activate_after_reads

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail_next:
            raise self.fail_next.pop(name)

    def find_account(self, spec: AccountSpec):
        self._call("find")
        for account in self.accounts.values():
            if account.external_id == spec.service_id and account.status != AccountStatus.DELETED:
                return self._read(account)
        return None

    def _read(self, account):
        if account.status == AccountStatus.PENDING:
            self.activate_after_reads -= 1
            if self.activate_after_reads < 0:
                account.status = AccountStatus.ACTIVE
        return UpstreamAccount(account.id, account.domain, account.status, dict(account.limits),
                               paid_until=account.paid_until, external_id=account.external_id)

    def get_account(self, account_id):
        self._call("get")
        if account_id not in self.accounts:
            raise NotFound()
        return self._read(self.accounts[account_id])

    def create_account(self, spec):
        self._call("create")
        account = UpstreamAccount(f"a{next(self._ids)}", spec.domain,
                                  AccountStatus.PENDING if self.activate_after_reads else AccountStatus.ACTIVE,
                                  dict(spec.limits), paid_until=spec.paid_until, external_id=spec.service_id)
        self.accounts[account.id] = account
        if spec.password:
            self.passwords[account.id] = spec.password
        if "create" in self.lose_answer:
            self.lose_answer.discard("create")
            raise Unavailable("read timed out")
        return UpstreamAccount(account.id, account.domain, account.status, dict(account.limits),
                               paid_until=account.paid_until, external_id=spec.service_id)

    def delete_account(self, account_id):
        self._call("delete")
        self.accounts[account_id].status = AccountStatus.DELETED

    def suspend_account(self, account_id, reason):
        self._call("suspend")
        self.accounts[account_id].status = AccountStatus.SUSPENDED

    def unsuspend_account(self, account_id):
        self._call("unsuspend")
        self.accounts[account_id].status = AccountStatus.ACTIVE

    def set_limits(self, account_id, limits):
        self._call("set_limits")
        self.accounts[account_id].limits.update(limits)

    def set_password(self, account_id, password):
        self._call("set_password")
        self.passwords[account_id] = password

    def renew(self, account_id, until):
        self._call("renew")
        self.accounts[account_id].paid_until = until
        return until


PRODUCT = Product(id="p", billing_product_ids=["12"], upstream="fake",
                  limits={"mailboxes": LimitSpec("mailboxes", option="Total Mailboxes", default=1, min=0, max=50)})
NOW = dt.datetime(2026, 11, 21, 10, tzinfo=dt.timezone.utc)


@pytest.fixture
def box():
    return SecretBox(new_fernet_key())


def event(kind, **service):
    body = {"id": "1042", "product_id": "12", "domain": "example.com", "config_options": {},
            "next_due_date": dt.date(2026, 12, 21), **service}
    return {"type": kind, "occurred_at": NOW, "service": body,
            "client": {"id": "77", "email": "a@example.com", "first_name": "A", "last_name": "B",
                       "company": "", "country": "DE"}}


def step(provider, service, box):
    """One converge followed by writing the observation, as a job does."""
    result = converge(provider, service, box)
    record_observation(service, result, NOW)
    return result.actions


def test_create_then_converging_again_changes_nothing(box):
    provider = FakeProvider()
    service = apply_event(None, event(ev.CREATE), PRODUCT, {"mailboxes": 5}, box)
    assert step(provider, service, box) == ["create"]
    assert service.upstream_id == "a1" and service.observed_status == "active"
    provider.calls.clear()
    assert step(provider, service, box) == []
    assert provider.calls == ["get"]


def test_a_create_adopts_an_account_that_already_exists(box):
    provider = FakeProvider()
    service = apply_event(None, event(ev.CREATE), PRODUCT, {"mailboxes": 5}, box)
    provider.create_account(AccountSpec("1042", "example.com", None, {"mailboxes": 5},
                                        paid_until=dt.date(2026, 12, 21)))  # an earlier, lost attempt
    assert step(provider, service, box) == ["adopt"]
    assert len(provider.accounts) == 1 and service.upstream_id == "a1"


def test_create_lost_after_upstream_applied_it_is_not_ordered_twice(box):
    provider = FakeProvider()
    service = apply_event(None, event(ev.CREATE), PRODUCT, {"mailboxes": 5}, box)
    provider.lose_answer.add("create")
    with pytest.raises(Unavailable):
        converge(provider, service, box)
    assert step(provider, service, box) == ["adopt"]
    assert len(provider.accounts) == 1


def test_suspend_unsuspend_and_limits_are_idempotent_by_state(box):
    provider = FakeProvider()
    service = apply_event(None, event(ev.CREATE), PRODUCT, {"mailboxes": 5}, box)
    step(provider, service, box)
    apply_event(service, event(ev.SUSPEND, suspend_reason="Overdue on Payment"), None, None, box)
    assert service.suspend_reason == "Overdue on Payment"
    assert step(provider, service, box) == ["suspend"]
    assert step(provider, service, box) == []
    apply_event(service, event(ev.CHANGE_PACKAGE), PRODUCT, {"mailboxes": 9}, box)
    assert step(provider, service, box) == ["set_limits"]
    apply_event(service, event(ev.UNSUSPEND), None, None, box)
    assert step(provider, service, box) == ["unsuspend"]
    assert provider.accounts["a1"].limits == {"mailboxes": 9}


def test_password_is_applied_once_and_erased(box):
    provider = FakeProvider()
    service = apply_event(None, event(ev.CREATE, password="first-Pw-1"), PRODUCT, {"mailboxes": 1}, box)
    assert service.pending_password and "first-Pw-1" not in service.pending_password
    step(provider, service, box)
    assert provider.passwords["a1"] == "first-Pw-1" and service.pending_password is None
    apply_event(service, event(ev.CHANGE_PASSWORD, password="second-Pw-2"), None, None, box)
    assert step(provider, service, box) == ["set_password"]
    assert provider.passwords["a1"] == "second-Pw-2" and service.pending_password is None


def test_a_newer_password_arriving_mid_converge_stays_pending(box):
    provider = FakeProvider()
    service = apply_event(None, event(ev.CREATE, password="first-Pw-1"), PRODUCT, {"mailboxes": 1}, box)
    result = converge(provider, service, box)
    service.pending_password = box.encrypt("newer-Pw-3")  # an event applied meanwhile
    record_observation(service, result, NOW)
    assert box.decrypt(service.pending_password) == "newer-Pw-3"


def test_renew_extends_the_upstream_term_to_the_paid_date(box):
    provider = FakeProvider()
    service = apply_event(None, event(ev.CREATE, next_due_date=dt.date(2026, 12, 21)), PRODUCT, {"mailboxes": 1}, box)
    step(provider, service, box)
    apply_event(service, event(ev.RENEW, next_due_date=dt.date(2027, 1, 21)), None, None, box)
    assert step(provider, service, box) == ["renew"]
    assert provider.accounts["a1"].paid_until == dt.date(2027, 1, 21)


def test_terminate_deletes_and_a_new_create_starts_afresh(box):
    provider = FakeProvider()
    service = apply_event(None, event(ev.CREATE), PRODUCT, {"mailboxes": 1}, box)
    step(provider, service, box)
    apply_event(service, event(ev.TERMINATE), None, None, box)
    assert step(provider, service, box) == ["delete"]
    assert service.observed_status == "deleted"
    assert step(provider, service, box) == []
    apply_event(service, event(ev.CREATE, domain="example.com"), PRODUCT, {"mailboxes": 1}, box)
    assert service.desired_status == "active" and service.upstream_id is None
    assert step(provider, service, box) == ["create"]
    assert sorted(a.status.value for a in provider.accounts.values()) == ["active", "deleted"]


def test_a_create_for_a_live_service_keeps_its_status(box):
    service = apply_event(None, event(ev.CREATE), PRODUCT, {"mailboxes": 1}, box)
    service.upstream_id = "a1"
    apply_event(service, event(ev.SUSPEND), None, None, box)
    apply_event(service, event(ev.CREATE), PRODUCT, {"mailboxes": 2}, box)
    assert service.desired_status == "suspended" and service.limits == {"mailboxes": 2}


def test_pending_activation_stops_after_create(box):
    provider = FakeProvider(activate_after_reads=1)
    service = apply_event(None, event(ev.CREATE), PRODUCT, {"mailboxes": 1}, box)
    result = converge(provider, service, box)
    assert result.pending and result.actions == ["create"]
    record_observation(service, result, NOW)
    assert service.observed_status == "pending"
    result = converge(provider, service, box)  # first read: still pending
    assert result.pending
    result = converge(provider, service, box)
    assert not result.pending


def test_service_row_defaults(box):
    service = apply_event(None, event(ev.CREATE), PRODUCT, {"mailboxes": 1}, box)
    assert isinstance(service, Service)
    assert service.client_id == "77" and service.product_key == "p" and service.upstream == "fake"
    assert service.next_due_date == dt.date(2026, 12, 21)


def test_a_stored_id_reused_upstream_for_another_service_is_not_adopted(box):
    provider = FakeProvider()
    service = apply_event(None, event(ev.CREATE), PRODUCT, {"mailboxes": 1}, box)
    step(provider, service, box)
    provider.accounts.clear()                       # the upstream lost everything...
    other = AccountSpec("2000", "other.example", None, {"mailboxes": 1}, paid_until=dt.date(2026, 12, 21))
    provider._ids = itertools.count(1)
    provider.create_account(other)                  # ...and gave our old id to someone else
    assert step(provider, service, box) == ["create"]
    assert service.upstream_id == "a2" and provider.accounts["a1"].external_id == "2000"


def test_the_default_alias_update_restores_the_old_alias_when_the_re_add_fails():
    from provisioner.providers.base import Alias

    class Aliases(Provider):
        kind = "aliases"

        def __init__(self):
            super().__init__("a", {})
            self.aliases = {"1": Alias("1", "info@x.example", "old@y.example")}
            self.fail_target = None

        def list_aliases(self, account_id):
            return list(self.aliases.values())

        def delete_alias(self, account_id, alias_id):
            del self.aliases[alias_id]

        def create_alias(self, account_id, local_part, target):
            if target == self.fail_target:
                raise Unavailable("boom")
            alias = Alias(str(len(self.aliases) + 10), f"{local_part}@x.example", target)
            self.aliases[alias.id] = alias
            return alias

    provider = Aliases()
    provider.fail_target = "new@y.example"
    with pytest.raises(Unavailable):
        provider.update_alias("acc", "1", "new@y.example")
    assert [a.target for a in provider.aliases.values()] == ["old@y.example"]
    provider.fail_target = None
    changed = provider.update_alias("acc", next(iter(provider.aliases)), "new@y.example")
    assert changed.address == "info@x.example" and changed.target == "new@y.example"


def test_a_create_for_a_live_service_does_not_push_the_billing_password_again(box):
    provider = FakeProvider()
    service = apply_event(None, event(ev.CREATE, password="first-Pw-1"), PRODUCT, {"mailboxes": 1}, box)
    step(provider, service, box)
    apply_event(service, event(ev.CREATE, password="resent-Pw-2"), PRODUCT, {"mailboxes": 1}, box)
    assert service.pending_password is None
    assert step(provider, service, box) == [] and provider.passwords["a1"] == "first-Pw-1"


class OnePerDomain(FakeProvider):
    """An upstream with one order per domain, found and re-used by domain (ResellerClub-like)."""

    def find_account(self, spec):
        self._call("find")
        for account in self.accounts.values():
            if account.domain == spec.domain and account.status != AccountStatus.DELETED:
                return self._read(account)
        return None

    def create_account(self, spec):
        existing = self.find_account(spec)
        return existing if existing is not None else super().create_account(spec)


def test_an_account_another_service_holds_is_never_adopted_changed_or_deleted(box):
    """Two services (here of two billing sources) with one domain on an upstream keyed by domain."""
    provider = OnePerDomain()
    first = apply_event(None, event(ev.CREATE, domain="shared.example"), PRODUCT, {"mailboxes": 5}, box)
    step(provider, first, box)
    held = {first.upstream_id}
    second = apply_event(None, event(ev.CREATE, domain="shared.example"), PRODUCT, {"mailboxes": 1}, box,
                         key="brand-b:1042", source="brand-b")
    assert (second.id, second.source, second.billing_id) == ("brand-b:1042", "brand-b", "1042")
    with pytest.raises(Conflict) as caught:
        converge(provider, second, box, is_taken=lambda account_id: account_id in held)
    assert caught.value.safe_message == "This domain is already set up on the e-mail platform for another service."
    assert provider.accounts[first.upstream_id].limits == {"mailboxes": 5}   # untouched
    apply_event(second, event(ev.TERMINATE, domain="shared.example"), None, None, box)
    result = converge(provider, second, box, is_taken=lambda account_id: account_id in held)
    assert result.actions == [] and result.account is None
    assert provider.accounts[first.upstream_id].status == AccountStatus.ACTIVE  # not deleted for the other


def test_a_renewal_lifts_an_overdue_suspension_only_where_the_provisioner_owns_the_lifecycle(box):
    for authority, expected in (("provisioner", "active"), ("billing", "suspended")):
        service = apply_event(None, event(ev.CREATE), PRODUCT, {"mailboxes": 5}, box, authority=authority)
        apply_event(service, event(ev.SUSPEND, suspend_reason="Overdue on Payment"), None, None, box,
                    authority=authority)
        apply_event(service, event(ev.RENEW), None, None, box, authority=authority)
        assert service.desired_status == expected, authority
