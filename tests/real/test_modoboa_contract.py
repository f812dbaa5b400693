"""The provider contract suite (tests/contract) against the real Modoboa.

The same scenarios every provider passes against its simulator, run by a child pytest
with ``PROVISIONER_CONTRACT_TARGETS=modoboa_real`` and the target's ``MODOBOA_REAL_URL``
and ``MODOBOA_REAL_TOKEN`` set to the ``modoboa_real`` instance
(tests/contract/targets/modoboa_real.py). State is read through Modoboa's own API; what
needs the simulator's faults or call counts skips, and the list of what ran and what
skipped (with why) is printed.
"""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = [pytest.mark.real, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
#: scenarios that must run to the end on the real instance (not skip)
MUST_PASS = {
    "test_connection", "test_create_makes_exactly_one_account", "test_find_account_finds_the_created_one",
    "test_second_create_adopts_the_existing_account", "test_suspend_is_idempotent_and_unsuspend_restores",
    "test_drift_behind_our_back_is_visible", "test_limits_change", "test_delete_and_find_ignores_deleted",
    "test_get_unknown_account_is_not_found", "test_mailboxes_lifecycle_and_limit",
    "test_mailbox_quota_above_the_limit", "test_duplicate_mailbox_is_a_conflict",
    "test_aliases_lifecycle_and_limit", "test_lists_lifecycle_and_limit",
    "test_full_lifecycle_converges_and_is_idempotent",
    "test_a_second_service_record_for_the_same_billing_service_adopts", "test_drift_made_upstream_is_repaired",
    "test_bad_credentials_are_a_permanent_auth_error", "test_credentials_and_passwords_stay_out_of_logs_and_errors",
    "test_password_change", "test_list_accounts_pages_through_everything",
}


def test_the_contract_suite_passes_against_the_real_modoboa(modoboa_real, tmp_path):
    report = tmp_path / "contract.xml"
    env = {**os.environ, "PROVISIONER_CONTRACT_TARGETS": "modoboa_real",
           "MODOBOA_REAL_URL": modoboa_real.url, "MODOBOA_REAL_TOKEN": modoboa_real.token,
           "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "pytest", "tests/contract", "-q", "-p", "no:cacheprovider",
                          # the published-shape suites of other providers are simulator-only
                          "-k", "modoboa_real", "-rs", f"--junitxml={report}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("name", "")
        skipped = case.find("skipped")
        failed = case.find("failure") is not None or case.find("error") is not None
        outcomes[name] = ("failed" if failed else
                          f"skipped: {skipped.get('message', '')}" if skipped is not None else "passed")
    print("\ncontract suite against the real Modoboa:")
    for name, outcome in sorted(outcomes.items()):
        print(f"  {outcome.split(':')[0]:8} {name}{outcome[7:] if outcome.startswith('skipped') else ''}")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert all(name.startswith("test_") and "[modoboa_real]" in name for name in outcomes), sorted(outcomes)
    passed = {name.split("[")[0] for name, outcome in outcomes.items() if outcome == "passed"}
    assert MUST_PASS <= passed, sorted(MUST_PASS - passed)
