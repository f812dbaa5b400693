"""The sandbox provider against its simulator."""
from __future__ import annotations

from typing import Any

from tests.contract.targets import Target

SIM_API_KEY = "contract-sim-key-7f3a"
BAD_API_KEY = "not-the-key-0c41"


def _sandbox_config(url: str, timeout: float | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"provider": "sandbox", "base_url": url, "api_key": SIM_API_KEY}
    if timeout is not None:
        config["timeout"] = timeout
    return config


TARGET = Target(
    kind="sandbox", simulator="sandbox",
    sim_options={"api_key": SIM_API_KEY},
    config=_sandbox_config,
    bad_credentials=lambda url: {**_sandbox_config(url), "api_key": BAD_API_KEY},
    limits={"mailboxes": 2, "enhanced_mailboxes": 1, "mailbox_quota_gb": 10,
            "aliases": 1, "distribution_lists": 1},
    secrets=(SIM_API_KEY, BAD_API_KEY),
    create_action="accounts.create", read_action="accounts.list",
)
