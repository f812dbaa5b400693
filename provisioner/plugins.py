"""Entry-point tables: how adapters, simulators and contract targets are found.

Each is a Python entry-point group (``setup.cfg`` ``[options.entry_points]``): the
built-in ones are registered there exactly as a separately installed package
registers its own, so a plug-in adds an upstream without editing the provisioner
(docs/providers/writing-a-provider.md). A table is read on first use, never at import.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any

PROVIDERS_GROUP = "provisioner.providers"
SIMULATORS_GROUP = "provisioner.simulators"
CONTRACT_TARGETS_GROUP = "provisioner.contract_targets"


class PluginConflict(RuntimeError):
    """Two installed packages register different objects under one name."""


class EntryPointTable(Mapping[str, str]):
    """name -> ``"module:attribute"`` of one entry-point group, read once on first use."""

    def __init__(self, group: str):
        self.group = group
        self._table: dict[str, str] | None = None

    def _entries(self) -> dict[str, str]:
        if self._table is None:
            table: dict[str, str] = {}
            for point in entry_points(group=self.group):
                if table.get(point.name, point.value) != point.value:
                    raise PluginConflict(f"entry point {point.name!r} of {self.group} is registered twice: "
                                         f"{table[point.name]} and {point.value}")
                table[point.name] = point.value
            self._table = table
        return self._table

    def refresh(self) -> None:
        """Read the group again (after installing a package into a running process)."""
        self._table = None

    def __getitem__(self, name: str) -> str:
        return self._entries()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())

    def __repr__(self) -> str:
        return f"EntryPointTable({self.group!r}, {dict(self._entries())!r})"


def load(target: str) -> Any:
    """The object ``"module:attribute"`` names (attributes may be dotted)."""
    module_name, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split(".") if attribute else ():
        value = getattr(value, part)
    return value
