"""Billing sources: who may send hooks, where their callbacks go, who owns the lifecycle.

``product_configs/billing.yaml`` names each billing system that sends hooks::

    whmcs-main:
      webhook_secrets: ${WHMCS_MAIN_WEBHOOK_SECRETS}   # one or more whsec_ secrets, space-separated
      callback_url: ${WHMCS_MAIN_CALLBACK_URL:-}
      callback_secret: ${WHMCS_MAIN_CALLBACK_SECRET:-}
      lifecycle_authority: billing                     # billing | provisioner

A hook belongs to the source whose secret verified its signature, never to a
field of its body. Without a ``default`` entry in billing.yaml, the environment's
``PROVISIONER_WEBHOOK_SECRETS``, ``PROVISIONER_CALLBACK_URL`` and
``PROVISIONER_CALLBACK_SECRET`` make the source ``default`` with the
``provisioner`` authority: a set-up from before sources existed works as it did.

``check_sources`` validates the file (every problem one line, as for products);
``Sources`` is what the running process asks.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marshmallow import fields, validate
from standardwebhooks.webhooks import Webhook

from ..configfiles import (FAILED, REQUIRED, SECRET_REF, STRING, StrictSchema, check_secrets, line, load,
                           read_yaml, resolve)
from .keys import DEFAULT_SOURCE, MAX_SOURCE_NAME

BILLING_FILE = "billing.yaml"
BILLING_FILES = (BILLING_FILE, "billing.yml")

#: the billing system suspends and terminates; the scheduler only reports disagreements
AUTHORITY_BILLING = "billing"
#: the scheduler applies the products' due-date policy itself
AUTHORITY_PROVISIONER = "provisioner"
AUTHORITIES = (AUTHORITY_BILLING, AUTHORITY_PROVISIONER)

# Lower-case letters, digits and single hyphens: names show up in service keys
# ("whmcs-main:5001"), upstream account names and URLs.
NAME_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\Z")
ENV_SECRETS = "PROVISIONER_WEBHOOK_SECRETS"


@dataclass(frozen=True)
class BillingSource:
    name: str
    webhook_secrets: tuple[str, ...]
    callback_url: str = ""
    callback_secret: str = ""
    lifecycle_authority: str = AUTHORITY_PROVISIONER
    #: where it is defined: billing.yaml, or the PROVISIONER_* environment
    origin: str = BILLING_FILE


class Sources:
    """The sources of billing.yaml plus the implicit ``default`` one, read live.

    The default source always exists (services from before sources were named
    belong to it); it is built from ``settings`` on every call unless billing.yaml
    defines it, so a test or an operator changing the settings sees the change."""

    def __init__(self, settings, catalog: Callable[[], Any]):
        self.settings = settings
        self._catalog = catalog          # the runtime's current catalog (tests swap it)

    def _configured(self) -> Mapping[str, BillingSource]:
        return getattr(self._catalog(), "sources", None) or {}

    def default(self) -> BillingSource:
        configured = self._configured()
        if DEFAULT_SOURCE in configured:
            return configured[DEFAULT_SOURCE]
        s = self.settings
        return BillingSource(DEFAULT_SOURCE, tuple(s.webhook_secrets), s.callback_url, s.callback_secret,
                             AUTHORITY_PROVISIONER, origin="environment")

    def get(self, name: str | None) -> BillingSource | None:
        if name == DEFAULT_SOURCE:
            return self.default()
        return self._configured().get(name or "")

    def all(self) -> list[BillingSource]:
        """Every source, ``default`` first."""
        others = [source for name, source in sorted(self._configured().items()) if name != DEFAULT_SOURCE]
        return [self.default(), *others]

    def names(self) -> list[str]:
        return [source.name for source in self.all()]

    def any_webhook_secret(self) -> bool:
        return any(source.webhook_secrets for source in self.all())


def authority_for(source: BillingSource | None, product: Any | None) -> str:
    """Who owns a service's lifecycle: the product's ``lifecycle_authority`` if it sets
    one, else its source's. A source no longer configured counts as ``billing``: with
    nobody to ask, the scheduler suspends and terminates nothing on its own."""
    override = getattr(getattr(product, "lifecycle", None), "lifecycle_authority", None)
    if override:
        return override
    return source.lifecycle_authority if source is not None else AUTHORITY_BILLING


# --- billing.yaml ------------------------------------------------------------------------

class _SecretList(fields.Field):
    """A string of space-separated secrets, or a list of them."""
    default_error_messages = {**REQUIRED, "invalid": "must be a string or a list of strings"}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [part for v in value for part in v.split()]
        raise self.make_error("invalid")


class _SourceSchema(StrictSchema):
    webhook_secrets = _SecretList(required=True)
    callback_url = fields.String(load_default="", allow_none=True, error_messages=STRING)
    callback_secret = fields.String(load_default="", allow_none=True, error_messages=STRING)
    lifecycle_authority = fields.String(
        required=True, error_messages={**STRING, "required": "is required: billing (the billing system "
                                                             "suspends and terminates) or provisioner (the "
                                                             "scheduler applies the products' due-date policy)"},
        validate=validate.OneOf(AUTHORITIES, error="must be one of {choices} (got {input!r})"))


def _only_references(value: Any) -> bool:
    """Webhook secrets given only as ${ENV} references (several allowed, for rotation)."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, str):
            return True          # the schema reports the type
        tokens = item.split()
        if not tokens or not all(SECRET_REF.fullmatch(token) for token in tokens):
            return False
    return True


