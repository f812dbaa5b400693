"""The converge step itself against every provider: the lifecycle a billing system drives.

Each scenario moves a service's desired state with ``apply_event`` and runs
``converge`` twice: the first run makes the upstream match, the second must
find nothing left to do (idempotent by state).
"""
from __future__ import annotations

import datetime as dt

import pytest

from provisioner import events as ev
from provisioner.lifecycle import apply_event, converge, record_observation
from provisioner.products import LimitSpec, Product
from provisioner.providers.base import Capability
from provisioner.secrets import SecretBox, new_fernet_key

NOW = dt.datetime(2026, 11, 21, 10, tzinfo=dt.timezone.utc)


@pytest.fixture
def box():
    return SecretBox(new_fernet_key())


def _event(kind: str, domain: str, **service) -> dict:
    return {"type": kind, "occurred_at": NOW,
            "service": {"id": "9001", "product_id": "1", "domain": domain, "config_options": {},
                        "billing_cycle": "monthly", "next_due_date": dt.date(2026, 12, 21), **service},
            "client": {"id": "77", "email": "owner@example.net", "first_name": "Ada", "last_name": "Lovelace",
                       "company": "Example Ltd", "country": "DE", "address": "1 Main St", "city": "Berlin",
                       "state": "Berlin", "postcode": "10115", "phone": "+49.3012345678"}}


def _product(upstream) -> Product:
    return Product(id="contract", billing_product_ids=["1"], upstream=upstream.kind,
                   limits={name: LimitSpec(name, value=value) for name, value in upstream.target.limits.items()})


def _converge_twice(upstream, service, box) -> list[str]:
    result = converge(upstream.provider, service, box)
    record_observation(service, result, NOW)
    again = converge(upstream.provider, service, box)
    record_observation(service, again, NOW)
    assert again.actions == [], f"second converge should change nothing, did {again.actions}"
    return result.actions


def _live(upstream) -> list[dict]:
    return upstream.sim.accounts(live=True)


def test_full_lifecycle_converges_and_is_idempotent(upstream, box):
    product = _product(upstream)
    domain = upstream.spec().domain
    limits = dict(upstream.target.limits)
    service = apply_event(None, _event(ev.CREATE, domain), product, limits, box)

    assert _converge_twice(upstream, service, box) == ["create"]
    [account] = _live(upstream)
    assert account["id"] == service.upstream_id and account["domain"] == domain
    assert account["status"] == "active" and service.observed_status == "active"

    if upstream.provider.supports(Capability.SUSPEND):
        apply_event(service, _event(ev.SUSPEND, domain, suspend_reason="Overdue on Payment"), None, None, box)
        assert _converge_twice(upstream, service, box) == ["suspend"]
        assert upstream.sim.account(service.upstream_id)["status"] == "suspended"
        apply_event(service, _event(ev.UNSUSPEND, domain), None, None, box)
        assert _converge_twice(upstream, service, box) == ["unsuspend"]
        assert upstream.sim.account(service.upstream_id)["status"] == "active"

    if upstream.provider.supports(Capability.LIMITS):
        for mailboxes in (limits["mailboxes"] + 2, limits["mailboxes"] + 1):  # up, then down
            apply_event(service, _event(ev.CHANGE_PACKAGE, domain), product, {**limits, "mailboxes": mailboxes}, box)
            assert _converge_twice(upstream, service, box) == ["set_limits"]
            assert upstream.sim.account(service.upstream_id)["limits"]["mailboxes"] == mailboxes

    if upstream.provider.supports(Capability.TERMS):
        apply_event(service, _event(ev.RENEW, domain, next_due_date=dt.date(2027, 6, 21)), None, None, box)
        assert _converge_twice(upstream, service, box) == ["renew"]
        assert service.observed["paid_until"] >= "2027-06-21"

    apply_event(service, _event(ev.TERMINATE, domain), None, None, box)
    assert _converge_twice(upstream, service, box) == ["delete"]
    assert _live(upstream) == []
    assert service.observed_status == "deleted"


def test_a_second_service_record_for_the_same_billing_service_adopts(upstream, box):
    product = _product(upstream)
    domain = upstream.spec().domain
    first = apply_event(None, _event(ev.CREATE, domain), product, dict(upstream.target.limits), box)
    _converge_twice(upstream, first, box)
    # The provisioner lost its record (a restore from backup): the look-up adopts.
    second = apply_event(None, _event(ev.CREATE, domain), product, dict(upstream.target.limits), box)
    assert _converge_twice(upstream, second, box) == ["adopt"]
    assert second.upstream_id == first.upstream_id
    assert len(_live(upstream)) == 1


def test_drift_made_upstream_is_repaired(upstream, box):
    upstream.require(Capability.SUSPEND)
    product = _product(upstream)
    domain = upstream.spec().domain
    service = apply_event(None, _event(ev.CREATE, domain), product, dict(upstream.target.limits), box)
    _converge_twice(upstream, service, box)
    upstream.sim.mutate(service.upstream_id, status="suspended")
    assert _converge_twice(upstream, service, box) == ["unsuspend"]
    assert upstream.sim.account(service.upstream_id)["status"] == "active"


def test_dns_records_are_kept_for_the_client_area(upstream, box):
    upstream.require(Capability.DNS)
    product = _product(upstream)
    service = apply_event(None, _event(ev.CREATE, upstream.spec().domain), product,
                          dict(upstream.target.limits), box)
    _converge_twice(upstream, service, box)
    records = service.observed["dns_records"]
    assert records and all(r["type"] and r["host"] and r["value"] for r in records)
