"""WHMCS catches up with jobs that outlast a module call: the provisioner's callbacks, received by
the module's callback.php (served by ``php -S`` from a WHMCS root), and the cron catch-up when a
callback never comes. The WHMCS stand-in records every local API call (ModuleCreate, SendEmail),
to-do and status, so each test asserts what WHMCS ends up showing."""
from __future__ import annotations

import datetime as dt

import requests

from tests.e2e.procs import wait_until
from tests.php.whmcs import WELCOME, Whmcs, encrypt, post_callback

SLOW = {"latency_ms": 2500}          # every upstream call takes longer than the module's wait


def wait_for(condition, what: str, timeout: float = 45) -> None:
    wait_until(condition, timeout=timeout, what=what)


def _queued_create(whmcs: Whmcs, stack, sid: str, domain: str) -> tuple[dict, str]:
    params = {**whmcs.params(sid, domain), "configoption1": "1"}
    stack.sim_faults(**SLOW)
    result = whmcs.call("CreateAccount", params)
    assert result.startswith("Not a failure: the provider is still setting this service up (job "), result
    job_id = result.split("(job ", 1)[1].split(")", 1)[0]
    assert whmcs.hosting(sid)["domainstatus"] == "Pending"
    assert whmcs.emails() == []
    return params, job_id


def test_a_slow_create_ends_active_with_one_welcome_email_after_itspost_callback(whmcs, php_stack):
    stack, sid = php_stack, "7101"
    params, job_id = _queued_create(whmcs, stack, sid, "whmcs-late.example")
    stack.clear_faults()

    # The job finishes; the provisioner's job.succeeded reaches callback.php, which runs
    # WHMCS's own ModuleCreate (answered without a second request) and sends the welcome e-mail.
    wait_for(lambda: whmcs.hosting(sid)["domainstatus"] == "Active", "the service to become Active")
    wait_for(lambda: whmcs.emails(), "the welcome e-mail")
    assert whmcs.emails() == [{"messagename": WELCOME, "id": int(sid)}]
    creates = [c for c in whmcs.localapi_calls() if c["command"] == "ModuleCreate"]
    assert creates == [{"command": "ModuleCreate", "values": {"serviceid": int(sid)}}]
    assert len(whmcs.hook_entries("CreateAccount")) == 1           # ModuleCreate sent nothing again
    assert len(stack.accounts_for(sid)) == 1
    assert whmcs.commands() == []
    assert "Module CreateAccount Successful - Service ID: 7101" in whmcs.activity()

    # A redelivery of that callback, or another callback about the same job: nothing more happens.
    [note] = stack.admin_get(f"/api/v1/notifications?service_id={sid}&type=job.succeeded").json()["items"]
    body = {"type": "job.succeeded", "id": note["id"], "occurred_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "service_id": sid, "source": "default",
            "data": {"job_id": job_id, "state": "succeeded", "event_type": "service.create",
                     "attempts": stack.job(job_id)["attempts"]}}
    assert post_callback(stack, body, msg_id=note["id"]).json() == {"ok": True, "duplicate": True}
    assert post_callback(stack, body).json() == {"ok": True, "done": "already applied"}
    # The cron finds nothing left to catch up.
    whmcs.call("hook:AfterCronJob", {}, model=None)
    assert len(whmcs.emails()) == 1 and whmcs.todos() == []
    whmcs.assert_no_secrets_logged(stack.callback_secret)


