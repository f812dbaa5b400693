"""Contract-suite targets: one module per built-in provider kind, each defining
``TARGET``, plus the targets installed plug-ins register under the entry-point group
``provisioner.contract_targets``. ``PROVISIONER_CONTRACT_TARGETS=name,...`` runs only
those (e.g. an installed plug-in's). A module whose ``TARGET`` is None (a real upstream
its environment does not name, e.g. ``modoboa_real``) is left out; its ``UNCONFIGURED``
says what it needs."""
from __future__ import annotations

import importlib
import os
import pkgutil

from provisioner.plugins import CONTRACT_TARGETS_GROUP, EntryPointTable, load
from provisioner.providers.target import Target

__all__ = ["TARGETS", "Target"]


def _discover() -> dict[str, Target]:
    targets, unconfigured = {}, {}
    # Keyed by module, so one provider kind may have several targets (product kinds).
    for module in pkgutil.iter_modules(__path__):
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        if loaded.TARGET is None:
            unconfigured[module.name] = getattr(loaded, "UNCONFIGURED", "not configured")
        else:
            targets[module.name] = loaded.TARGET
    for name, value in EntryPointTable(CONTRACT_TARGETS_GROUP).items():
        target = load(value)
        if not isinstance(target, Target):
            raise TypeError(f"contract target {name!r} ({value}) is not a provisioner.providers.target.Target")
        targets[name] = target
    only = [name.strip() for name in os.environ.get("PROVISIONER_CONTRACT_TARGETS", "").split(",") if name.strip()]
    if only:
        unknown = sorted(set(only) - set(targets))
        for name in unknown:
            if name in unconfigured:
                raise ValueError(f"PROVISIONER_CONTRACT_TARGETS names {name!r}, which is not configured: "
                                 f"{unconfigured[name]}")
        if unknown:
            raise ValueError(f"PROVISIONER_CONTRACT_TARGETS names unknown target(s) {unknown} "
                             f"(known: {sorted(targets)})")
        targets = {name: targets[name] for name in only}
    return targets


TARGETS: dict[str, Target] = _discover()
