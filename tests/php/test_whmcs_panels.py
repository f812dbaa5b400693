"""What admins and customers see, server-wide jobs and one-time secrets, through real php."""
from __future__ import annotations

import datetime as dt
import re
import subprocess

import pytest
import requests

from tests.e2e.procs import PROVISIONER, ROOT, free_port
from tests.php.whmcs import MODULE, add_months

TEMPLATE = MODULE.parent / "templates" / "clientarea.tpl"
RELAY_OPTIONS = {"Sending Type": "transactional", "Messages": 10000, "Sender Domains": 1}
#: what WHMCS itself gives the product details template (clientareaproductdetails.tpl)
WHMCS_TEMPLATE_VARS = {"groupname", "product", "rawstatus", "status", "regdate", "billingcycle",
                       "recurringamount", "nextduedate"}


def _sso_route_exists(stack) -> bool:
    paths = stack.http.get(f"{stack.base_url}/api/openapi.json", timeout=10).json().get("paths", {})
    return any(re.fullmatch(r"/api/v1/services/\{[^}]+\}/sso", path) and "post" in ops
               for path, ops in paths.items())


# --- the server's Test Connection ----------------------------------------------------------------

def test_test_connection_checks_the_url_the_api_key_and_the_webhook_secret(whmcs, php_stack):
    server = whmcs.server()
    assert whmcs.call("TestConnection", server, model=None) == {"success": True, "error": ""}
    # The probe is an event for a service that cannot exist: nothing was stored.
    assert php_stack.admin_get("/api/v1/events?per_page=1").json()["total"] == \
        php_stack.count("events")

    wrong_secret = "whsec_" + "c2VjcmV0LW5vdC1rbm93bi10by10aGUtcHJvdmlzaW9uZXI="
    result = whmcs.call("TestConnection", {**server, "serverpassword": wrong_secret}, model=None)
    assert result["success"] is False
    assert result["error"].startswith("The provisioner refused the signature: the server's Password must be one of "
                                      "the provisioner's webhook secrets (PROVISIONER_WEBHOOK_SECRETS).")

    result = whmcs.call("TestConnection", {**server, "serveraccesshash": "prov_not-a-key"}, model=None)
    assert result["success"] is False and result["error"].startswith(
        "The provisioner refused the server's Access Hash: The API key is not valid or has been revoked.")

    result = whmcs.call("TestConnection", {**server, "serverusername": "admin"}, model=None)
    assert result == {"success": False, "error": "The server's Username is not a callback secret: leave it empty, "
                      "or enter the callback_secret (whsec_...) of this WHMCS's billing source at the provisioner, so "
                      "that callback.php accepts its callbacks."}
    assert whmcs.call("TestConnection", {**server, "serverusername": ""}, model=None) == {"success": True, "error": ""}
    result = whmcs.call("TestConnection", {**server, "serverpassword": "hunter2"}, model=None)
    assert result == {"success": False, "error": "The server's Password is not a webhook secret: it must start with "
                                                 "\"whsec_\" (one of the provisioner's PROVISIONER_WEBHOOK_SECRETS)."}

    closed = free_port()
    result = whmcs.call("TestConnection", {**server, "serverport": str(closed)}, model=None)
    assert result["success"] is False
    assert result["error"].startswith(f"The provisioner at http://127.0.0.1:{closed} is not reachable (")

    # A full URL as the hostname wins over the port and SSL fields.
    as_url = {**server, "serverhostname": php_stack.base_url, "serverport": "443", "serversecure": True}
    assert whmcs.call("TestConnection", as_url, model=None) == {"success": True, "error": ""}
    whmcs.assert_no_secrets_logged(wrong_secret, "prov_not-a-key", "hunter2")


