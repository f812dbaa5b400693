"""How the provider contract suite (tests/contract) runs one provider kind against its
simulator, or against a real upstream (``real_url``). Built-in targets live in
tests/contract/targets/; an installed plug-in registers its own ``Target`` under the
entry-point group ``provisioner.contract_targets`` (docs/providers/writing-a-provider.md)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Control(Protocol):
    """What the contract suite asks of an upstream besides the adapter: the simulator's
    ``/_sim/`` control API, or a stand-in for a real upstream (which skips what only a
    simulator can do: faults, call counts)."""

    def state(self) -> dict[str, Any]: ...
    def accounts(self, *, live: bool = False) -> list[dict[str, Any]]: ...
    def account(self, account_id: str) -> dict[str, Any]: ...
    def reset(self) -> None: ...
    def faults(self, **faults: Any) -> dict[str, Any]: ...
    def clear_faults(self) -> None: ...
    def mutate(self, account_id: str, **changes: Any) -> dict[str, Any]: ...
    def calls(self) -> dict[str, int]: ...
    def total_calls(self) -> int: ...
    def close(self) -> None: ...
    # optional, for a real upstream: count the calls the adapter under test makes
    # def watch(self, provider) -> None


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
    #: a real upstream at this URL instead of a simulator (tests/real): nothing is
    #: started, and ``control(url)`` stands in for the simulator's control API
    real_url: str = ""
    control: Callable[[str], Control] | None = None

    @property
    def real(self) -> bool:
        return bool(self.real_url)
