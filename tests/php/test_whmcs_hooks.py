"""hooks.php with real php against a running provisioner: billing edits sent as service.update,
an upgrade checked at checkout, the sidebar link, usage metrics and the configurable-option loader."""
from __future__ import annotations

import datetime as dt

import requests

from tests.php.whmcs import Whmcs, add_months


def _mailboxes(stack, sid: str, count: int) -> None:
    [account] = stack.accounts_for(sid)
    for n in range(count):
        r = requests.post(f"{stack.sim_url}/api/v1/accounts/{account['id']}/mailboxes", timeout=10,
                          json={"local_part": f"box{n}", "password": "Mailbox-Pw-1234"})
        assert r.status_code == 201, r.text


def _detail(stack, sid: str) -> dict:
    return stack.admin_get(f"/api/v1/services/{sid}").json()


def test_a_client_profile_edit_reaches_the_provisioner(whmcs: Whmcs, php_stack):
    stack, sid = php_stack, "7201"
    params = whmcs.params(sid, "whmcs-clientedit.example")
    assert whmcs.call("CreateAccount", params) == "success"
    other = whmcs.params("7202", "whmcs-clientedit-other.example", client={"userid": 78, "id": 78})
    assert whmcs.call("CreateAccount", {**other, "userid": 78}) == "success"
    # The client changes their e-mail address and company in WHMCS.
    edited = {**params, "clientsdetails": {**params["clientsdetails"], "email": "new-owner@example.org",
                                           "companyname": "Example AG"}}
    whmcs.register(edited)
    assert whmcs.call("hook:ClientEdit", {"userid": 77, "email": "new-owner@example.org"}, model=None) == [None]
    client = _detail(stack, sid)["client"]
    assert client["email"] == "new-owner@example.org" and client["company"] == "Example AG"
    [sent] = [whmcs.sent_body(e) for e in whmcs.hook_entries("Update")]
    assert sent["type"] == "service.update" and sent["service"]["id"] == sid
    assert _detail(stack, "7202")["client"]["id"] == "78"            # another client's service: untouched
    assert whmcs.commands() == []
    assert any("client profile edited, service #7201: update sent." in line for line in whmcs.activity())


def test_an_admins_service_edit_sends_due_date_cycle_and_auto_suspend(whmcs: Whmcs, php_stack):
    stack, sid = php_stack, "7203"
    params = whmcs.params(sid, "whmcs-serviceedit.example")
    assert whmcs.call("CreateAccount", params) == "success"
    due = add_months(dt.date.today(), 12).isoformat()
    until = add_months(dt.date.today(), 2).isoformat()
    whmcs.set_hosting(sid, nextduedate=due, billingcycle="Annually", overideautosuspend=1, overidesuspenduntil=until)
    whmcs.call("hook:AdminServiceEdit", {"userid": 77, "serviceid": int(sid)}, model=None)
    desired = _detail(stack, sid)["desired"]
    assert desired["next_due_date"] == due and desired["billing_cycle"] == "annually"
    assert desired["auto_suspend"] == {"enabled": False, "until": until}
    # A new domain (the sandbox upstream renames in place) and the override lifted.
    whmcs.set_hosting(sid, domain="renamed.example", overideautosuspend=0)
    whmcs.call("hook:AdminServiceEdit", {"userid": 77, "serviceid": int(sid)}, model=None)
    detail = _detail(stack, sid)
    assert detail["domain"] == "renamed.example"
    assert detail["desired"]["auto_suspend"] == {"enabled": True, "until": None}
    assert whmcs.commands() == []
    # A service of another module, or not live: no event.
    whmcs.set_hosting(sid, domainstatus="Terminated")
    events = stack.admin_get(f"/api/v1/events?service_id={sid}").json()["total"]
    whmcs.call("hook:AdminServiceEdit", {"userid": 77, "serviceid": int(sid)}, model=None)
    assert stack.admin_get(f"/api/v1/events?service_id={sid}").json()["total"] == events


def test_a_downgrade_below_usage_is_refused_at_checkout_before_payment(whmcs: Whmcs, php_stack):
    stack, sid = php_stack, "7204"
    params = whmcs.params(sid, "whmcs-checkout.example")
    assert whmcs.call("CreateAccount", params) == "success"
    _mailboxes(stack, sid, 3)
    assert whmcs.call("Renew", params, model=whmcs.model(add_months(dt.date.today(), 2))) == "success"
    whmcs.seed_table("tblproductconfigoptions", [
        {"id": 101, "gid": 1, "optionname": "Total Mailboxes|Mailboxes", "optiontype": 4},
        {"id": 102, "gid": 1, "optionname": "Mailbox Quota (GB)|Space per mailbox", "optiontype": 1}])
    whmcs.seed_table("tblproductconfigoptionssub", [{"id": 501, "configid": 102, "optionname": "25|25 GB"}])
    events_before = stack.admin_get(f"/api/v1/events?service_id={sid}").json()["total"]

    refused = whmcs.call("hook:ShoppingCartValidateUpgrade", {"id": int(sid), "pid": 12}, model=None,
                         post={"configoption": {"101": "2", "102": "501"}})
    assert refused == [["Diese Änderung ist noch nicht möglich: The new package does not fit current usage: "
                        "3 mailboxes are in use, above the new limit of 2."]]
    fits = whmcs.call("hook:ShoppingCartValidateUpgrade", {"id": int(sid), "pid": 12}, model=None,
                      post={"configoption": {"101": "3", "102": "501"}})
    assert fits == [[]]
    # Checking stored nothing: no event, nothing changed upstream, nothing in flight.
    assert stack.admin_get(f"/api/v1/events?service_id={sid}").json()["total"] == events_before
    assert stack.accounts_for(sid)[0]["limits"]["mailboxes"] == 5
    assert whmcs.commands() == []
    validate = [e for e in whmcs.log_entries() if e["action"] == "ValidateUpgrade"]
    assert len(validate) == 2 and '"Total Mailboxes":2' in validate[0]["request"]
    assert '"Mailbox Quota (GB)":25' in validate[0]["request"]