def test_with_the_callback_lost_the_cron_catches_up_once(whmcs, php_stack):
    stack, sid = php_stack, "7102"
    params, job_id = _queued_create(whmcs, stack, sid, "whmcs-lost.example")
    # WHMCS refuses every callback (its server's callback secret is not the one signing them).
    whmcs.update_db(lambda data: data["tables"]["tblservers"][0].update(username="whsec_" + "V1JPTkc=" * 4))
    stack.clear_faults()
    stack.wait_job(job_id, timeout=60)
    wait_for(lambda: stack.admin_get(f"/api/v1/notifications?service_id={sid}&type=job.succeeded").json()
             ["items"][0]["last_status"] == 401, "the callback to be refused")
    assert whmcs.hosting(sid)["domainstatus"] == "Pending"

    # The cron right away: the callback may still come, so it waits a minute first.
    assert whmcs.call("hook:AfterCronJob", {}, model=None) == [None]
    assert whmcs.hosting(sid)["domainstatus"] == "Pending"
    # A minute later: it asks the provisioner and brings WHMCS level.
    earlier = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=2)).strftime("%Y-%m-%d %H:%M:%S")
    whmcs.update_db(lambda data: [row.update(updated_at=earlier) for row in data["tables"]["mod_provisioner_commands"]])
    whmcs.call("hook:AfterCronJob", {}, model=None)
    assert whmcs.hosting(sid)["domainstatus"] == "Active"
    assert whmcs.emails() == [{"messagename": WELCOME, "id": int(sid)}]
    assert whmcs.commands() == []
    [outcome] = whmcs.db()["tables"]["mod_provisioner_outcomes"]
    assert outcome["job_id"] == job_id and outcome["via"] == "cron"

    # The callback arrives after all (the secret fixed): applied already, no second e-mail.
    whmcs.update_db(lambda data: data["tables"]["tblservers"][0].update(username=stack.callback_secret))
    body = {"type": "job.succeeded", "id": "late", "service_id": sid, "source": "default",
            "data": {"job_id": job_id, "state": "succeeded", "event_type": "service.create",
                     "attempts": stack.job(job_id)["attempts"]}}
    assert post_callback(stack, body).json() == {"ok": True, "done": "already applied"}
    whmcs.call("hook:AfterCronJob", {}, model=None)
    assert len(whmcs.emails()) == 1


def test_a_create_retried_after_a_failure_is_heard_when_it_succeeds_late(whmcs, php_stack):
    """The failure was shown (Module Queue); the Retry's job then outlasts the wait: its success
    is a new outcome of the same job, applied when it comes."""
    stack, sid = php_stack, "7107"
    params = whmcs.params(sid, "whmcs-retry-late.example")
    stack.sim_faults(error_rate=1.0)
    failed = whmcs.call("CreateAccount", params)
    assert "at the provisioner failed after" in failed, failed
    wait_for(lambda: any(o["state"] == "failed" for o in whmcs.db()["tables"].get("mod_provisioner_outcomes", [])),
             "the job.failed callback")
    assert whmcs.todos() == []                         # shown already: no to-do
    assert whmcs.commands()[0]["state"] == "open"
    stack.sim_faults(reset=True, **SLOW)
    retried = whmcs.call("CreateAccount", {**params, "configoption1": "1"})
    assert retried.startswith("Not a failure"), retried
    stack.clear_faults()
    wait_for(lambda: whmcs.hosting(sid)["domainstatus"] == "Active", "the service to become Active")
    wait_for(lambda: whmcs.emails(), "the welcome e-mail")
    assert len(whmcs.emails()) == 1 and whmcs.todos() == []
    assert len({whmcs.header(e, "webhook-id") for e in whmcs.hook_entries("CreateAccount")}) == 1


def test_a_late_failure_opens_a_todo_with_the_providers_message(whmcs, php_stack):
    stack, sid = php_stack, "7103"
    params = whmcs.params(sid, "whmcs-late-failure.example")
    assert whmcs.call("CreateAccount", params) == "success"
    stack.sim_faults(latency_ms=1500, error_rate=1.0)
    # Accepted, still running after the wait: the suspension stands in WHMCS.
    assert whmcs.call("SuspendAccount", {**params, "configoption1": "1", "suspendreason": "Overdue"}) == "success"
    assert whmcs.hosting(sid)["domainstatus"] == "Suspended"
    wait_for(lambda: whmcs.todos(), "the to-do for the failed suspension", timeout=90)
    [todo] = whmcs.todos()
    assert todo["title"] == f"Provisioner: Suspend failed for service #{sid}"
    assert todo["status"] == "New" and "Job " in todo["description"] and "reported via callback" in todo["description"]
    assert "WHMCS already shows the change" in todo["description"]
    assert whmcs.commands() == []
    stack.clear_faults()


