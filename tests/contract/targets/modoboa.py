"""The Modoboa provider against its simulator (a Modoboa 2.12 REST API v2).

Modoboa keeps no mailbox or alias counts of its own by default; the adapter keeps
the product's in a memo alias and refuses past them, which is what this suite's
LIMITS scenarios check (docs/providers/modoboa.md).
"""
from __future__ import annotations

from typing import Any

from tests.contract.targets import Target

SIM_TOKEN = "c0ffee0modoboa0contract0token00000000a1"
BAD_TOKEN = "bad0modoboa0token000000000000000000000b2"


def _modoboa_config(url: str, timeout: float | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"provider": "modoboa", "base_url": url, "token": SIM_TOKEN}
    if timeout is not None:
        config["timeout"] = timeout
    return config


TARGET = Target(
    kind="modoboa", simulator="modoboa",
    sim_options={"token": SIM_TOKEN},
    config=_modoboa_config,
    bad_credentials=lambda url: {**_modoboa_config(url), "token": BAD_TOKEN},
    limits={"mailboxes": 2, "aliases": 1, "distribution_lists": 1, "domain_quota_gb": 20,
            "mailbox_quota_gb": 5},
    secrets=(SIM_TOKEN, BAD_TOKEN),
    create_action="domains.create", read_action="domains.list",
)
