"""The provisioner against the real Modoboa: signed hooks in, IMAP logins out.

A service on the example product ``modoboa-mail`` (``provider: modoboa``), whose upstream
block (product_configs/upstreams.yaml) reads ``base_url`` and ``token`` from
``${MODOBOA_URL}`` and ``${MODOBOA_TOKEN}``, set here to the ``modoboa_real`` instance.
Everything the billing system does goes through signed hooks and a Worker; the customer's
mailbox is added through the client API after a single sign-on. What the instance did is
read back through its own REST API (``Api``) and Dovecot's IMAP (``imap_login``), never
through the provisioner.
"""
from __future__ import annotations

import json
import secrets
import time

import pytest
from sqlalchemy import select

from provisioner.devsetup import dev_products_env
from provisioner.models import Job, Service
from provisioner.products import load_catalog
from provisioner.reconcile import run_pass
from provisioner.runtime import Runtime
from tests.helpers import event_body, table_dump
from tests.integration.test_client_api import build_app, sign_in
from tests.real.modoboa_api import Api, imap_login

pytestmark = [pytest.mark.real, pytest.mark.e2e]

PRODUCT = "60"
OPTIONS = {"Total Mailboxes": 2, "Domain Quota (GB)": 4, "Mailbox Quota (MB)": 512, "Total Aliases": 3,
           "Total Distribution Lists": 1}
PASSWORD = "Billing-Pass-2026"
NEW_PASSWORD = "Changed-Pass-77"
BOX_PASSWORD = "Her-Own-Pass-9"
FINISHED = ("succeeded", "failed", "skipped")


@pytest.fixture
def runtime(settings, modoboa_real):
    env = {**dev_products_env({"modoboa": modoboa_real.url}), "MODOBOA_TOKEN": modoboa_real.token}
    rt = Runtime(settings, catalog=load_catalog(settings.products_dir, environ=env))
    yield rt
    rt.close()


@pytest.fixture
def app(runtime):
    return build_app(runtime)


@pytest.fixture
def api(modoboa_real) -> Api:
    return Api(modoboa_real.url, modoboa_real.http)


class Billing:
    """The billing system: signs one event for the service, waits for its jobs to finish."""

    def __init__(self, client, signer, worker, runtime, service_id: str, domain: str):
        self.client, self.signer, self.worker, self.runtime = client, signer, worker, runtime
        self.service_id, self.domain = service_id, domain

    def jobs(self) -> list[Job]:
        with self.runtime.db.read() as s:
            return list(s.execute(select(Job).where(Job.service_id == self.service_id)
                                  .order_by(Job.created_at)).scalars())

    def send(self, kind: str, **fields) -> Service:
        payload = event_body(kind, self.service_id, domain=self.domain, product_id=PRODUCT,
                             options=fields.pop("options", OPTIONS), **fields)
        raw = json.dumps(payload)
        answer = self.client.post("/hooks/v1/events", data=raw, headers=self.signer.headers(raw))
        assert answer.status_code in (200, 202), answer.get_json()
        deadline = time.monotonic() + 60           # a real upstream, on a busy machine
        while True:
            self.worker.drain()
            found = self.jobs()
            if found and all(j.state in FINISHED for j in found):
                break
            assert time.monotonic() < deadline, [(j.reason, j.state, j.error_code) for j in found]
            time.sleep(0.1)
        last = found[-1]
        assert last.state == "succeeded", (kind, last.error_code, last.error_message)
        with self.runtime.db.read() as s:
            return s.get(Service, self.service_id)


def _domain(api: Api, name: str) -> dict | None:
    answer = api.get("/domains/", search=name)
    assert answer.status_code == 200, answer.text
    return next((d for d in answer.json()["results"] if d["name"] == name), None)


def _usernames(api: Api, domain_pk: int) -> list[str]:
    answer = api.get("/accounts/", domain=domain_pk)
    assert answer.status_code == 200, answer.text
    return sorted(a["username"] for a in answer.json()["results"])