def test_a_client_password_change_on_a_slow_upstream_keeps_both_sides_equal(whmcs, php_stack):
    stack, sid = php_stack, "7104"
    params = whmcs.params(sid, "whmcs-password.example", password="First-Pw-2026ab")
    assert whmcs.call("CreateAccount", params) == "success"
    stack.sim_faults(**SLOW)
    whmcs.passwords.add("Second-Pw-2026cd")
    changed = {**params, "password": "Second-Pw-2026cd", "configoption1": "1"}
    assert whmcs.call("ChangePassword", changed) == "success"      # WHMCS keeps the new password
    stack.clear_faults()
    [command] = whmcs.commands()
    assert stack.wait_job(command["job_id"], timeout=60)["state"] == "succeeded"
    # The upstream got the password WHMCS shows (the provisioner holds none still to apply).
    assert stack.admin_get(f"/api/v1/services/{sid}").json()["password_pending"] is False
    assert whmcs.hosting(sid)["password"] == encrypt("Second-Pw-2026cd")

    # Failing at the provider within the wait: still no restore, the provisioner applies it later.
    stack.sim_faults(error_rate=1.0)
    whmcs.passwords.add("Third-Pw-2026ef")
    assert whmcs.call("ChangePassword", {**params, "password": "Third-Pw-2026ef"}) == "success"
    assert whmcs.hosting(sid)["password"] == encrypt("Third-Pw-2026ef")
    assert stack.admin_get(f"/api/v1/services/{sid}").json()["password_pending"] is True
    wait_for(lambda: whmcs.todos(), "the to-do for the failed password change")
    assert whmcs.todos()[0]["title"] == f"Provisioner: Change password failed for service #{sid}"
    stack.clear_faults()
    whmcs.assert_no_secrets_logged()


def test_idn_domains_are_sent_as_punycode(whmcs, php_stack):
    stack, sid = php_stack, "7105"
    params = whmcs.params(sid, "Bücher-Stübchen.example")
    assert whmcs.call("CreateAccount", params) == "success"
    ascii_domain = "bücher-stübchen.example".encode("idna").decode()
    assert ascii_domain.startswith("xn--")
    assert stack.admin_get(f"/api/v1/services/{sid}").json()["domain"] == ascii_domain
    assert stack.accounts_for(sid)[0]["domain"] == ascii_domain
    # Without PHP's intl extension the admin is told what to do, before anything is sent.
    built = whmcs.call("EventBuilder::build:CreateAccount", params, bare=True)
    assert built == {"error": "The domain \"Bücher-Stübchen.example\" is an internationalised name: sending it "
                              "needs PHP's intl extension (Debian: php-intl) on this WHMCS server, to write it as "
                              "punycode (xn--...). Install it, or enter the domain in punycode."}
    # Server sync shows it as WHMCS stores it.
    rows = whmcs.call("ListAccounts", whmcs.server(), model=None)["accounts"]
    assert "bücher-stübchen.example" in {r["domain"] for r in rows}


def test_callbacks_that_are_not_this_servers_are_refused(whmcs, php_stack):
    stack = php_stack
    whmcs.register(whmcs.params("7106", "whmcs-foreign.example"))
    body = {"type": "job.failed", "id": "x", "service_id": "7106", "source": "default",
            "data": {"job_id": "f" * 32, "state": "failed", "message": "boom"}}
    assert post_callback(stack, body, secret="whsec_" + "T1RIRVI=" * 4).status_code == 401
    stale = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    assert post_callback(stack, body, timestamp=stale).json()["error"]["code"] == "stale_timestamp"
    assert requests.get(stack.callback_url, timeout=10).status_code == 405
    # Signed right, but about a service of another server: nothing is done.
    whmcs.set_hosting("7106", server=99)
    assert post_callback(stack, body).json() == {"ok": True, "ignored": "not a service of this server"}
    assert whmcs.todos() == []