def test_test_connection_refuses_a_read_only_api_key(whmcs, php_stack):
    if not _sso_route_exists(php_stack):
        pytest.skip("POST /api/v1/services/{id}/sso does not exist on this provisioner yet (the client-area work "
                    "is adding it); without a POST route a read-only key cannot be told apart")
    made = subprocess.run([str(PROVISIONER), "api-key", "create", "whmcs-read", "--scope", "read"],
                          env=php_stack.env, cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    read_key = made.stdout.splitlines()[0].strip()
    result = whmcs.call("TestConnection", whmcs.server(serveraccesshash=read_key), model=None)
    assert result["success"] is False and "read-only API key" in result["error"]
    whmcs.assert_no_secrets_logged(read_key, handed_over=(php_stack.webhook_secret, read_key))


# --- single sign-on ------------------------------------------------------------------------------

def test_single_sign_on_for_the_customer_and_the_admin(whmcs, php_stack):
    params = whmcs.params("7030", "whmcs-sso.example")
    assert whmcs.call("CreateAccount", params) == "success"
    if not _sso_route_exists(php_stack):
        # The module's answer is already clear; the route itself is not there yet.
        result = whmcs.call("ServiceSingleSignOn", params)
        assert result == {"success": False, "errorMsg": "The provisioner does not offer single sign-on "
                          "(POST /api/v1/services/{id}/sso answered HTTP 404): update it."}
        pytest.skip("POST /api/v1/services/{id}/sso does not exist on this provisioner yet (the client-area work "
                    "is adding it); the module calls it as contract section 4 describes")
    tokens = []
    for area in ("client", "admin"):             # WHMCS calls it from both; each link is single-use
        result = whmcs.call("ServiceSingleSignOn", params, area=area)
        assert result["success"] is True, result
        url = result["redirectTo"]
        assert url.startswith(php_stack.base_url + "/client/sso/"), url
        tokens.append(url.rsplit("/", 1)[1])
    assert len(set(tokens)) == 2 and all(tokens)
    never = whmcs.params("7039", "whmcs-sso-never.example")
    assert whmcs.call("ServiceSingleSignOn", never, area="admin") == {
        "success": False, "errorMsg": "This service is not set up at the provider yet: run Create first."}
    assert whmcs.call("ServiceSingleSignOn", never) == {       # the customer's language: German
        "success": False, "errorMsg": "Ihre Postfächer werden noch eingerichtet; die Verwaltung öffnet sich, "
                                      "sobald sie bereit sind."}
    # A set-up problem is the admin's to read: the customer is told nothing about the server's credentials.
    wrong_key = {**params, **whmcs.server(serveraccesshash="prov_not-a-key")}
    admin = whmcs.call("ServiceSingleSignOn", wrong_key, area="admin")
    assert admin["success"] is False and "Access Hash" in admin["errorMsg"]
    customer = whmcs.call("ServiceSingleSignOn", {**wrong_key, "clientsdetails": {
        **wrong_key["clientsdetails"], "language": "english"}})
    assert customer == {"success": False, "errorMsg": "Mailbox management cannot be opened right now. Please try "
                                                      "again in a few minutes, or contact support."}
    whmcs.assert_no_secrets_logged(*tokens)


def test_the_servers_list_sign_on_opens_the_operator_console_once(whmcs, php_stack):
    result = whmcs.call("AdminSingleSignOn", whmcs.server(), model=None, area="admin")
    assert result["success"] is True, result
    url = result["redirectTo"]
    assert url.startswith(php_stack.base_url + "/admin/sso/"), url
    opened = requests.get(url, allow_redirects=False, timeout=10)
    assert opened.status_code in (302, 303) and "provisioner_console" in opened.headers.get("set-cookie", "")
    again = requests.get(url, allow_redirects=False, timeout=10)
    assert "provisioner_console" not in again.headers.get("set-cookie", "")   # single use

    wrong = whmcs.call("AdminSingleSignOn", whmcs.server(serveraccesshash="prov_not-a-key"), model=None, area="admin")
    assert wrong["success"] is False and wrong["errorMsg"].startswith(
        "The provisioner refused the server's Access Hash: The API key is not valid or has been revoked.")
    whmcs.assert_no_secrets_logged(url.rsplit("/", 1)[1], "prov_not-a-key")


def test_the_sso_link_opens_the_client_area_once(whmcs, php_stack):
    params = whmcs.params("7038", "whmcs-sso-open.example")
    assert whmcs.call("CreateAccount", params) == "success"
    if not _sso_route_exists(php_stack):
        pytest.skip("POST /api/v1/services/{id}/sso does not exist on this provisioner yet")
    result = whmcs.call("ServiceSingleSignOn", params)
    assert result["success"] is True, result
    client_area = php_stack.http.get(f"{php_stack.base_url}/client/", allow_redirects=False, timeout=10)
    if client_area.status_code == 404:
        pytest.skip("the client area (/client/, /client/sso/{token}) is not served by this provisioner yet; the "
                    "module's link from POST /api/v1/services/{id}/sso is checked in the test above")
    opened = requests.get(result["redirectTo"], allow_redirects=False, timeout=10)
    assert opened.status_code in (200, 302, 303), opened.status_code
    assert "set-cookie" in {k.lower() for k in opened.headers}
    again = requests.get(result["redirectTo"], allow_redirects=False, timeout=10)
    assert again.status_code >= 400 or "set-cookie" not in {k.lower() for k in again.headers}


# --- the client area and the admin's service tab --------------------------------------------------

def test_client_area_shows_limits_against_use_and_the_manage_button(whmcs, php_stack):
    stack, sid, domain = php_stack, "7031", "whmcs-clientarea.example"
    params = whmcs.params(sid, domain)
    assert whmcs.call("CreateAccount", params) == "success"
    [account] = stack.accounts_for(sid)
    r = requests.post(f"{stack.sim_url}/api/v1/accounts/{account['id']}/mailboxes", timeout=10,
                      json={"local_part": "info", "password": "Mailbox-Pw-1234"})
    assert r.status_code == 201, r.text
    assert whmcs.call("Renew", params) == "success"              # a job: usage refreshed

    english = {**params, "clientsdetails": {**params["clientsdetails"], "language": "english"}}
    area = whmcs.call("ClientArea", english)
    # Added below WHMCS's own product details (Upgrade/Downgrade, Renew, Cancel, options, ...), not replacing them.
    assert set(area) == {"tabOverviewModuleOutputTemplate", "templateVariables"}
    assert area["tabOverviewModuleOutputTemplate"] == "templates/clientarea.tpl"
    assert (MODULE.parent / area["tabOverviewModuleOutputTemplate"]).is_file()
    variables = area["templateVariables"]
    rows = {row["key"]: (row["label"], row["used"], row["limit"]) for row in variables["provisionerLimits"]}
    assert rows["mailboxes"] == ("Mailboxes", "1", "5")
    assert rows["aliases"] == ("Aliases", "0", "2")
    assert rows["distribution_lists"] == ("Distribution lists", "0", "1")
    assert variables["provisionerQuota"] == "10 GB" and variables["provisionerStorage"] == "0 MB"
    assert variables["provisionerCanManage"] is True and variables["provisionerNotice"] == ""
    # The words come from the language files, in the client's language (the default params: German).
    german = whmcs.call("ClientArea", params)["templateVariables"]
    assert german["provisionerLang"]["provisioner_manage"] == "Postfächer verwalten"
    assert {r["key"]: r["label"] for r in german["provisionerLimits"]}["mailboxes"] == "Postfächer"
    assert variables["provisionerLang"]["provisioner_manage"] == "Manage mailboxes"
    template = TEMPLATE.read_text()
    for key in re.findall(r"\$provisionerLang\.(\w+)", template):
        assert key in variables["provisionerLang"] and key in german["provisionerLang"], key
    assert not re.search(r">\s*[A-Z][a-z]+ [a-z]+", re.sub(r"\{\*.*?\*\}", "", template, flags=re.S)), \
        "hard-coded English in the template"
    assert variables["provisionerSsoLink"] == f"clientarea.php?action=productdetails&id={sid}&dosinglesignon=1"
    # Every variable the template reads is one the module or WHMCS provides.
    used = set(re.findall(r"\{\$(\w+)", TEMPLATE.read_text())) | set(re.findall(r"from=\$(\w+)", TEMPLATE.read_text()))
    assert used - {"row"} <= set(variables) | WHMCS_TEMPLATE_VARS, used - set(variables) - WHMCS_TEMPLATE_VARS

    assert whmcs.call("SuspendAccount", {**english, "suspendreason": "Overdue on Payment"}) == "success"
    suspended = whmcs.call("ClientArea", english)["templateVariables"]
    assert suspended["provisionerCanManage"] is False and suspended["provisionerStatus"] == "suspended"
    assert suspended["provisionerNotice"] == "Mailbox management is unavailable while the service is suspended."

    down = whmcs.call("ClientArea", {**english, **whmcs.server(serverport=str(free_port()))})
    assert down["templateVariables"]["provisionerNotice"] == \
        "Your mailbox details cannot be shown right now. Please try again in a few minutes."
    # A Pending order is being set up, not broken.
    pending = whmcs.call("ClientArea", {**english, "status": "Pending"})["templateVariables"]
    assert pending["provisionerNotice"] == "Your mailboxes are being set up. This page shows them once they are ready."
    whmcs.assert_no_secrets_logged()


def test_admin_services_tab_shows_upstream_status_and_the_last_job_with_its_error(whmcs, php_stack):
    stack, sid = php_stack, "7032"
    params = whmcs.params(sid, "whmcs-admintab.example")
    assert whmcs.call("AdminServicesTabFields", params) == {
        "Provisioner": "Not known to the provisioner yet: run Create."}
    assert whmcs.call("CreateAccount", params) == "success"
    fields = whmcs.call("AdminServicesTabFields", params)
    assert re.fullmatch(r"Billing wants <strong>active</strong>; the provider has it <strong>active</strong> at sandbox "
                        r"\(account acc_\d+\), checked \d{4}-\d\d-\d\d \d\d:\d\d UTC\.", fields["Provider status"])
    assert "Mailboxes 0 / 5" in fields["Use / limits"]
    assert re.fullmatch(r"service\.create: succeeded after 1 attempt, .+ UTC \(job [0-9a-f]{32}\)", fields["Last job"])
    assert fields["Last job error"] == "none"

    stack.sim_faults(error_rate=1.0)
    failed = whmcs.call("SuspendAccount", {**params, "suspendreason": "Abuse <script>"})
    assert "failed after" in failed
    stack.clear_faults()
    fields = whmcs.call("AdminServicesTabFields", params)
    assert "Billing wants <strong>suspended</strong> (Abuse &lt;script&gt;)" in fields["Provider status"]
    assert fields["Last job"].startswith("service.suspend: failed after ")
    assert fields["Last job error"] != "none" and fields["Last job error"].endswith(".")
    assert fields["Last job error"] in failed                        # the same safe message
    whmcs.assert_no_secrets_logged()


# --- the daily usage update and server sync ------------------------------------------------------

def test_usage_update_writes_disk_usage_and_limits_into_tblhosting(whmcs, php_stack):
    stack = php_stack
    params = whmcs.params("7033", "whmcs-usage.example")
    assert whmcs.call("CreateAccount", params) == "success"
    other_server = whmcs.params("7034", "whmcs-usage-other.example")
    assert whmcs.call("CreateAccount", other_server) == "success"
    [account] = stack.accounts_for("7033")
    for local in ("info", "sales"):
        r = requests.post(f"{stack.sim_url}/api/v1/accounts/{account['id']}/mailboxes", timeout=10,
                          json={"local_part": local, "password": "Mailbox-Pw-1234"})
        assert r.status_code == 201, r.text
    domain = "whmcs-usage.example"
    r = requests.post(f"{stack.sim_url}/_sim/mutate", timeout=10, json={
        "account_id": account["id"], "used_mb": {f"info@{domain}": 300, f"sales@{domain}": 212}})
    assert r.status_code == 200, r.text
    assert whmcs.call("Renew", params) == "success"               # the job reads the usage

    untouched = {"diskusage": 7, "disklimit": 9, "bwusage": 11, "bwlimit": 13, "lastupdate": "0000-00-00 00:00:00"}
    writes_before = len(whmcs.db()["writes"])          # WHMCS's own status updates of the commands above
    whmcs.seed_table("tblhosting", [
        {"id": 7033, "userid": 77, "server": whmcs.server_id, "domain": domain, **untouched},
        {"id": 7034, "userid": 77, "server": 99, "domain": "whmcs-usage-other.example", **untouched},
        {"id": 5555, "userid": 78, "server": whmcs.server_id, "domain": "not-at-the-provisioner.example", **untouched},
    ])
    assert whmcs.call("UsageUpdate", whmcs.server(), model=None) == "success"
    rows = {row["id"]: row for row in whmcs.db()["tables"]["tblhosting"]}
    assert rows[7033]["diskusage"] == 512
    assert rows[7033]["disklimit"] == 5 * 10 * 1024               # 5 mailboxes of 10 GB, in MB
    assert rows[7033]["bwusage"] == 11 and rows[7033]["bwlimit"] == 13      # not metered: left alone
    assert dt.datetime.strptime(rows[7033]["lastupdate"], "%Y-%m-%d %H:%M:%S")
    assert {k: rows[7034][k] for k in untouched} == untouched     # another server's service
    assert {k: rows[5555][k] for k in untouched} == untouched     # unknown to the provisioner
    writes = [w for w in whmcs.db()["writes"][writes_before:] if w["table"] == "tblhosting" and w["affected"]]
    assert [w["where"] for w in writes] == [[["id", 7033], ["server", whmcs.server_id]]]
    whmcs.assert_no_secrets_logged()


def test_list_accounts_for_server_sync(whmcs, php_stack):
    params = whmcs.params("7035", "whmcs-sync.example")
    assert whmcs.call("CreateAccount", params) == "success"
    suspended = whmcs.params("7036", "whmcs-sync-suspended.example")
    assert whmcs.call("CreateAccount", suspended) == "success"
    assert whmcs.call("SuspendAccount", {**suspended, "suspendreason": "Overdue on Payment"}) == "success"
    result = whmcs.call("ListAccounts", whmcs.server(), model=None)
    assert result["success"] is True
    by_domain = {row["uniqueIdentifier"]: row for row in result["accounts"]}
    row = by_domain["whmcs-sync.example"]
    # product: the billing product id (matched against configoption2, MetaData ListAccountsProductField).
    assert row["domain"] == "whmcs-sync.example" and row["product"] == "12"
    assert row["email"] == "owner@whmcs-sync.example"
    assert row["status"] == "Active" and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["created"])
    assert set(row) == {"email", "username", "domain", "uniqueIdentifier", "product", "primaryip", "created", "status"}
    assert by_domain["whmcs-sync-suspended.example"]["status"] == "Suspended"
    # A terminated service is nothing to import.
    gone = whmcs.params("7037", "whmcs-sync-gone.example")
    assert whmcs.call("CreateAccount", gone) == "success"
    assert whmcs.call("TerminateAccount", gone) == "success"
    result = whmcs.call("ListAccounts", whmcs.server(), model=None)
    assert "whmcs-sync-gone.example" not in {r["domain"] for r in result["accounts"]}


