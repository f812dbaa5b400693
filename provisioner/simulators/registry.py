"""Which app factory serves each ``provisioner simulate NAME``.

Factories are imported on first use so listing the simulators stays cheap.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

SIMULATORS: dict[str, str] = {
    "sandbox": "provisioner.simulators.sandbox:create_app",
    "resellerclub": "provisioner.simulators.resellerclub:create_app",
    "polarismail": "provisioner.simulators.polarismail:create_app",
    "mailboxorg": "provisioner.simulators.mailboxorg:create_app",
    "qboxmail": "provisioner.simulators.qboxmail:create_app",
    "modoboa": "provisioner.simulators.modoboa:create_app",
}

#: factory options a simulator reads from the environment when not given
ENV_OPTIONS: dict[str, dict[str, str]] = {
    "sandbox": {"api_key": "SANDBOX_API_KEY"},
    "resellerclub": {"auth_userid": "RESELLERCLUB_AUTH_USERID", "api_key": "RESELLERCLUB_API_KEY"},
    "polarismail": {"username": "POLARISMAIL_USERNAME", "password": "POLARISMAIL_PASSWORD"},
    "mailboxorg": {"username": "MAILBOXORG_USER", "password": "MAILBOXORG_PASSWORD"},
    "qboxmail": {"api_token": "QBOXMAIL_API_TOKEN"},
    "modoboa": {"token": "MODOBOA_TOKEN"},
}


def _target(name: str) -> str:
    try:
        return SIMULATORS[name]
    except KeyError:
        known = ", ".join(sorted(SIMULATORS))
        raise ValueError(f"unknown simulator {name!r} (known: {known})") from None


def create_simulator_app(name: str, **options: Any) -> Flask:
    """A fresh app of the simulator ``name``; ``options`` go to its factory."""
    module_name, _, factory = _target(name).partition(":")
    return getattr(importlib.import_module(module_name), factory)(**options)


def options_from_env(name: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The factory options of ``name`` that its environment variables set."""
    _target(name)
    environ = os.environ if environ is None else environ
    return {option: environ[var] for option, var in ENV_OPTIONS.get(name, {}).items()
            if environ.get(var)}