def test_the_sidebar_links_to_mailbox_management(whmcs: Whmcs, php_stack):
    sid = "7205"
    params = whmcs.params(sid, "whmcs-sidebar.example")
    assert whmcs.call("CreateAccount", params) == "success"
    context = {"service": {"id": int(sid), "domainstatus": "Active", "packageid": 12},
               "client": {"language": "english"}}
    sidebar = whmcs.call("hook:ClientAreaPrimarySidebar", {}, model=None, menu_context=context)
    actions = next(c for c in sidebar["children"] if c["name"] == "Service Details Actions")
    assert actions["children"] == [{"name": "provisioner-manage-mailboxes", "children": [], "attributes": {
        "label": "Manage mailboxes", "order": 5,
        "uri": f"clientarea.php?action=productdetails&id={sid}&dosinglesignon=1"}}]
    suspended = {**context, "service": {**context["service"], "domainstatus": "Suspended"}}
    sidebar = whmcs.call("hook:ClientAreaPrimarySidebar", {}, model=None, menu_context=suspended)
    assert all(not c["children"] for c in sidebar["children"])


def test_usage_metrics_report_mailboxes_per_service(whmcs: Whmcs, php_stack):
    stack, sid = php_stack, "7206"
    domain = "whmcs-metrics.example"
    params = whmcs.params(sid, domain)
    assert whmcs.call("CreateAccount", params) == "success"
    _mailboxes(stack, sid, 2)
    assert whmcs.call("Renew", params, model=whmcs.model(add_months(dt.date.today(), 2))) == "success"
    metrics = whmcs.call("MetricProvider:metrics", whmcs.server(), model=None)
    assert [m["system_name"] for m in metrics.values()] == [
        "mailboxes", "enhanced_mailboxes", "aliases", "distribution_lists", "storage_mb"]
    assert metrics["mailboxes"]["type"] == "snapshot" and metrics["mailboxes"]["units"]["single"] == "Mailbox"
    assert metrics["storage_mb"]["units"]["class"].endswith("MegaBytes")
    usage = whmcs.call("MetricProvider:usage", whmcs.server(), model=None)
    assert usage[domain]["mailboxes"]["usage"]["value"] == 2.0       # keyed by the domain, as WHMCS matches it
    assert usage[domain]["enhanced_mailboxes"]["usage"]["value"] == 0.0
    one = whmcs.call("MetricProvider:tenantUsage", {**whmcs.server(), "tenant": domain}, model=None)
    assert one["mailboxes"]["usage"]["value"] == 2.0
    unknown = whmcs.call("MetricProvider:tenantUsage", {**whmcs.server(), "tenant": "nobody.example"}, model=None)
    assert all(m["usage"] is None for m in unknown.values())


def test_the_option_loader_creates_exactly_the_products_options(whmcs: Whmcs, php_stack):
    stack = php_stack
    whmcs.register(whmcs.params("7207", "whmcs-options.example"))
    whmcs.seed_table("tblcurrencies", [{"id": 1, "code": "EUR"}, {"id": 2, "code": "USD"}])
    definition = next(p for p in stack.admin_get("/api/v1/products?per_page=100").json()["items"]
                      if "12" in p["billing_product_ids"])
    expected = {spec["option"]: spec for spec in definition["limits"].values() if spec.get("option")}
    for _ in range(2):                   # again: updated in place, nothing doubled
        answers = whmcs.call("hook:AdminProductConfigFieldsSave", {"pid": 12}, model=None,
                             post={"packageconfigoption": {"3": "on"}})
        assert answers[0]["ok"] is True, answers
    tables = whmcs.db()["tables"]
    [group] = tables["tblproductconfiggroups"]
    assert group["name"] == f"provisioner: {definition['id']}"
    assert tables["tblproductconfiglinks"] == [{"gid": group["id"], "pid": 12}]
    options = {o["optionname"]: o for o in tables["tblproductconfigoptions"]}
    assert set(options) == set(expected)
    for name, spec in expected.items():
        assert options[name]["optiontype"] == 4
        assert (options[name]["qtyminimum"], options[name]["qtymaximum"]) == (spec["min"], spec["max"])
    assert len(tables["tblproductconfigoptionssub"]) == len(expected)
    assert len(tables["tblpricing"]) == 2 * len(expected)             # one free row per currency
    # The tick is an action: cleared after it ran.
    assert next(p for p in tables["tblproducts"] if p["id"] == 12)["configoption3"] == ""
    # Not ticked: nothing happens.
    assert whmcs.call("hook:AdminProductConfigFieldsSave", {"pid": 12}, model=None) == [None]