# --- one-time secrets (an SMTP relay's password) ---------------------------------------------------

def _relay_params(whmcs, sid: str, domain: str):
    return whmcs.params(sid, domain, pid="51", options=RELAY_OPTIONS, custom_fields={})


def test_a_one_time_relay_password_is_saved_into_the_service_password(whmcs, php_stack):
    params = _relay_params(whmcs, "7040", "relay-sender.example")
    model = whmcs.model(add_months(dt.date.today(), 12), cycle="Annually")
    assert whmcs.call("CreateAccount", params, model=model) == "success"
    [update] = [c for c in whmcs.localapi_calls() if c["command"] == "UpdateClientProduct"]
    assert update["values"]["serviceid"] == 7040
    password = update["values"]["servicepassword"]
    assert isinstance(password, str) and len(password) >= 8
    assert password != params["password"]
    activity = whmcs.activity_file.read_text()
    assert "saved the one-time relay_password from the provider into service #7040" in activity
    # Shown once: the next answer about the service (the renewal) carries no secret.
    assert whmcs.call("Renew", params, model=whmcs.model(add_months(dt.date.today(), 24), cycle="Annually")) == "success"
    assert len([c for c in whmcs.localapi_calls() if c["command"] == "UpdateClientProduct"]) == 1
    whmcs.assert_no_secrets_logged(password)


def test_a_relay_password_the_local_api_cannot_save_is_shown_once_on_the_admin_tab(whmcs, php_stack):
    params = _relay_params(whmcs, "7041", "relay-sender-two.example")
    model = whmcs.model(add_months(dt.date.today(), 12), cycle="Annually")
    assert whmcs.call("CreateAccount", params, model=model, localapi="error") == "success"
    [kept] = whmcs.db()["tables"]["mod_provisioner_secrets"]
    assert kept["service_id"] == "7041" and kept["name"] == "relay_password"
    assert kept["value"].startswith("whmcs-encrypted:")               # WHMCS's encrypt()
    fields = whmcs.call("AdminServicesTabFields", params)
    shown = fields["One-time relay password"]
    password = re.match(r"^<code>([^<]+)</code> <strong>Shown only now", shown).group(1)
    assert password not in kept["value"]
    assert "One-time relay password" not in whmcs.call("AdminServicesTabFields", params)
    assert whmcs.db()["tables"]["mod_provisioner_secrets"] == []
    whmcs.assert_no_secrets_logged(password)
