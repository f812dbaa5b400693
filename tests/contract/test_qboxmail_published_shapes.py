"""The Qboxmail simulator driven as published clients drive the real API.

Every request here is shaped as a published example or an open-source integration
sends it (headers, method, path, body or no body), and every answer is checked
against the shape that material shows. Sources, per test, are the ones listed in
docs/providers/qboxmail.md ("Where the API facts come from"):

- [ref] docs.qboxmail.com/en/api/ (overview, postApiDomains, responses-pagination,
  errors-retries, the synchronous ownership check) and qboxmail.com/api-doc;
- [faq] mktcode/faq server/utils/qboxmail.ts and server/utils/autodns.ts;
- [vb] vbdesign-be/vbdashboard app/Http/Controllers/QboxController.php;
- [tan] TanvirSEF/hosting lib/qboxmail.ts and lib/auto-dns.ts.

What is still unverified (see the doc) is not asserted here beyond what these show.
"""
from __future__ import annotations

import re

import pytest

from provisioner.simulators.qboxmail import create_app

TOKEN = "published-shapes-qbox-token"
#: the headers of the published examples ([ref] qboxmail.com/api-doc, [faq] makeRequest)
HEADERS = {"Accept": "application/json", "X-Api-Token": TOKEN, "Content-Type": "application/json"}
PASSWORD = "VBdashboardTest123"                       # [vb] makeDomain: letters and digits
PAGINATION_KEYS = {"per", "page", "total_pages", "query", "filter", "status", "sort_field", "sort",
                   "total_records"}


@pytest.fixture
def make_client():
    def make(**options):
        return create_app(api_token=TOKEN, **options).test_client()
    return make


@pytest.fixture
def client(make_client):
    return make_client()                               # domains wait for their ownership check


def create_domain(client, name: str = "published.example") -> str:
    # [faq] createDomainIfNotExists / [ref] postApiDomains: name, postmaster password twice.
    r = client.post("/api/domains", headers=HEADERS, json={
        "name": name, "postmaster_password": PASSWORD, "postmaster_password_confirmation": PASSWORD,
        "max_email_accounts": 3})
    assert r.status_code == 201
    body = r.get_json()
    # [faq] z.object({message: z.string(), resource_code: z.string()}); [ref] the code in Location too
    assert set(body) == {"message", "resource_code"} and isinstance(body["message"], str)
    assert re.fullmatch(r"D\d{9}", body["resource_code"])
    assert r.headers["Location"].endswith(f"/api/domains/{body['resource_code']}")
    return body["resource_code"]


def test_domain_list_and_query_answer_resources_with_pagination(client):
    code = create_domain(client)
    # [faq] GET domains?query=<domain>, reads resources[0].code; [vb] GET domains?per=200
    for query in ({"query": "published.example"}, {"per": 200}):
        body = client.get("/api/domains", headers=HEADERS, query_string=query).get_json()
        assert set(body) == {"resources", "pagination"} and set(body["pagination"]) == PAGINATION_KEYS
        assert [d["code"] for d in body["resources"]] == [code]


def test_a_new_domain_waits_in_ownership_check_with_its_possession_record(client):
    code = create_domain(client)
    # [vb] getDomainInfo: GET domains/<code>, data->resources[0]
    [domain] = client.get(f"/api/domains/{code}", headers=HEADERS).get_json()["resources"]
    # [tan] QboxmailDomainResult: code, status, status_detail, possession_a_record, dkim_selector,
    # dkim_public_key; getDomainDnsRecords also reads is_healthy
    assert {"code", "name", "status", "status_detail", "possession_a_record", "dkim_selector",
            "dkim_public_key", "is_healthy"} <= set(domain)
    assert domain["status"] == "ownership_check"
    # [tan] "possession_a_record: d862161940" -> "{possession_code}.{domain} A 185.97.217.16";
    # [faq] the A record named after the domain code, at 185.97.217.16
    assert domain["possession_a_record"] == code.lower()
    # [vb] checkDns / [faq] checkDnsOwnership: PUT with no body
    r = client.put(f"/api/domains/{code}/dns_ownership_check", headers={"X-Api-Token": TOKEN})
    assert r.status_code == 200 and isinstance(r.get_json(), dict)
    # [ref] the synchronous check's documented answer
    check = client.put(f"/api/domains/{code}/dns_ownership_check/sync", headers=HEADERS).get_json()
    assert set(check) == {"verified", "activation_queued", "resource", "expected_record", "resolved_ip"}
    assert set(check["resource"]) == {"type", "code", "name", "status", "status_detail"}
    assert check["expected_record"] == {"name": f"{domain['possession_a_record']}.published.example",
                                        "type": "A", "value": "185.97.217.16"}
    assert check["verified"] is False and check["resource"]["status"] == "ownership_check"


