"""Secrets an upstream shows only once: revealed to whoever asked, once, never stored in clear."""
from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from provisioner import jobs
from provisioner.models import Job
from provisioner.providers.errors import Unavailable
from provisioner.providers.sandbox import SandboxProvider
from tests.helpers import event_body, table_dump

RELAY_PASSWORD = "Relay-Once-7c1f-9b2e"


class OneTimeSecretProvider(SandboxProvider):
    """The sandbox, answering a create the way Qboxmail answers a relay account."""

    def create_account(self, spec):
        account = super().create_account(spec)
        account.one_time_secrets = {"relay_password": RELAY_PASSWORD}
        return account


@pytest.fixture
def provider(runtime):
    runtime._providers["sandbox"] = OneTimeSecretProvider("sandbox", runtime.catalog.upstream_config("sandbox"))
    return runtime._providers["sandbox"]


def _send(client, signer, raw, msg_id):
    return client.post("/hooks/v1/events", data=raw, headers=signer.headers(raw, msg_id=msg_id)).get_json()


def test_the_first_answer_reporting_the_finished_job_shows_the_secret_once(
        client, signer, worker, provider, database_url):
    raw = json.dumps(event_body("service.create"))
    first = _send(client, signer, raw, "msg_relay")
    assert first["job"]["state"] == "queued" and "secrets" not in first["job"]
    worker.drain()
    assert RELAY_PASSWORD not in table_dump(database_url)  # kept encrypted only

    again = _send(client, signer, raw, "msg_relay")  # the billing system asks again
    assert again["job"]["state"] == "succeeded"
    assert again["job"]["secrets"] == {"relay_password": RELAY_PASSWORD}
    assert "secrets" not in _send(client, signer, raw, "msg_relay")["job"]
    assert RELAY_PASSWORD not in table_dump(database_url)
    with client.application.extensions["provisioner"].db.read() as s:
        assert s.get(Job, first["job"]["id"]).reveal_once is None


def test_the_admin_job_detail_can_be_the_one_answer(client, signer, worker, provider, runtime):
    from provisioner.apikeys import create_api_key
    with runtime.db.transaction() as s:
        _, key = create_api_key(s, "t", "admin")
    job_id = signer.post(client, event_body("service.create")).get_json()["job"]["id"]
    worker.drain()
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()["secrets"] == {
        "relay_password": RELAY_PASSWORD}
    assert "secrets" not in client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()


def test_a_read_key_cannot_use_up_a_one_time_secret(client, signer, worker, provider, runtime):
    from provisioner.apikeys import create_api_key
    with runtime.db.transaction() as s:
        _, reader = create_api_key(s, "reader", "read")
        _, admin = create_api_key(s, "admin", "admin")
    job_id = signer.post(client, event_body("service.create")).get_json()["job"]["id"]
    worker.drain()
    seen = client.get(f"/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {reader}"})
    assert seen.status_code == 200
    assert "secrets" not in seen.get_json() and "admin scope" in seen.get_json()["secrets_withheld"]
    # Still there for the key that may take it.
    kept = client.get(f"/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {admin}"}).get_json()
    assert kept["secrets"] == {"relay_password": RELAY_PASSWORD} and "secrets_withheld" not in kept
    gone = client.get(f"/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {reader}"}).get_json()
    assert "secrets_withheld" not in gone


def test_unread_secrets_are_purged_after_their_window(client, signer, worker, provider, runtime, database_url):
    raw = json.dumps(event_body("service.create"))
    _send(client, signer, raw, "msg_unread")
    worker.drain()
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=jobs.REVEAL_SECONDS + 1)
    assert jobs.purge_unrevealed(runtime.db, now=later) == 1
    assert "secrets" not in _send(client, signer, raw, "msg_unread")["job"]


def test_a_secret_survives_a_failure_later_in_the_same_job(client, signer, worker, runtime):
    class FailsAfterCreate(OneTimeSecretProvider):
        """Creates (showing the secret), then the renew that follows times out once."""
        renew_failures = 1

        def create_account(self, spec):
            account = super().create_account(spec)
            account.paid_until = None  # so that converge renews right after
            return account

        def renew(self, account_id, until):
            if self.renew_failures:
                self.renew_failures -= 1
                raise Unavailable("renew timed out")
            return super().renew(account_id, until)

    runtime._providers["sandbox"] = FailsAfterCreate("sandbox", runtime.catalog.upstream_config("sandbox"))
    raw = json.dumps(event_body("service.create"))
    job_id = _send(client, signer, raw, "msg_partial")["job"]["id"]
    assert worker.run_once()  # exactly one attempt: the create, then the failing renew
    with runtime.db.read() as s:
        assert s.get(Job, job_id).state == "retrying"
    assert "secrets" not in _send(client, signer, raw, "msg_partial")["job"]  # not finished yet
    time.sleep(0.1)  # past the (tiny) backoff
    worker.drain()
    answer = _send(client, signer, raw, "msg_partial")["job"]
    assert answer["state"] == "succeeded"
    assert answer["secrets"] == {"relay_password": RELAY_PASSWORD}
