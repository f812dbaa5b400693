"""The WHMCS module's lifecycle commands, run by real php against real provisioner processes."""
from __future__ import annotations

import datetime as dt
import re

import requests

from tests.php.whmcs import Whmcs, add_months

WEBHOOK_ID = re.compile(r"^msg_whmcs_(\d+)_([a-z_]+)_[0-9a-f]{16}$")


def _account(stack, service_id: str) -> dict:
    accounts = stack.accounts_for(service_id, live=False)
    assert len(accounts) == 1, accounts
    return accounts[0]


def _last_hook(whmcs: Whmcs, action: str) -> dict:
    entries = whmcs.hook_entries(action)
    assert entries, f"no {action} request in the module log"
    return entries[-1]


def test_full_lifecycle_through_every_module_command(whmcs, php_stack):
    stack, sid, domain = php_stack, "7001", "whmcs-lifecycle.example"
    due = add_months(dt.date.today(), 1)
    params = whmcs.params(sid, domain, password="Create-Pw-4711x")

    # Create: the account exists once upstream with the configurable options as limits.
    assert whmcs.call("CreateAccount", params, model=whmcs.model(due)) == "success"
    account = _account(stack, sid)
    assert account["status"] == "active" and account["domain"] == domain
    assert account["limits"]["mailboxes"] == 5 and account["limits"]["mailbox_quota_gb"] == 10
    assert account["limits"]["aliases"] == 2 and account["limits"]["distribution_lists"] == 1
    assert account["native"]["paid_until"] == due.isoformat()
    assert account["native"]["owner"]["email"] == f"owner@{domain}"
    sent = whmcs.sent_body(_last_hook(whmcs, "CreateAccount"))
    assert sent["type"] == "service.create"
    assert sent["service"] == {
        "id": sid, "product_id": "12", "domain": domain, "password": "********",
        "config_options": {"Total Mailboxes": 5, "Total Enhanced Mailboxes": 0, "Mailbox Quota (GB)": 10,
                           "Total Aliases": 2, "Total Distribution Lists": 1},
        "custom_fields": {"Notes for support": ""}, "billing_cycle": "monthly",
        "next_due_date": due.isoformat()}
    # (the body is read back from the module log, where the password was masked before writing)
    assert sent["client"] == {
        "id": "77", "email": f"owner@{domain}", "first_name": "Ada", "last_name": "Lovelace",
        "company": "Example GmbH", "country": "DE", "address": "Unter den Linden 1, Aufgang B",
        "city": "Berlin", "state": "Berlin", "postcode": "10117", "phone": "+49.3012345678", "language": "de"}
    # The Create and its answer in the module log, one entry per HTTP request.
    create = _last_hook(whmcs, "CreateAccount")
    assert create["response"].startswith("HTTP 200") and create["processed"]["job"]["state"] == "succeeded"
    assert whmcs.header(create, "Prefer") == "wait=20"

    # Suspend with WHMCS's reason.
    assert whmcs.call("SuspendAccount", {**params, "suspendreason": "Overdue on Payment"},
                      model=whmcs.model(due)) == "success"
    account = _account(stack, sid)
    assert account["status"] == "suspended" and account["native"]["suspend_reason"] == "Overdue on Payment"
    assert whmcs.sent_body(_last_hook(whmcs, "SuspendAccount"))["service"]["suspend_reason"] == "Overdue on Payment"

    assert whmcs.call("UnsuspendAccount", params, model=whmcs.model(due)) == "success"
    assert _account(stack, sid)["status"] == "active"

    # Change package: an upgrade of the configurable options.
    bigger = whmcs.params(sid, domain, password="Create-Pw-4711x",
                          options={"Total Mailboxes": 8, "Total Enhanced Mailboxes": 1, "Mailbox Quota (GB)": 25,
                                   "Total Aliases": 10, "Total Distribution Lists": 2})
    assert whmcs.call("ChangePackage", bigger, model=whmcs.model(due)) == "success"
    limits = _account(stack, sid)["limits"]
    assert (limits["mailboxes"], limits["enhanced_mailboxes"], limits["mailbox_quota_gb"], limits["aliases"]) == (8, 1, 25, 10)

    # Renew: the invoice was paid, the due date moved a month on (Carbon dates in the model).
    later = add_months(due, 1)
    assert whmcs.call("Renew", bigger, model=whmcs.model(later), model_dates="carbon") == "success"
    assert _account(stack, sid)["native"]["paid_until"] == later.isoformat()
    assert whmcs.sent_body(_last_hook(whmcs, "Renew"))["service"]["next_due_date"] == later.isoformat()

    # Change password: applied upstream (an account update), nothing left pending.
    calls_before = stack.sim_calls()
    new_password = {**bigger, "password": "Changed-Pw-0815y"}
    whmcs.passwords.add("Changed-Pw-0815y")
    assert whmcs.call("ChangePassword", new_password, model=whmcs.model(later)) == "success"
    calls_after = stack.sim_calls()
    assert sum(calls_after.values()) > sum(calls_before.values())
    detail = stack.admin_get(f"/api/v1/services/{sid}").json()
    assert detail["password_pending"] is False
    assert detail["jobs"][0]["reason"] == "service.change_password" and detail["jobs"][0]["state"] == "succeeded"

    assert whmcs.call("TerminateAccount", new_password, model=whmcs.model(later)) == "success"
    assert _account(stack, sid)["status"] == "deleted"

    # Every command was its own event: a new webhook-id each, named after service and action.
    ids = [whmcs.header(e, "webhook-id") for e in whmcs.hook_entries()]
    actions = [WEBHOOK_ID.match(i).group(2) for i in ids]
    assert actions == ["create", "suspend", "unsuspend", "change_package", "renew", "change_password", "terminate"]
    assert len(set(ids)) == 7 and all(WEBHOOK_ID.match(i).group(1) == sid for i in ids)
    events = stack.admin_get(f"/api/v1/events?service_id={sid}&per_page=50").json()
    assert events["total"] == 7
    assert {e["webhook_id"] for e in events["items"]} == set(ids)
    # Nothing in flight is left behind, and WHMCS shows what each command did.
    assert whmcs.commands() == []
    assert whmcs.hosting(sid)["domainstatus"] == "Terminated"
    whmcs.assert_no_secrets_logged()