def test_a_service_lives_its_life_on_a_real_modoboa(modoboa_real, api, app, client, signer, worker, runtime,
                                                    database_url):
    port = modoboa_real.imap_port
    name = f"hooks-{secrets.token_hex(4)}.example.com"
    postmaster, ada = f"postmaster@{name}", f"ada@{name}"
    billing = Billing(client, signer, worker, runtime, "6101", name)

    # create: the domain with the product's quotas, and postmaster@ with the billing password
    svc = billing.send("service.create", password=PASSWORD)
    domain = _domain(api, name)
    assert domain is not None and svc.upstream_id == str(domain["pk"]) and svc.observed_status == "active"
    assert (domain["quota"], domain["default_mailbox_quota"], domain["enabled"]) == ("4096", "512", True)
    assert imap_login(port, postmaster, PASSWORD)
    assert not imap_login(port, postmaster, "Wrong-Pass-2026")

    # the client area (entered by single sign-on) adds a mailbox with its own password
    me = sign_in(app, runtime, svc.id)
    answer = me.post("/mailboxes", {"local_part": "ada", "password": BOX_PASSWORD, "name": "Ada Lovelace"})
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["address"] == ada
    assert _usernames(api, domain["pk"]) == sorted([ada, postmaster])
    assert imap_login(port, ada, BOX_PASSWORD) and not imap_login(port, ada, PASSWORD)
    listed = me.get("/mailboxes").get_json()
    assert [m["address"] for m in listed["items"]] == [ada]          # postmaster@ is the service's own
    # an alias and a distribution list, which Modoboa keeps as aliases
    assert me.post("/aliases", {"local_part": "sales", "target": ada}).status_code == 201
    answer = me.post("/lists", {"local_part": "team", "members": [ada, "someone@elsewhere.example"]})
    assert answer.status_code == 201, answer.get_json()
    kept = {a["address"]: (a["recipients"], a["enabled"])
            for a in api.get("/aliases/", domain=name).json()["results"]}
    assert kept[f"sales@{name}"] == ([ada], True)
    assert kept[f"team@{name}"] == ([ada, "someone@elsewhere.example"], True)
    assert kept[f"provisioner-settings@{name}"][1] is False             # the adapter's memo delivers nothing

    # change password: only the new one logs in (the client's own mailbox keeps its password)
    billing.send("service.change_password", password=NEW_PASSWORD)
    assert imap_login(port, postmaster, NEW_PASSWORD)
    assert not imap_login(port, postmaster, PASSWORD)
    assert imap_login(port, ada, BOX_PASSWORD)

    # suspend: the domain is disabled in Modoboa and neither mailbox logs in
    svc = billing.send("service.suspend", suspend_reason="Overdue on Payment")
    assert svc.observed_status == "suspended" and _domain(api, name)["enabled"] is False
    assert not imap_login(port, postmaster, NEW_PASSWORD)
    assert not imap_login(port, ada, BOX_PASSWORD)

    # unsuspend: both log in again
    svc = billing.send("service.unsuspend")
    assert svc.observed_status == "active" and _domain(api, name)["enabled"] is True
    assert imap_login(port, postmaster, NEW_PASSWORD)
    assert imap_login(port, ada, BOX_PASSWORD)

    # change package: the domain's quotas change in Modoboa
    billing.send("service.change_package",
                 options={**OPTIONS, "Domain Quota (GB)": 8, "Mailbox Quota (MB)": 1024, "Total Mailboxes": 4})
    domain = api.get(f"/domains/{domain['pk']}/").json()
    assert (domain["quota"], domain["default_mailbox_quota"]) == ("8192", "1024")
    # Modoboa moves the mailboxes on the domain's quota (postmaster@, and ada, made without
    # a quota of her own) to the new default itself
    accounts = api.get("/accounts/", domain=domain["pk"]).json()["results"]
    quotas = {a["username"]: a["mailbox"]["quota"] for a in accounts}
    assert quotas == {postmaster: "1024", ada: "1024"}
    assert me.get("/session").get_json()["limits"]["mailboxes"] == 4

    # a reconcile pass reads the real domain back and finds nothing to repair
    assert run_pass(runtime).report["jobs_queued"] == 0
    with runtime.db.read() as s:
        usage = s.get(Service, svc.id).usage
    assert (usage["mailboxes"], usage["aliases"], usage["distribution_lists"]) == (1, 1, 1)

    # terminate: the domain and its accounts are gone, and nobody logs in
    svc = billing.send("service.terminate")
    assert svc.observed_status == "deleted"
    assert _domain(api, name) is None
    assert api.get(f"/domains/{domain['pk']}/").status_code == 404
    everyone = api.get("/accounts/", page_size=500).json()["results"]
    assert not [a["username"] for a in everyone if a["username"].endswith(f"@{name}")]
    assert not imap_login(port, postmaster, NEW_PASSWORD)
    assert not imap_login(port, ada, BOX_PASSWORD)

    dump = table_dump(database_url)
    assert PASSWORD not in dump and NEW_PASSWORD not in dump and BOX_PASSWORD not in dump
    assert modoboa_real.token not in dump
