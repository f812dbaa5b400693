"""What the module makes of WHMCS's $params, without sending anything (real php, no server)."""
from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from provisioner.devsetup import new_webhook_secret
from tests.php.whmcs import MODULE, Whmcs, php_binary

RELAY = {"Sending Type": "promotional", "Messages": "20000", "Sender Domains": 2}


@pytest.fixture
def offline(tmp_path) -> Whmcs:
    stack = SimpleNamespace(webhook_secret=new_webhook_secret(), web_port=9, admin_key="prov_offline-test-key")
    return Whmcs(stack, tmp_path / "whmcs")


def build(whmcs: Whmcs, function: str, params: dict, **kw) -> dict:
    return whmcs.call(f"EventBuilder::build:{function}", params, **kw)


def test_module_files_are_php_8_1_with_nothing_but_curl(offline):
    for path in sorted(MODULE.parent.rglob("*.php")):
        lint = subprocess.run([php_binary(), "-n", "-l", str(path)], capture_output=True, text=True, timeout=30)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    # The whole module loads and answers with php's ini files (and so every shared extension) off.
    meta = offline.call("MetaData", {}, model=None, bare=True)
    assert meta == {"DisplayName": "Provisioner (e-mail hosting)", "APIVersion": "1.1", "RequiresServer": True,
                    "DefaultNonSSLPort": "80", "DefaultSSLPort": "443",
                    "ServiceSingleSignOnLabel": "Manage mailboxes",
                    "AdminSingleSignOnLabel": "Open the operator console",
                    "ListAccountsUniqueIdentifierDisplayName": "Domain",
                    "ListAccountsUniqueIdentifierField": "domain", "ListAccountsProductField": "configoption2"}
    options = offline.call("ConfigOptions", {}, model=None, bare=True)
    assert list(options) == ["Wait seconds", "Provisioner product id", "Create configurable options"]
    assert options["Wait seconds"]["Default"] == "20"
    # A real request under the same conditions: nothing listens on port 9, curl says so.
    result = offline.call("TestConnection", offline.server(), model=None, bare=True)
    assert result["success"] is False and "is not reachable" in result["error"]


def test_create_event_from_realistic_params(offline):
    params = offline.params("1042", " Example.COM ", options={"Total Mailboxes": "5", "Mailbox Quota (GB)": 10,
                                                             "Archiving": True, "Plan": "business"},
                            custom_fields={"VAT id": "DE123", "Ticket": 42}, username="ada",
                            client={"email": " ada@example.com "})
    event = build(offline, "CreateAccount", params, model=Whmcs.model("2026-12-21", "Semi-Annually"))
    assert event == {
        "type": "service.create",
        "service": {"id": "1042", "product_id": "12", "domain": "example.com", "username": "ada",
                    "password": "Initial-Pw-2026x",
                    "config_options": {"Total Mailboxes": 5, "Mailbox Quota (GB)": 10, "Archiving": 1,
                                       "Plan": "business"},
                    "custom_fields": {"VAT id": "DE123", "Ticket": "42"},
                    "billing_cycle": "semi-annually", "next_due_date": "2026-12-21"},
        "client": {"id": "77", "email": "ada@example.com", "first_name": "Ada",
                   "last_name": "Lovelace", "company": "Example GmbH", "country": "DE",
                   "address": "Unter den Linden 1, Aufgang B", "city": "Berlin", "state": "Berlin",
                   "postcode": "10117", "phone": "+49.3012345678", "language": "de"},
    }


def test_empty_options_are_json_objects_and_each_command_sends_what_it_needs(offline):
    params = offline.params("1042", "example.com", options={}, custom_fields={})
    create = build(offline, "CreateAccount", params)
    assert create["service"]["config_options"] == {} and create["service"]["custom_fields"] == {}
    suspend = build(offline, "SuspendAccount", {**params, "suspendreason": ""})
    assert "suspend_reason" not in suspend["service"] and "password" not in suspend["service"]
    assert "config_options" not in suspend["service"]
    assert build(offline, "SuspendAccount", {**params, "suspendreason": "Overdue on Payment"})[
        "service"]["suspend_reason"] == "Overdue on Payment"
    assert build(offline, "ChangePassword", params)["service"]["password"] == "Initial-Pw-2026x"
    assert build(offline, "ChangePassword", {**params, "password": ""}) == {
        "error": "There is no new password to send: enter one in the service's Password field."}
    change = build(offline, "ChangePackage", {**offline.params("1042", "example.com", pid="51", options=RELAY)})
    assert change["type"] == "service.change_package" and change["service"]["product_id"] == "51"
    assert change["service"]["config_options"] == {"Sending Type": "promotional", "Messages": 20000,
                                                   "Sender Domains": 2}
    assert [build(offline, f, params)["type"] for f in ("UnsuspendAccount", "TerminateAccount", "Renew")] == [
        "service.unsuspend", "service.terminate", "service.renew"]
    # A product id of the provisioner's own, set in the product's Module Settings.
    assert build(offline, "Renew", {**params, "configoption2": "30"})["service"]["product_id"] == "30"