def test_dkim_and_the_mx_check_as_integrators_call_them(make_client):
    client = make_client(verification_delay=0)
    code = create_domain(client)
    # [vb] getDKIM: POST domains/<code>/dkim without a body, reads resources[0]->txt_record
    r = client.post(f"/api/domains/{code}/dkim", headers={"X-Api-Token": TOKEN})
    assert r.status_code == 200
    txt = r.get_json()["resources"][0]["txt_record"]
    # [ref] panel guide: the public key "starts with v=DKIM1; k=rsa; p=MIGfMA..."
    assert txt.startswith("v=DKIM1; k=rsa; p=MIGfMA")
    # [tan] the domain then carries dkim_selector and dkim_public_key
    [domain] = client.get(f"/api/domains/{code}", headers=HEADERS).get_json()["resources"]
    assert domain["dkim_selector"] and txt.endswith(domain["dkim_public_key"])
    # [vb] verifyMX / [faq] checkMxRecords: PUT domains/<code>/dns without a body
    r = client.put(f"/api/domains/{code}/dns", headers={"X-Api-Token": TOKEN})
    assert r.status_code == 200 and isinstance(r.get_json(), dict)


def test_email_account_create_list_and_delete(make_client):
    client = make_client(verification_delay=0)
    code = create_domain(client)
    # [vb] makeEmail / [faq] createMailbox: name, password twice, firstname
    r = client.post(f"/api/domains/{code}/email_accounts", headers=HEADERS, json={
        "name": "info", "password": PASSWORD, "password_confirmation": PASSWORD, "firstname": "Acme"})
    assert r.status_code == 201 and set(r.get_json()) == {"message", "resource_code"}
    mailbox = r.get_json()["resource_code"]
    # [faq] listMailboxes: resources of {code, name, email_address, firstname}
    [listed] = client.get(f"/api/domains/{code}/email_accounts", headers=HEADERS).get_json()["resources"]
    assert {"code", "name", "email_address", "firstname"} <= set(listed)
    assert (listed["code"], listed["email_address"]) == (mailbox, "info@published.example")
    # [vb] deleteEmail / deleteDomain; [ref] deletes may answer 204
    assert client.delete(f"/api/domains/{code}/email_accounts/{mailbox}", headers=HEADERS).status_code == 204
    assert client.delete(f"/api/domains/{code}", headers=HEADERS).status_code == 204


def test_errors_have_the_published_shape(client):
    create_domain(client)
    # [ref] errors-retries: {"message": "Validation failed", "errors": [{"field": "name",
    # "description": "already exists"}]}
    r = client.post("/api/domains", headers=HEADERS, json={
        "name": "published.example", "postmaster_password": PASSWORD,
        "postmaster_password_confirmation": PASSWORD})
    assert r.status_code == 422
    assert r.get_json() == {"message": "Validation failed",
                            "errors": [{"field": "name", "description": "already exists"}]}
    # [ref] 401 for a missing or wrong token, 404 for an unknown object, in the same shape
    for status, headers, path in ((401, {"Accept": "application/json"}, "/api/domains"),
                                  (404, HEADERS, "/api/domains/D999999999")):
        r = client.get(path, headers=headers)
        assert r.status_code == status and set(r.get_json()) == {"message", "errors"}


@pytest.mark.parametrize("state", ["suspended", "rejected", "deleted"])
def test_qboxmails_own_states_read_as_published(client, state):
    code = create_domain(client)
    client.post("/_sim/mutate", json={"account_id": code, "qboxmail_status": state})
    # [tan] getDomainCode: 'deleted' is terminal; 'disabled', 'suspended', 'rejected' are warnings
    [domain] = client.get(f"/api/domains/{code}", headers=HEADERS).get_json()["resources"]
    assert domain["status"] == state
