"""Everything a request or a job needs, built once per process.

The web app keeps one ``Runtime`` in ``app.extensions``; the worker and the
CLI build their own. Nothing here runs at import time.
"""
from __future__ import annotations

import threading

from .billing.sources import BillingSource, Sources
from .config import Settings, SettingsError
from .db import Database
from .products import Catalog, load_catalog
from .providers.base import Provider
from .providers.errors import ConfigurationError
from .providers.registry import build_provider
from .secrets import SecretBox


class Runtime:
    def __init__(self, settings: Settings, *, catalog: Catalog | None = None,
                 database: Database | None = None):
        self.settings = settings
        self.catalog = catalog if catalog is not None else load_catalog(settings.products_dir, settings.environ)
        self.sources = Sources(settings, lambda: self.catalog)
        if not settings.dev and not self.sources.any_webhook_secret():
            raise SettingsError("missing required setting: PROVISIONER_WEBHOOK_SECRETS "
                                "(or a source with webhook_secrets in billing.yaml)")
        self.db = database or Database(settings.database_url)
        self.box = SecretBox(settings.encryption_key)
        self._providers: dict[str, Provider] = {}
        self._lock = threading.Lock()

    def provider(self, upstream: str) -> Provider:
        """The adapter for an upstream of upstreams.yaml (one instance per process)."""
        with self._lock:
            if upstream not in self._providers:
                if upstream not in self.catalog.upstreams:
                    raise ConfigurationError(f"upstream {upstream!r} is not configured")
                self._providers[upstream] = build_provider(upstream, self.catalog.upstream_config(upstream))
            return self._providers[upstream]

    def source(self, name: str) -> BillingSource | None:
        """A billing source by name (None if it is no longer configured)."""
        return self.sources.get(name)

    def close(self) -> None:
        with self._lock:
            providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            provider.close()
        self.db.dispose()
