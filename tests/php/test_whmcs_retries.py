"""Failures and the Module Queue: the same call again re-sends the same webhook-id; a job
still running is not a failure to WHMCS."""
from __future__ import annotations

import re

from tests.e2e.procs import free_port
from tests.php.whmcs import post_callback

FAILED = re.compile(r"^(?P<message>.+) \(Job (?P<job>[0-9a-f]{32}) at the provisioner failed after (?P<n>\d+) attempts; "
                    r"once the cause is fixed, use Retry in the Module Queue, or run the command again, to run the "
                    r"same job again\.\)$")
QUEUED = re.compile(r"^Not a failure: the provider is still setting this service up \(job (?P<job>[0-9a-f]{32})\)\. "
                    r"WHMCS will make it Active and send the welcome e-mail when it is ready; there is nothing to do "
                    r"now\.")


def _ids(whmcs, action: str) -> list[str]:
    return [whmcs.header(e, "webhook-id") for e in whmcs.hook_entries(action)]


def _status(stack, sid: str) -> str:
    [account] = stack.accounts_for(sid)
    return account["status"]


def _events(stack, sid: str, kind: str) -> int:
    return stack.admin_get(f"/api/v1/events?service_id={sid}&type={kind}").json()["total"]


def test_a_failing_upstream_fails_the_job_and_the_module_queue_retry_succeeds(whmcs, php_stack):
    stack, sid = php_stack, "7004"
    params = whmcs.params(sid, "whmcs-faults.example")
    assert whmcs.call("CreateAccount", params) == "success"
    suspend = {**params, "suspendreason": "Overdue on Payment"}

    stack.sim_faults(error_rate=1.0)            # every upstream call fails with a 5xx
    result = whmcs.call("SuspendAccount", suspend)
    match = FAILED.match(result)
    assert match, result
    assert match["message"].endswith(".") and "Job" not in match["message"]
    assert int(match["n"]) >= 2
    assert stack.job_state(match["job"]) == "failed"
    assert _status(stack, sid) == "active"
    # The request stays in flight for the retry.
    [row] = whmcs.commands()
    assert row["webhook_id"] == _ids(whmcs, "SuspendAccount")[0] and row["action"] == "suspend"
    assert row["state"] == "open" and row["job_id"] == match["job"]
    assert whmcs.hosting(sid)["domainstatus"] == "Active"        # WHMCS saw the failure

    stack.clear_faults()
    # WHMCS's Module Queue "Retry": the same function with the same $params.
    assert whmcs.call("SuspendAccount", suspend) == "success"
    assert _status(stack, sid) == "suspended"
    first, retry = _ids(whmcs, "SuspendAccount")
    assert first == retry                                     # the same webhook-id ...
    assert _events(stack, sid, "service.suspend") == 1        # ... so one event, one job, run again
    job = stack.job(match["job"])
    assert job["state"] == "succeeded" and job["attempts"] > int(match["n"])
    assert whmcs.commands() == []
    assert whmcs.hosting(sid)["domainstatus"] == "Suspended"
    whmcs.assert_no_secrets_logged()