def test_a_second_press_after_success_is_a_new_event_and_changes_nothing(whmcs, php_stack):
    sid, domain = "7007", "whmcs-again.example"
    params = whmcs.params(sid, domain)
    assert whmcs.call("CreateAccount", params) == "success"
    assert whmcs.call("SuspendAccount", {**params, "suspendreason": "Abuse"}) == "success"
    assert whmcs.call("SuspendAccount", {**params, "suspendreason": "Abuse"}) == "success"
    first, second = [whmcs.header(e, "webhook-id") for e in whmcs.hook_entries("SuspendAccount")]
    assert first != second                       # a new command, not a retry of a finished one
    assert len(php_stack.accounts_for(sid)) == 1
    assert _account(php_stack, sid)["status"] == "suspended"


def test_a_downgrade_below_usage_is_refused_with_a_sentence(whmcs, php_stack):
    stack, sid, domain = php_stack, "7002", "whmcs-downgrade.example"
    params = whmcs.params(sid, domain)
    assert whmcs.call("CreateAccount", params) == "success"
    account = _account(stack, sid)
    for local in ("info", "sales", "support"):
        r = requests.post(f"{stack.sim_url}/api/v1/accounts/{account['id']}/mailboxes", timeout=10,
                          json={"local_part": local, "password": "Mailbox-Pw-1234"})
        assert r.status_code == 201, r.text
    # Any job refreshes the usage the provisioner knows: the renewal after a paid invoice.
    assert whmcs.call("Renew", params, model=whmcs.model(add_months(dt.date.today(), 2))) == "success"

    smaller = whmcs.params(sid, domain, options={"Total Mailboxes": 2, "Total Enhanced Mailboxes": 0,
                                                 "Mailbox Quota (GB)": 10, "Total Aliases": 2,
                                                 "Total Distribution Lists": 1})
    result = whmcs.call("ChangePackage", smaller)
    assert result == "The new package does not fit current usage: 3 mailboxes are in use, above the new limit of 2."
    assert _account(stack, sid)["limits"]["mailboxes"] == 5          # unchanged upstream
    # Refused: nothing was stored under that webhook-id, and nothing is left in flight.
    assert whmcs.commands() == []

    fits = whmcs.params(sid, domain, options={"Total Mailboxes": 3, "Total Enhanced Mailboxes": 0,
                                              "Mailbox Quota (GB)": 10, "Total Aliases": 2,
                                              "Total Distribution Lists": 1})
    assert whmcs.call("ChangePackage", fits) == "success"
    assert _account(stack, sid)["limits"]["mailboxes"] == 3
    whmcs.assert_no_secrets_logged()