def valid_webhook_secret(secret: str) -> bool:
    if not secret.startswith("whsec_"):
        return False
    try:
        Webhook(secret)
    except Exception:  # the library raises on base64 it cannot decode
        return False
    return True


def _check_one(name: Any, block: Any, environ: Mapping[str, str], file: str,
               problems: list[str]) -> BillingSource | None:
    before = len(problems)
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > MAX_SOURCE_NAME:
        problems.append(line(file, [str(name)], "source names may only contain lower-case letters, digits "
                                                f"and single hyphens, at most {MAX_SOURCE_NAME} characters"))
    if not isinstance(block, Mapping):
        problems.append(line(file, [str(name)], "must be a mapping (webhook_secrets: ..., lifecycle_authority: ...)"))
        return None
    check_secrets(block, [name], file, problems)
    if "webhook_secrets" in block and not _only_references(block["webhook_secrets"]):
        problems.append(line(file, [name, "webhook_secrets"],
                             "secrets must be given as ${ENV} references, not inline"))
    resolved = resolve(dict(block), [name], environ, file, problems)
    data = load(_SourceSchema(), resolved, file, [name], problems)
    secrets = data.get("webhook_secrets")
    if secrets is not None:
        if not secrets:
            problems.append(line(file, [name, "webhook_secrets"], "is empty: set the environment variable "
                                                                   "it names to one or more whsec_ secrets"))
        for index, secret in enumerate(secrets):
            if not valid_webhook_secret(secret):
                problems.append(line(file, [name, "webhook_secrets"],
                                     f"secret {index + 1} is not a whsec_ secret (whsec_ and base64)"))
    url = (data.get("callback_url") or "").strip()
    callback_secret = (data.get("callback_secret") or "").strip()
    if url:
        if not re.match(r"https?://[^\s/]+", url):
            problems.append(line(file, [name, "callback_url"], "must be an http:// or https:// URL"))
        if not callback_secret:
            problems.append(line(file, [name, "callback_secret"], "is required when callback_url is set "
                                                                   "(callbacks are signed)"))
    if callback_secret and not valid_webhook_secret(callback_secret):
        problems.append(line(file, [name, "callback_secret"], "must be a whsec_ secret (whsec_ and base64)"))
    if len(problems) > before:
        return None
    return BillingSource(name=name, webhook_secrets=tuple(secrets or ()), callback_url=url,
                         callback_secret=callback_secret, lifecycle_authority=data["lifecycle_authority"])


def configured_names(products_dir: str) -> list[str]:
    """The source names billing.yaml in ``products_dir`` defines, plus ``default``
    (for commands that only need the names, e.g. ``api-key create --source``)."""
    names = [DEFAULT_SOURCE]
    for file in BILLING_FILES:
        path = Path(products_dir) / file
        if path.is_file():
            raw = read_yaml(path, [])
            if raw is not FAILED and isinstance(raw, Mapping):
                names += sorted(str(n) for n in raw if n != DEFAULT_SOURCE)
            break
    return names


def check_sources(raw: Any, environ: Mapping[str, str], file: str, problems: list[str]) -> dict[str, BillingSource]:
    """The sources of billing.yaml (``raw``: its parsed YAML); problems appended, one line each."""
    if raw is None:
        return {}                 # only comments: no sources beyond the environment's default
    if not isinstance(raw, Mapping):
        problems.append(line(file, [], "must be a mapping of source name to its settings"))
        return {}
    sources: dict[str, BillingSource] = {}
    for name, block in raw.items():
        source = _check_one(name, block, environ, file, problems)
        if source is not None:
            sources[source.name] = source
    env_secrets = environ.get(ENV_SECRETS, "").split()
    if DEFAULT_SOURCE in raw and env_secrets:
        problems.append(line(file, [DEFAULT_SOURCE], f"the default source is defined here and by {ENV_SECRETS}; "
                                                     "keep one of the two"))
    owners: dict[str, str] = {secret: DEFAULT_SOURCE for secret in env_secrets}
    for name, source in sources.items():
        for secret in source.webhook_secrets:
            other = owners.setdefault(secret, name)
            if other != name:
                where = ENV_SECRETS if other == DEFAULT_SOURCE and DEFAULT_SOURCE not in sources else other
                problems.append(line(file, [name, "webhook_secrets"],
                                     f"a secret is also used by {where}: a signature could not tell "
                                     "the two sources apart"))
    return sources


__all__ = ["AUTHORITIES", "AUTHORITY_BILLING", "AUTHORITY_PROVISIONER", "BILLING_FILE", "BILLING_FILES",
           "BillingSource", "DEFAULT_SOURCE", "NAME_RE", "Sources", "authority_for", "check_sources", "configured_names",
           "valid_webhook_secret"]
