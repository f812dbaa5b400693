"""Settings from ``PROVISIONER_*`` environment variables.

An ``instance/.env`` file may set them too (the environment wins). Nothing is
read at import time: ``Settings.from_env()`` is called by the app factory and
the CLI.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

from .billing.sources import BILLING_FILES

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE = ROOT / "instance"


class SettingsError(RuntimeError):
    """A required setting is missing or invalid; the message names the variable."""


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=value`` file (comments and blank lines ignored, optional quotes)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


@dataclass
class Settings:
    database_url: str = ""
    webhook_secrets: list[str] = field(default_factory=list)
    secret_key: str = ""
    encryption_key: str = ""
    products_dir: str = str(ROOT / "product_configs")
    public_url: str = "http://127.0.0.1:8080"
    instance_dir: str = str(DEFAULT_INSTANCE)
    # Queue tuning: attempts before a job fails for good, backoff base and cap
    # in seconds, lease length (renewed by heartbeat every third of it).
    job_max_attempts: int = 10
    job_backoff_base: float = 2.0
    job_backoff_cap: float = 300.0
    job_lease_seconds: float = 30.0
    # How long a job may wait for an upstream's asynchronous activation (which may
    # wait on the customer publishing a DNS record).
    job_pending_timeout: float = 7 * 24 * 3600.0
    worker_poll_interval: float = 0.5
    # Scheduler: seconds between reconcile passes, accounts per upstream list call,
    # seconds between callback deliveries; where callbacks go and the secret signing them.
    reconcile_interval: float = 900.0
    reconcile_page_size: int = 100
    # Usage read account by account (upstreams whose listings carry none): daily.
    usage_interval: float = 86400.0
    notify_interval: float = 5.0
    notify_max_attempts: int = 12
    callback_url: str = ""
    callback_secret: str = ""
    log_level: str = "INFO"
    # How many reverse proxies in front of the web app set X-Forwarded-For (0: none).
    trusted_proxies: int = 0
    dev: bool = False
    #: instance/.env merged under the process environment: what ${ENV} references
    #: in product configs resolve against
    environ: dict[str, str] = field(default_factory=dict, repr=False)

    _ENV = {
        "database_url": "PROVISIONER_DATABASE_URL",
        "secret_key": "PROVISIONER_SECRET_KEY",
        "encryption_key": "PROVISIONER_ENCRYPTION_KEY",
        "products_dir": "PROVISIONER_PRODUCTS_DIR",
        "public_url": "PROVISIONER_PUBLIC_URL",
        "instance_dir": "PROVISIONER_INSTANCE_DIR",
        "job_max_attempts": "PROVISIONER_JOB_MAX_ATTEMPTS",
        "job_backoff_base": "PROVISIONER_JOB_BACKOFF_BASE",
        "job_backoff_cap": "PROVISIONER_JOB_BACKOFF_CAP",
        "job_lease_seconds": "PROVISIONER_JOB_LEASE_SECONDS",
        "job_pending_timeout": "PROVISIONER_JOB_PENDING_TIMEOUT",
        "worker_poll_interval": "PROVISIONER_WORKER_POLL_INTERVAL",
        "reconcile_interval": "PROVISIONER_RECONCILE_INTERVAL",
        "reconcile_page_size": "PROVISIONER_RECONCILE_PAGE_SIZE",
        "usage_interval": "PROVISIONER_USAGE_INTERVAL",
        "notify_interval": "PROVISIONER_NOTIFY_INTERVAL",
        "notify_max_attempts": "PROVISIONER_NOTIFY_MAX_ATTEMPTS",
        "callback_url": "PROVISIONER_CALLBACK_URL",
        "callback_secret": "PROVISIONER_CALLBACK_SECRET",
        "log_level": "PROVISIONER_LOG_LEVEL",
        "trusted_proxies": "PROVISIONER_TRUSTED_PROXIES",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dev: bool = False,
                 **overrides) -> "Settings":
        env = dict(os.environ if environ is None else environ)
        instance_dir = Path(env.get("PROVISIONER_INSTANCE_DIR", str(DEFAULT_INSTANCE)))
        merged = {**read_env_file(instance_dir / ".env"), **env}
        settings = cls(dev=dev, instance_dir=str(instance_dir), environ=merged)
        types = {f.name: f.type for f in fields(cls)}
        for attr, var in cls._ENV.items():
            if var in merged and merged[var] != "":
                raw = merged[var]
                kind = types[attr]
                value = int(raw) if kind == "int" else float(raw) if kind == "float" else raw
                setattr(settings, attr, value)
        settings.webhook_secrets = merged.get("PROVISIONER_WEBHOOK_SECRETS", "").split()
        if not settings.database_url:
            settings.database_url = f"sqlite:///{instance_dir / 'provisioner.sqlite3'}"
        for key, value in overrides.items():
            setattr(settings, key, value)
        return settings

    def billing_sources_file(self) -> Path | None:
        """``billing.yaml`` (or ``.yml``) of the products directory, if there is one."""
        for name in BILLING_FILES:
            path = Path(self.products_dir) / name
            if path.is_file():
                return path
        return None

    def require_secrets(self) -> None:
        """Outside ``dev`` a missing secret is a start-up error naming the variable.

        With a billing.yaml, webhook secrets may come from its sources instead of
        PROVISIONER_WEBHOOK_SECRETS (the runtime checks that some source has one)."""
        webhooks = self.webhook_secrets or self.billing_sources_file() is not None
        missing = [var for var, value in (
            ("PROVISIONER_WEBHOOK_SECRETS", webhooks),
            ("PROVISIONER_SECRET_KEY", self.secret_key),
            ("PROVISIONER_ENCRYPTION_KEY", self.encryption_key),
        ) if not value]
        if missing:
            raise SettingsError("missing required setting: " + ", ".join(missing))
        if self.callback_url and not self.callback_secret:
            raise SettingsError("PROVISIONER_CALLBACK_SECRET is required when PROVISIONER_CALLBACK_URL is set "
                                "(callbacks are signed)")
        bad = [s for s in self.webhook_secrets if not s.startswith("whsec_")]
        if bad:
            raise SettingsError("PROVISIONER_WEBHOOK_SECRETS: every secret must start with 'whsec_'")