def test_a_slow_create_is_not_a_failure_and_the_retry_reports_the_outcome(whmcs, php_stack):
    stack, sid = php_stack, "7005"
    params = {**whmcs.params(sid, "whmcs-queued.example"), "configoption1": "1"}   # "Wait seconds"
    stack.sim_faults(error_rate=1.0)
    result = whmcs.call("CreateAccount", params)
    match = QUEUED.match(result)
    assert match, result
    assert whmcs.header(whmcs.hook_entries("CreateAccount")[0], "Prefer") == "wait=1"
    assert whmcs.hook_entries("CreateAccount")[0]["response"].startswith("HTTP 202")
    assert whmcs.hosting(sid)["domainstatus"] == "Pending"         # nothing exists yet: no welcome e-mail
    [row] = whmcs.commands()
    assert row["state"] == "queued" and row["job_id"] == match["job"]

    # (The job's callback is refused for now, so the Retry comes first.)
    whmcs.update_db(lambda data: data["tables"]["tblservers"][0].update(username="whsec_" + "V1JPTkc=" * 4))
    stack.clear_faults()
    stack.wait_job(match["job"], timeout=30)
    # The admin's Retry in the Module Queue: the same request, now answered with the outcome.
    assert whmcs.call("CreateAccount", params) == "success"
    first, retry = _ids(whmcs, "CreateAccount")
    assert first == retry
    assert _events(stack, sid, "service.create") == 1
    assert whmcs.hosting(sid)["domainstatus"] == "Active"
    # The job.succeeded callback that follows finds the outcome applied: no second create, no e-mail.
    [outcome] = whmcs.db()["tables"]["mod_provisioner_outcomes"]
    assert outcome["job_id"] == match["job"] and outcome["via"] == "retry"
    whmcs.update_db(lambda data: data["tables"]["tblservers"][0].update(username=stack.callback_secret))
    body = {"type": "job.succeeded", "id": "after-retry", "service_id": sid, "source": "default",
            "data": {"job_id": match["job"], "state": "succeeded", "event_type": "service.create",
                     "attempts": stack.job(match["job"])["attempts"]}}
    assert post_callback(stack, body).json() == {"ok": True, "done": "already applied"}
    assert whmcs.emails() == [] and not [c for c in whmcs.localapi_calls() if c["command"] == "ModuleCreate"]


def test_network_errors_are_retried_with_the_same_webhook_id(whmcs, php_stack):
    stack, sid = php_stack, "7006"
    params = whmcs.params(sid, "whmcs-network.example")
    assert whmcs.call("CreateAccount", params) == "success"

    closed = free_port()                                     # nothing listens there
    down = {**params, **whmcs.server(serverport=str(closed)), "suspendreason": "Abuse"}
    result = whmcs.call("SuspendAccount", down)
    assert result.startswith(f"No answer from the provisioner at http://127.0.0.1:{closed} after 3 attempt(s): "), result
    assert "use Retry in the Module Queue" in result
    attempts = whmcs.hook_entries("SuspendAccount")
    assert len(attempts) == 3
    assert len({whmcs.header(e, "webhook-id") for e in attempts}) == 1          # one id for all three
    assert [whmcs.header(e, "attempt") for e in attempts] == ["1 of 3", "2 of 3", "3 of 3"]
    assert _status(stack, sid) == "active"

    # The provisioner is reachable again: the Module Queue retry sends the same request.
    assert whmcs.call("SuspendAccount", {**down, **whmcs.server()}) == "success"
    ids = set(_ids(whmcs, "SuspendAccount"))
    assert len(ids) == 1
    assert _events(stack, sid, "service.suspend") == 1
    assert _status(stack, sid) == "suspended"
    whmcs.assert_no_secrets_logged()


def test_a_new_command_after_a_failure_gets_a_new_webhook_id(whmcs, php_stack):
    """A failed suspend left in flight must not swallow a later, different command."""
    stack, sid = php_stack, "7011"
    params = whmcs.params(sid, "whmcs-newid.example")
    assert whmcs.call("CreateAccount", params) == "success"
    stack.sim_faults(error_rate=1.0)
    assert FAILED.match(whmcs.call("SuspendAccount", {**params, "suspendreason": "Abuse"}))
    stack.clear_faults()

    # Other values: a new command (the suspend reason changed).
    assert whmcs.call("SuspendAccount", {**params, "suspendreason": "Chargeback"}) == "success"
    assert stack.accounts_for(sid)[0]["native"]["suspend_reason"] == "Chargeback"
    # Another action, then the first suspend's values again: each a new event.
    assert whmcs.call("UnsuspendAccount", params) == "success"
    assert whmcs.call("SuspendAccount", {**params, "suspendreason": "Abuse"}) == "success"
    assert _status(stack, sid) == "suspended"
    suspend_ids = _ids(whmcs, "SuspendAccount")
    assert len(suspend_ids) == 3 and len(set(suspend_ids)) == 3
    assert _events(stack, sid, "service.suspend") == 3


