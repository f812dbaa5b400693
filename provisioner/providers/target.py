"""How the provider contract suite (tests/contract) runs one provider kind against its
simulator. Built-in targets live in tests/contract/targets/; an installed plug-in
registers its own ``Target`` under the entry-point group ``provisioner.contract_targets``
(docs/providers/writing-a-provider.md)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    """How to run one provider kind against its simulator."""
    kind: str
    simulator: str
    #: options for create_simulator_app (credentials the simulator enforces)
    sim_options: dict[str, Any]
    #: upstreams.yaml block for a simulator at ``url``; ``timeout`` in seconds or None
    config: Callable[[str, float | None], dict[str, Any]]
    #: the same block with credentials the simulator refuses
    bad_credentials: Callable[[str], dict[str, Any]]
    #: limits a fresh test account gets
    limits: dict[str, Any] = field(default_factory=dict)
    #: credential values (good and bad) that must never reach a log or an error
    secrets: tuple[str, ...] = ()
    #: the simulator's action names (``/_sim/calls`` keys) of the one call that
    #: creates an account and of the look-up ``find_account`` pages through
    create_action: str = ""
    read_action: str = ""
    #: the account id is a natural key (PolarisMail: the domain), so an account
    #: made again after a delete gets the id it had
    reuses_ids: bool = False