def test_due_date_and_cycle_from_the_model_params_or_tblhosting(offline):
    params = offline.params("1042", "example.com")
    carbon = build(offline, "Renew", params, model=Whmcs.model("2027-01-31", "Annually"), model_dates="carbon")
    assert (carbon["service"]["next_due_date"], carbon["service"]["billing_cycle"]) == ("2027-01-31", "annually")
    free = build(offline, "Renew", params, model=Whmcs.model("0000-00-00", "Free Account"))
    assert "next_due_date" not in free["service"] and free["service"]["billing_cycle"] == "free account"
    # An older WHMCS without $params['model']: the service's row in tblhosting.
    offline.seed_table("tblhosting", [{"id": 1042, "nextduedate": "2026-12-01", "billingcycle": "Quarterly"}])
    old = build(offline, "Renew", params, model=None)
    assert (old["service"]["next_due_date"], old["service"]["billing_cycle"]) == ("2026-12-01", "quarterly")
    # Neither: the event goes without them.
    offline.seed_table("tblhosting", [])
    bare = build(offline, "Renew", params, model=None)
    assert "next_due_date" not in bare["service"] and "billing_cycle" not in bare["service"]


def test_client_details_are_fitted_to_the_contract(offline):
    params = offline.params("1042", "example.com", client={
        "phonenumberformatted": "", "phonecc": 44, "phonenumber": "20 7946 0958", "language": "portuguese-br",
        "address2": "", "companyname": "X" * 300, "countrycode": "gb", "state": "", "fullstate": "Greater London"})
    client = build(offline, "CreateAccount", params)["client"]
    assert client["phone"] == "+44.2079460958" and client["language"] == "pt-BR"
    assert client["address"] == "Unter den Linden 1" and client["country"] == "GB"
    assert client["company"] == "X" * 255 and client["state"] == "Greater London"
    unknown_language = build(offline, "CreateAccount", offline.params("1042", "example.com",
                                                                      client={"language": "klingon"}))["client"]
    assert "language" not in unknown_language
    assert build(offline, "CreateAccount", offline.params("1042", "")) == {
        "error": "This service has no domain: enter the customer's domain in the service's Domain field, save, "
                 "and run Create again."}


@pytest.mark.parametrize("fields, url", [
    ({"serverhostname": "prov.example.net", "serversecure": True, "serverport": "443"}, "https://prov.example.net"),
    ({"serverhostname": "prov.example.net", "serversecure": "on", "serverport": "8443"}, "https://prov.example.net:8443"),
    ({"serverhostname": "prov.example.net:9000", "serversecure": "", "serverport": "80"}, "http://prov.example.net:9000"),
    ({"serverhostname": "prov.example.net/provisioner/", "serversecure": True, "serverport": ""},
     "https://prov.example.net/provisioner"),
    ({"serverhostname": "https://prov.example.net:444/base/", "serversecure": False, "serverport": "80"},
     "https://prov.example.net:444/base"),
    ({"serverhostname": "", "serverip": "192.0.2.10", "serversecure": False, "serverport": "8080"},
     "http://192.0.2.10:8080"),
])
def test_the_provisioner_url_from_the_server_fields(offline, fields, url):
    assert offline.call("Connection::baseUrl", {**offline.server(), **fields}, model=None) == url


def test_bad_server_settings_are_explained_before_anything_is_sent(offline):
    params = offline.params("1042", "example.com")
    assert offline.call("CreateAccount", {**params, "serverpassword": ""}) == (
        "The server has no Password: enter one of the provisioner's webhook secrets (whsec_..., from "
        "PROVISIONER_WEBHOOK_SECRETS) as the server's Password.")
    assert offline.call("CreateAccount", {**params, "serverpassword": "whsec_%%%"}) == (
        "The server's Password is not a valid webhook secret: the part after \"whsec_\" must be base64.")
    assert offline.call("CreateAccount", {**params, "serverhostname": "", "serverip": ""}).startswith(
        "The server has no Hostname")
    assert offline.hook_entries() == []
    offline.assert_no_secrets_logged("whsec_%%%")