def test_a_provisioner_that_never_answers_costs_at_most_30_seconds(whmcs, php_stack):
    """A create can run inside the customer's checkout: the whole call, every attempt and
    pause included, stays within the module's 30 s budget even at the longest wait."""
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)                      # accepts, never answers
    try:
        port = listener.getsockname()[1]
        params = {**whmcs.params("7012", "whmcs-budget.example"), **whmcs.server(serverport=str(port)),
                  "configoption1": "25"}
        started = time.monotonic()
        result = whmcs.call("CreateAccount", params)
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert result.startswith(f"No answer from the provisioner at http://127.0.0.1:{port} after 1 attempt(s): "), result
    [attempt] = whmcs.hook_entries("CreateAccount")
    assert whmcs.header(attempt, "Prefer") == "wait=25"
    assert elapsed < 32, elapsed          # 25 s wait + 5 s to answer; no second attempt fits
    assert whmcs.hosting("7012")["domainstatus"] == "Pending"


def _in_flight_from_an_earlier_version(whmcs, stack, sid: str, domain: str, *, racing: bool = False):
    """A suspend that failed, kept as the earlier version's mod_provisioner_deliveries
    kept it, and no mod_provisioner_commands yet. ``racing``: another request (a callback,
    the cron) makes mod_provisioner_commands right after the next module call looked for it."""
    params = whmcs.params(sid, domain)
    assert whmcs.call("CreateAccount", params) == "success"
    stack.sim_faults(error_rate=1.0)
    suspend = {**params, "suspendreason": "Abuse"}
    assert FAILED.match(whmcs.call("SuspendAccount", suspend))
    stack.clear_faults()
    [row] = [r for r in whmcs.commands() if r["action"] == "suspend"]

    def downgrade(data):
        data["tables"] = {k: v for k, v in data["tables"].items() if not k.startswith("mod_provisioner_commands")}
        data["schema"] = [t for t in data["schema"] if t != "mod_provisioner_commands"]
        data["tables"]["mod_provisioner_deliveries"] = [{k: row[k] for k in (
            "service_id", "action", "fingerprint", "webhook_id", "occurred_at")}]
        data["schema"].append("mod_provisioner_deliveries")
        if racing:          # made, still empty: the racing request has not taken over yet
            data["schema"].append("mod_provisioner_commands")
            data["tables"]["mod_provisioner_commands"] = []
            data["stale_schema"] = ["mod_provisioner_commands"]
    whmcs.update_db(downgrade)
    return suspend, row


def test_commands_left_in_flight_by_an_earlier_version_are_retried_with_their_webhook_id(whmcs, php_stack):
    """mod_provisioner_deliveries (one command per service) is taken over when the module's
    new table is made: a Retry after the upgrade still re-sends the same request."""
    stack, sid = php_stack, "7013"
    suspend, row = _in_flight_from_an_earlier_version(whmcs, stack, sid, "whmcs-upgrade.example")
    assert whmcs.call("SuspendAccount", suspend) == "success"
    first, retry = _ids(whmcs, "SuspendAccount")
    assert first == retry == row["webhook_id"]
    assert _events(stack, sid, "service.suspend") == 1


def test_a_request_racing_to_make_the_commands_table_still_takes_over_what_was_in_flight(whmcs, php_stack):
    """Two requests' first use after an upgrade: the one that loses the race to create
    mod_provisioner_commands uses the table the other made, and still re-sends the command
    the earlier version left in flight (it used to send it as a new event)."""
    stack, sid = php_stack, "7014"
    suspend, row = _in_flight_from_an_earlier_version(whmcs, stack, sid, "whmcs-upgrade-race.example", racing=True)
    assert whmcs.call("SuspendAccount", suspend) == "success"
    assert whmcs.db().get("stale_schema") == []          # the race did happen
    first, retry = _ids(whmcs, "SuspendAccount")
    assert first == retry == row["webhook_id"]
    assert _events(stack, sid, "service.suspend") == 1
