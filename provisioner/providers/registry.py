"""Which class implements each ``provider:`` kind of upstreams.yaml.

Kinds are the entry points of the group ``provisioner.providers`` (the built-in
adapters are registered in setup.cfg like any plug-in's; see provisioner/plugins.py).
Classes are imported on first use so that importing the registry (for config
validation) stays cheap and free of side effects.
"""
from __future__ import annotations

from typing import Any

from ..plugins import PROVIDERS_GROUP, EntryPointTable, load
from . import pacing
from .base import Provider
from .errors import ConfigurationError

#: provider kind -> "module:Class"
PROVIDERS: EntryPointTable = EntryPointTable(PROVIDERS_GROUP)


def provider_class(kind: str) -> type[Provider]:
    try:
        target = PROVIDERS[kind]
    except KeyError:
        raise ConfigurationError(f"unknown provider kind {kind!r}") from None
    cls = load(target)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ConfigurationError(f"provider kind {kind!r}: {target} is not a Provider class")
    return cls


def build_provider(name: str, config: dict[str, Any]) -> Provider:
    """An adapter for the upstream ``name`` configured by ``config``.

    Its optional ``rate_limit`` sets the process's bucket for ``name`` first, which the
    adapter's HttpClient then shares with every other client of that upstream."""
    cls = provider_class(config["provider"])
    pacing.configure(name, config.get("rate_limit"))
    return cls(name, config)
