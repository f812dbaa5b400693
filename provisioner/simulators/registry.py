"""Which app factory serves each ``provisioner simulate NAME``.

Simulators are the entry points of the group ``provisioner.simulators`` (the
built-in ones are registered in setup.cfg like any plug-in's). A factory may carry
``env_options``: factory option -> the environment variable it is read from when
not given. Factories are imported on first use so listing the simulators stays cheap.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask

from ..plugins import SIMULATORS_GROUP, EntryPointTable, load

#: simulator name -> "module:factory"
SIMULATORS: EntryPointTable = EntryPointTable(SIMULATORS_GROUP)


def _target(name: str) -> str:
    try:
        return SIMULATORS[name]
    except KeyError:
        known = ", ".join(sorted(SIMULATORS))
        raise ValueError(f"unknown simulator {name!r} (known: {known})") from None


def simulator_factory(name: str) -> Callable[..., Flask]:
    return load(_target(name))


def create_simulator_app(name: str, **options: Any) -> Flask:
    """A fresh app of the simulator ``name``; ``options`` go to its factory."""
    return simulator_factory(name)(**options)


def options_from_env(name: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The factory options of ``name`` that its environment variables set."""
    env_options: Mapping[str, str] = getattr(simulator_factory(name), "env_options", {})
    environ = os.environ if environ is None else environ
    return {option: environ[var] for option, var in env_options.items() if environ.get(var)}
