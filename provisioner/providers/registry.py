"""Which class implements each ``provider:`` kind of upstreams.yaml.

Classes are imported on first use so that importing the registry (for config
validation) stays cheap and free of side effects.
"""
from __future__ import annotations

import importlib
from typing import Any

from .base import Provider
from .errors import ConfigurationError

PROVIDERS: dict[str, str] = {
    "sandbox": "provisioner.providers.sandbox:SandboxProvider",
    "resellerclub": "provisioner.providers.resellerclub:ResellerClubProvider",
    "polarismail": "provisioner.providers.polarismail:PolarisMailProvider",
    "mailboxorg": "provisioner.providers.mailboxorg:MailboxOrgProvider",
    "qboxmail": "provisioner.providers.qboxmail:QboxmailProvider",
    "modoboa": "provisioner.providers.modoboa:ModoboaProvider",
}


def provider_class(kind: str) -> type[Provider]:
    try:
        target = PROVIDERS[kind]
    except KeyError:
        raise ConfigurationError(f"unknown provider kind {kind!r}") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_provider(name: str, config: dict[str, Any]) -> Provider:
    """An adapter for the upstream ``name`` configured by ``config``."""
    return provider_class(config["provider"])(name, config)
