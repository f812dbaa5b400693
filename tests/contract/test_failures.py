"""Contract: upstream failures become the right ProviderError, retryable or not."""
from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from provisioner.providers.errors import (
    AuthError,
    MalformedResponse,
    RateLimited,
    Unavailable,
)


def test_server_errors_are_unavailable_and_retryable(upstream):
    account = upstream.provider.create_account(upstream.spec())
    upstream.sim.faults(error_rate=1.0)
    with pytest.raises(Unavailable) as info:
        upstream.provider.get_account(account.id)
    assert info.value.retryable
    with pytest.raises(Unavailable):
        upstream.provider.create_account(upstream.spec())
    upstream.sim.clear_faults()
    assert len(upstream.sim.accounts(live=True)) == 1


def test_reads_are_retried_but_creates_are_not(upstream):
    read, create = upstream.target.read_action, upstream.target.create_action
    upstream.sim.faults(error_rate=1.0, only_actions=[read])
    with pytest.raises(Unavailable):
        upstream.provider.find_account(upstream.spec())
    assert upstream.sim.calls()[read] > 1              # a safe call was tried again
    # One fault at a time: a create may begin with the same look-up.
    upstream.sim.faults(only_actions=[create])
    with pytest.raises(Unavailable):
        upstream.provider.create_account(upstream.spec())
    assert upstream.sim.calls()[create] == 1           # an unsafe one was not


def test_bad_credentials_are_a_permanent_auth_error(upstream):
    provider = upstream.with_bad_credentials()
    with pytest.raises(AuthError) as info:
        provider.test_connection()
    assert not info.value.retryable
    with pytest.raises(AuthError):
        provider.create_account(upstream.spec())
    assert upstream.sim.accounts() == []


def test_credentials_and_passwords_stay_out_of_logs_and_errors(upstream, caplog):
    caplog.set_level(logging.DEBUG, logger="provisioner.upstream")
    upstream.provider.create_account(replace(upstream.spec(), password="Acct-Pass-918!"))
    with pytest.raises(AuthError) as info:
        upstream.with_bad_credentials().test_connection()
    err = info.value
    assert err.safe_message == AuthError.safe_message
    shown = "\n".join([caplog.text, err.message, err.body or ""])
    assert "create_account" in caplog.text
    for secret in ("Acct-Pass-918!", *upstream.target.secrets):
        assert secret not in shown


def test_malformed_answers_are_retryable(upstream):
    account = upstream.provider.create_account(upstream.spec())
    upstream.sim.faults(malformed_rate=1.0)
    with pytest.raises(MalformedResponse) as info:
        upstream.provider.get_account(account.id)
    assert info.value.retryable


def test_rate_limits_are_rate_limited_with_retry_after(upstream):
    upstream.sim.faults(rate_limit_per_s=1, only_actions=[upstream.target.create_action])
    upstream.provider.create_account(upstream.spec())
    with pytest.raises(RateLimited) as info:
        upstream.provider.create_account(upstream.spec())
    assert info.value.retryable and info.value.retry_after and info.value.retry_after >= 1
    upstream.sim.clear_faults()
    assert len(upstream.sim.accounts(live=True)) == 1