def test_errors_read_as_sentences(whmcs, php_stack):
    # An option out of range, naming the option.
    too_many = whmcs.params("7008", "whmcs-errors.example", options={"Total Mailboxes": 20000})
    assert whmcs.call("CreateAccount", too_many) == (
        "Configurable option(s) out of range: Total Mailboxes. "
        "(Total Mailboxes: must be between 0 and 10000 (got 20000).)")
    # A product the provisioner does not know.
    unknown = whmcs.params("7008", "whmcs-errors.example", pid="999")
    result = whmcs.call("CreateAccount", unknown)
    assert result.startswith("No product is configured for billing product id '999'. Add \"999\" to billing_product_ids")
    # A command for a service that was never created.
    result = whmcs.call("SuspendAccount", whmcs.params("7009", "whmcs-never.example"))
    assert result == "Service '7009' was never created; send service.create first. Run Create for this service first."
    # Terminating one that was never created: nothing to do.
    assert whmcs.call("TerminateAccount", whmcs.params("7009", "whmcs-never.example")) == "success"
    # No domain on a create: said before anything is sent.
    result = whmcs.call("CreateAccount", whmcs.params("7009", ""))
    assert result.startswith("This service has no domain")
    # A wrong webhook secret.
    wrong = {**whmcs.params("7009", "whmcs-never.example"),
             "serverpassword": "whsec_" + "QUJD" * 8}
    result = whmcs.call("SuspendAccount", wrong)
    assert result == ("No valid signature for this body and webhook-id. Check that the server's Password is one of "
                      "the webhook secrets of this WHMCS's billing source at the provisioner (billing.yaml, or "
                      "PROVISIONER_WEBHOOK_SECRETS).")
    whmcs.assert_no_secrets_logged("whsec_" + "QUJD" * 8)


def test_a_fixed_limit_change_is_refused_with_the_providers_sentence(whmcs, php_stack):
    """A Qboxmail relay's sending type is fixed at creation: intake refuses the change
    (nothing stored), and the module shows the refusal with what to do."""
    sid, domain = "7010", "whmcs-relay-fixed.example"
    relay = {"pid": "51", "custom_fields": {}}
    params = {**whmcs.params(sid, domain, options={"Sending Type": "transactional", "Messages": 10000,
                                                   "Sender Domains": 1}, **relay), "configoption1": "1"}
    assert whmcs.call("CreateAccount", params, model=whmcs.model(cycle="Annually")) == "success"
    promotional = {**whmcs.params(sid, domain, options={"Sending Type": "promotional", "Messages": 10000,
                                                        "Sender Domains": 1}, **relay), "configoption1": "1"}
    result = whmcs.call("ChangePackage", promotional, model=whmcs.model(cycle="Annually"))
    assert result == ("The e-mail platform (qboxmail) cannot change an existing account's relay_type "
                      "(transactional to promotional); order a new service instead. Keep that option as it "
                      "is, or terminate this service and order a new one.")
    assert whmcs.commands() == []
