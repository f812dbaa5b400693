"""The Qboxmail provider's hosting product (domains and mailboxes) against its simulator.

The upstream is configured for hosting products only (``product_kinds``), so the
provider reports the hosting capabilities: Qboxmail relay accounts have neither
mailbox limits nor month-granular terms, which this suite's LIMITS and TERMS
scenarios assume (see docs/providers/qboxmail.md; relay accounts are covered by
tests/unit/test_qboxmail_provider.py and tests/integration/test_qboxmail_lifecycle.py).
The simulator verifies domain ownership at once (``verification_delay=0``, like the
real sandbox's "skip ownership"), so new domains are active as the suite expects.
"""
from __future__ import annotations

from typing import Any

from tests.contract.targets import Target

SIM_API_TOKEN = "contract-qbox-token-3f9c"
BAD_API_TOKEN = "not-the-qbox-token-11d2"


def _qboxmail_config(url: str, timeout: float | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"provider": "qboxmail", "base_url": url, "api_token": SIM_API_TOKEN,
                              "product_kinds": ["hosting"]}
    if timeout is not None:
        config["timeout"] = timeout
    return config


TARGET = Target(
    kind="qboxmail", simulator="qboxmail",
    sim_options={"api_token": SIM_API_TOKEN, "verification_delay": 0.0},
    config=_qboxmail_config,
    bad_credentials=lambda url: {**_qboxmail_config(url), "api_token": BAD_API_TOKEN},
    limits={"qboxmail_product": "hosting", "plan": "basic", "mailboxes": 2, "mailbox_quota_gb": 8},
    secrets=(SIM_API_TOKEN, BAD_API_TOKEN),
    create_action="domains.create", read_action="domains.list",
)