def test_a_callback_faster_than_the_commands_answer_waits_for_it(whmcs, php_stack):
    """The job may fail, and its callback arrive, before the module call that sent the command
    has read its answer: that answer decides what WHMCS was shown, so the callback is
    answered 503 and taken when it comes again."""
    stack, sid = php_stack, "7108"
    whmcs.register(whmcs.params(sid, "whmcs-race.example"))
    now = dt.datetime.now(dt.timezone.utc)
    row = {"webhook_id": "msg_whmcs_7108_suspend_00000000000000aa", "service_id": sid, "server_id": 3,
           "action": "suspend", "fingerprint": "0" * 64, "occurred_at": now.isoformat(), "state": "sent",
           "job_id": None, "updated_at": now.strftime("%Y-%m-%d %H:%M:%S")}
    whmcs.call("hook:AfterCronJob", {}, model=None)               # makes the module's tables
    whmcs.update_db(lambda data: data["tables"]["mod_provisioner_commands"].append(row))
    body = {"type": "job.failed", "id": "race", "service_id": sid, "source": "default",
            "data": {"job_id": "a" * 32, "state": "failed", "attempts": 3, "event_type": "service.suspend",
                     "webhook_id": row["webhook_id"], "message": "The e-mail platform is temporarily unavailable."}}
    early = post_callback(stack, body, msg_id="ntf_race")
    assert early.status_code == 503 and early.json()["error"]["code"] == "answer_pending"
    assert whmcs.todos() == [] and not whmcs.db()["tables"].get("mod_provisioner_outcomes")
    # The call ended without marking it (it died): after a while the outcome is taken.
    stale = (now - dt.timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")
    whmcs.update_db(lambda data: data["tables"]["mod_provisioner_commands"][0].update(updated_at=stale))
    assert post_callback(stack, body, msg_id="ntf_race").json() == {"ok": True, "done": "to-do opened"}
    [todo] = whmcs.todos()
    assert todo["title"] == f"Provisioner: Suspend failed for service #{sid}"
    assert todo["description"].startswith("The e-mail platform is temporarily unavailable.")


def test_a_slow_relay_create_saves_its_one_time_password_when_it_ends(whmcs, php_stack):
    """The relay password the provider generates is shown once: a create that ends after the
    module call answered still gets it into the service (read with the job's outcome)."""
    stack, sid = php_stack, "7109"
    params = {**whmcs.params(sid, "relay-late.example", pid="51", custom_fields={},
                             options={"Sending Type": "transactional", "Messages": 10000, "Sender Domains": 1}),
              "configoption1": "1"}
    r = requests.post(f"{stack.qbox_url}/_sim/faults", json={"latency_ms": 2500}, timeout=10)
    assert r.status_code == 200, r.text
    try:
        result = whmcs.call("CreateAccount", params, model=whmcs.model(cycle="Annually"))
        assert result.startswith("Not a failure"), result
    finally:
        requests.post(f"{stack.qbox_url}/_sim/faults", json={"reset": True}, timeout=10)
    wait_for(lambda: whmcs.hosting(sid)["domainstatus"] == "Active", "the relay to become Active")
    wait_for(lambda: whmcs.emails(), "the welcome e-mail")
    [update] = [c for c in whmcs.localapi_calls() if c["command"] == "UpdateClientProduct"]
    password = update["values"]["servicepassword"]
    assert isinstance(password, str) and len(password) >= 8 and password != params["password"]
    assert whmcs.hosting(sid)["password"] == encrypt(password)
    whmcs.assert_no_secrets_logged(password)
