"""Product and upstream configs (contract section 6): load, validate, apply.

``product_configs/upstreams.yaml`` maps upstream names to connection settings
(``provider:`` plus whatever that provider needs); every other ``*.yaml`` /
``*.yml`` file in the directory is one product. ``${ENV}`` references in string
values are resolved at load time, and secrets may only be given that way.

Validation collects every problem as one line, ``file: key.path: message``, so
``provisioner products check`` can show a reseller everything at once.

Then, per billing event: ``compute_limits`` turns a service's configurable
options into limits, and ``downgrade_violations`` says whether they fit the
usage the service already has.
"""
from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import INCLUDE, Schema, fields, validate

from .billing.keys import DEFAULT_SOURCE
from .billing.sources import AUTHORITIES, BILLING_FILES, BillingSource, check_sources
from .configfiles import (FAILED as _FAILED, REQUIRED as _REQUIRED, STRING as _STRING,
                          StrictSchema as _Schema, check_secrets as _check_secrets, line as _line,
                          load as _load, read_yaml as _read_yaml, resolve as _resolve)
from .providers import pacing, registry

__all__ = [
    "CORE_LIMITS", "COUNTED_LIMITS", "LimitSpec", "Lifecycle", "Product", "Catalog",
    "ProductConfigError", "OptionError", "load_catalog", "check_configs",
    "compute_limits", "downgrade_violations",
]

#: limit names every provider understands; providers add their own (``extra_limits``)
CORE_LIMITS: frozenset[str] = frozenset(
    {"mailboxes", "enhanced_mailboxes", "mailbox_quota_gb", "aliases", "distribution_lists"})
#: limits compared with usage on a downgrade (usage dicts use the same keys)
COUNTED_LIMITS: frozenset[str] = frozenset(
    {"mailboxes", "enhanced_mailboxes", "aliases", "distribution_lists"})

UPSTREAMS_FILE = "upstreams.yaml"
_UPSTREAMS_FILES = (UPSTREAMS_FILE, "upstreams.yml")
_DOWNGRADE_POLICIES = ("reject", "allow")
# Names end up in URLs (/api/v1/upstreams/{name}/test) and logs.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


# --- errors ------------------------------------------------------------------

class ProductConfigError(Exception):
    """The configs are unusable; ``problems`` has one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class OptionError(ValueError):
    """A service's configurable options do not fit its product.

    ``fields`` maps each bad option's display name to a message that is safe to
    show a billing admin or a customer.
    """

    def __init__(self, fields: dict[str, str]):
        self.fields = dict(fields)
        super().__init__("; ".join(f"{name}: {msg}" for name, msg in self.fields.items()))


# --- the model -----------------------------------------------------------------

@dataclass
class LimitSpec:
    name: str
    option: str | None = None        # billing option name as configured; None for a fixed value
    value: Any = None                # the fixed value (when option is None)
    default: Any = None              # used when the option is absent; None: the option is required
    min: int | None = None
    max: int | None = None
    choices: list | None = None      # canonical spellings; then values are matched against these

    @property
    def option_key(self) -> str | None:
        return _option_key(self.option) if self.option is not None else None

    @property
    def display_name(self) -> str | None:
        """``Display`` of ``name|Display``, else the whole option name."""
        if self.option is None:
            return None
        name, sep, display = self.option.partition("|")
        return (display.strip() or name.strip()) if sep else self.option.strip()


@dataclass
class Lifecycle:
    suspend_grace_days: int = 3
    terminate_after_days: int = 30
    downgrade: str = "reject"        # reject | allow: a downgrade below current usage
    # Deleting a customer's mail after non-payment waits for an operator unless a
    # product says otherwise, explicitly.
    terminate_requires_operator: bool = True
    # billing | provisioner; None: the billing source's lifecycle_authority decides
    lifecycle_authority: str | None = None


@dataclass
class Product:
    id: str
    billing_product_ids: list[str]
    upstream: str
    limits: dict[str, LimitSpec]
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    source: str = ""                 # the file it was loaded from
    #: billing sources that sell it (billing.yaml names); None: every source
    sources: list[str] | None = None

    def sold_by(self, source: str) -> bool:
        return self.sources is None or source in self.sources


@dataclass
class Catalog:
    products: dict[str, Product] = field(default_factory=dict)
    upstreams: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the billing sources of billing.yaml (the environment's default one is not here)
    sources: dict[str, BillingSource] = field(default_factory=dict)

    def product_for_billing_id(self, billing_product_id: str,
                               source: str = DEFAULT_SOURCE) -> Product | None:
        """The product ``source``'s billing product id orders (ids are per source: two
        billing systems may both have a product 12, selling different things)."""
        wanted = str(billing_product_id).strip()
        for product in self.products.values():
            if wanted in product.billing_product_ids and product.sold_by(source):
                return product
        return None

    def upstream_config(self, name: str) -> dict[str, Any]:
        """The upstream's settings with ``${ENV}`` resolved (a copy: adapters may keep it)."""
        try:
            return copy.deepcopy(self.upstreams[name])
        except KeyError:
            raise KeyError(f"unknown upstream {name!r}") from None


# --- option values -----------------------------------------------------------

def _option_key(name: Any) -> str:
    """Contract section 2: match on the part before ``|``, trimmed, case-insensitively."""
    return str(name).split("|", 1)[0].strip().casefold()


_INT_RE = re.compile(r"[+-]?\d+")
# A whole number optionally followed by a unit label without further digits:
# "10 GB", "10GB", "5 mailboxes". Billing dropdowns often show such texts (and
# PHP modules read them with intval). The number is taken in the limit's own
# unit, so "10 TB" on a GB option reads as 10: name entries "10|10 GB" to be exact.
_LABELLED_INT_RE = re.compile(r"([+-]?\d+)(?:\s*[^\W\d_][^\d]*)?")


def _to_int(value: Any, *, labels: bool = False) -> int | None:
    """A whole number, or None. ``labels`` allows billing-side texts (see above)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        if labels:
            # WHMCS-style "value|Display text" applies to option values too.
            match = _LABELLED_INT_RE.fullmatch(value.split("|", 1)[0].strip())
            return int(match.group(1)) if match else None
        return int(value) if _INT_RE.fullmatch(value.strip()) else None
    return None


def _got(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _range_problem(number: int, low: int, high: int | None) -> str | None:
    if high is None:
        return f"must be at least {low} (got {number})" if number < low else None
    return None if low <= number <= high else f"must be between {low} and {high} (got {number})"


def _effective_min(spec: LimitSpec) -> int:
    # Limits are counts and sizes: never negative unless the config says so
    # (e.g. an upstream whose -1 means unlimited).
    return spec.min if spec.min is not None else 0


def _int_choices(choices: list) -> bool:
    return all(isinstance(c, int) and not isinstance(c, bool) for c in choices)


def _match_choice(choices: list, value: Any) -> Any:
    """The canonical choice ``value`` names, or raise ValueError."""
    listed = ", ".join(str(c) for c in choices)
    if _int_choices(choices):
        number = _to_int(value, labels=True)
        if number in choices:
            return choices[choices.index(number)]
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        wanted = str(value).split("|", 1)[0].strip().casefold()
        for choice in choices:
            if str(choice).casefold() == wanted:
                return choice
    raise ValueError(f"must be one of {listed} (got {_got(value)})")


def _option_value(spec: LimitSpec, raw: Any) -> Any:
    if spec.choices is not None:
        return _match_choice(spec.choices, raw)
    number = _to_int(raw, labels=True)
    if number is None:
        raise ValueError(f"must be a whole number (got {_got(raw)})")
    problem = _range_problem(number, _effective_min(spec), spec.max)
    if problem:
        raise ValueError(problem)
    return number


def compute_limits(product: Product, config_options: Mapping[str, Any]) -> dict[str, Any]:
    """The product's limits for a service ordered with ``config_options``.

    Raises OptionError naming every bad or missing option at once.
    """
    given = {_option_key(k): v for k, v in (config_options or {}).items()}
    limits: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, spec in product.limits.items():
        if spec.option is None:
            limits[name] = spec.value
            continue
        raw = given.get(spec.option_key)
        # Billing systems send "" for an option the customer never set.
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if spec.default is None:
                errors[spec.display_name] = "is required"
            else:
                limits[name] = spec.default
            continue
        try:
            limits[name] = _option_value(spec, raw)
        except ValueError as e:
            errors[spec.display_name] = str(e)
    if errors:
        raise OptionError(errors)
    return limits


_NOUNS = {
    "mailboxes": ("mailbox", "mailboxes"),
    "enhanced_mailboxes": ("enhanced mailbox", "enhanced mailboxes"),
    "aliases": ("alias", "aliases"),
    "distribution_lists": ("distribution list", "distribution lists"),
    "light_mailboxes": ("Light mailbox", "Light mailboxes"),
    "standard_mailboxes": ("Standard mailbox", "Standard mailboxes"),
    "premium_mailboxes": ("Premium mailbox", "Premium mailboxes"),
    "mailing_lists": ("mailing list", "mailing lists"),
}


def downgrade_violations(product: Product, new_limits: Mapping[str, Any],
                         usage: Mapping[str, int]) -> dict[str, str]:
    """Counted limits that current usage exceeds, with a message each (empty: it fits).

    Whether that rejects the change is the caller's call (``product.lifecycle.downgrade``).
    """
    violations: dict[str, str] = {}
    for name in product.limits:
        # Providers report usage under their own counted limits too (plan tiers).
        if name not in COUNTED_LIMITS and name not in usage:
            continue
        limit, used = new_limits.get(name), usage.get(name)
        if not isinstance(limit, int) or isinstance(limit, bool) or used is None:
            continue
        if limit < 0:          # only reachable with an explicit negative min: "unlimited"
            continue
        if used > limit:
            one, many = _NOUNS.get(name, (name, name))
            what = f"1 {one} is" if used == 1 else f"{used} {many} are"
            violations[name] = f"{what} in use, above the new limit of {limit}"
    return violations


class _WholeNumber(fields.Field):
    default_error_messages = {**_REQUIRED, "invalid": "must be a whole number (got {input})"}

    def _deserialize(self, value, attr, data, **kwargs):
        number = _to_int(value)
        if number is None:
            raise self.make_error("invalid", input=_got(value))
        return number


class _Scalar(fields.Field):
    """A string, number or boolean (a fixed value, a default, a choice)."""
    default_error_messages = {**_REQUIRED, "invalid": "must be a string or a number"}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, (str, int, float, bool)):
            raise self.make_error("invalid")
        return value


class _BillingId(fields.Field):
    # YAML reads [12, 13] as numbers; billing systems send ids as strings.
    default_error_messages = {**_REQUIRED, "invalid": "must be a string or a whole number"}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.make_error("invalid")
        if not str(value).strip():
            raise self.make_error("null")
        return str(value).strip()


class _UpstreamSchema(Schema):
    error_messages = {"type": "must be a mapping of settings"}
    provider = fields.String(required=True, error_messages=_STRING)

    class Meta:
        unknown = INCLUDE       # the provider's own settings


class _LimitSchema(_Schema):
    option = fields.String(validate=validate.Length(min=1, error="must not be empty"),
                           error_messages=_STRING)
    value = _Scalar()
    default = _Scalar()
    min = _WholeNumber()
    max = _WholeNumber()
    choices = fields.List(_Scalar(), validate=validate.Length(min=1, error="must list at least one choice"),
                          error_messages={**_REQUIRED, "invalid": "must be a list"})


_DAYS = {"validate": validate.Range(min=0, error="must not be negative (got {input})")}


class _LifecycleSchema(_Schema):
    suspend_grace_days = _WholeNumber(**_DAYS)
    terminate_after_days = _WholeNumber(**_DAYS)
    downgrade = fields.String(
        validate=validate.OneOf(_DOWNGRADE_POLICIES, error="must be one of {choices} (got {input!r})"),
        error_messages=_STRING)
    terminate_requires_operator = fields.Boolean(
        error_messages={**_REQUIRED, "invalid": "must be true or false"})
    lifecycle_authority = fields.String(
        validate=validate.OneOf(AUTHORITIES, error="must be one of {choices} (got {input!r})"),
        error_messages=_STRING)


class _ProductSchema(_Schema):
    id = fields.String(required=True, error_messages=_STRING, validate=validate.Regexp(
        _NAME_RE, error="may only contain letters, digits, '.', '-' and '_'"))
    billing_product_ids = fields.List(
        _BillingId(), required=True,
        validate=validate.Length(min=1, error="must list at least one billing product id"),
        error_messages={**_REQUIRED, "invalid": "must be a list"})
    upstream = fields.String(required=True, error_messages=_STRING)
    # Each limit is checked on its own (_LimitSchema) to name it in messages.
    limits = fields.Dict(load_default=dict, error_messages={
        **_REQUIRED, "invalid": "must be a mapping of limit name to its settings"})
    lifecycle = fields.Nested(_LifecycleSchema, load_default=None, allow_none=True)
    sources = fields.List(fields.String(error_messages=_STRING),
                          validate=validate.Length(min=1, error="must list at least one billing source"),
                          error_messages={**_REQUIRED, "invalid": "must be a list of billing source names"})


# --- semantics ---------------------------------------------------------------

def _provider_info(kind: str) -> tuple[frozenset[str], tuple[str, ...]] | None:
    """(extra limit names, required settings) of a provider kind; None if unknown."""
    if kind not in registry.PROVIDERS:
        return None
    try:
        cls = registry.provider_class(kind)
    except (ImportError, AttributeError):
        # The adapter may not be importable (yet); judge by what its docs require.
        return frozenset(), (("base_url",) if kind == "sandbox" else ())
    return frozenset(cls.extra_limits), tuple(cls.required_settings)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_upstreams(raw: Any, environ: Mapping[str, str], file: str,
                     problems: list[str]) -> dict[str, dict[str, Any]]:
    """Resolved settings per upstream name (also those with problems, so products
    naming them are not reported twice)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(_line(file, [], "must be a mapping of upstream name to its settings"))
        return {}
    upstreams: dict[str, dict[str, Any]] = {}
    for name, block in raw.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            problems.append(_line(file, [str(name)],
                                  "upstream names may only contain letters, digits, '.', '-' and '_'"))
        if not isinstance(block, Mapping):
            problems.append(_line(file, [name], "must be a mapping of settings (provider: ..., ...)"))
            continue
        _check_secrets(block, [name], file, problems)
        settings = _resolve(dict(block), [name], environ, file, problems)
        upstreams[str(name)] = settings
        kind = _load(_UpstreamSchema(), settings, file, [name], problems).get("provider")
        if kind is None:
            continue
        info = _provider_info(kind)
        if info is None:
            known = ", ".join(sorted(registry.PROVIDERS)) or "none"
            problems.append(_line(file, [name, "provider"],
                                  f"unknown provider kind {kind!r} (known: {known})"))
            continue
        for setting in info[1]:
            if _blank(settings.get(setting)):
                problems.append(_line(file, [name], f"missing required setting {setting}"))
        for key, message in pacing.rate_limit_problems(settings.get("rate_limit")):
            problems.append(_line(file, [name, "rate_limit", *([key] if key else [])], message))
    return upstreams


def _check_limit(name: str, raw: Any, file: str, path: list,
                 problems: list[str]) -> LimitSpec | None:
    if not isinstance(raw, Mapping):
        problems.append(_line(file, path,
                              "must be a mapping like {option: ..., default: ...} or {value: ...}"))
        return None
    before = len(problems)
    data = _load(_LimitSchema(), raw, file, path, problems)
    has_option, has_value = "option" in raw, "value" in raw
    if has_option and has_value:
        problems.append(_line(file, path, "set either option (configurable) or value (fixed), not both"))
    elif not has_option and not has_value:
        problems.append(_line(file, path, "needs either option (configurable) or value (fixed)"))
    if has_value and "default" in raw:
        problems.append(_line(file, path, "default only applies to an option, not to a fixed value"))

    low, high, choices = data.get("min"), data.get("max"), data.get("choices")
    if low is not None and high is not None and low > high:
        problems.append(_line(file, path, f"min ({low}) is above max ({high})"))
    spec = LimitSpec(name=name, option=data.get("option"), value=data.get("value"),
                     min=low, max=high, choices=choices)

    if choices is not None:
        if low is not None or high is not None:
            problems.append(_line(file, path, "choices cannot be combined with min/max"))
        if name in CORE_LIMITS:
            # Core limits are numbers; accept "10" (quoted, or from ${ENV}) as 10.
            numbers = [_to_int(c) for c in choices]
            if None in numbers:
                problems.append(_line(file, [*path, "choices"], f"{name} choices must be whole numbers"))
            else:
                choices = spec.choices = numbers
        folded = [str(c).casefold() for c in choices]
        for dup in sorted({c for c in folded if folded.count(c) > 1}):
            problems.append(_line(file, [*path, "choices"], f"{dup!r} is listed more than once"))

    # A configurable option is a whole number unless it has choices; so is every
    # core limit, and anything with a range. Other fixed values (a region) are free.
    numeric = choices is None and (has_option or name in CORE_LIMITS
                                   or low is not None or high is not None)
    for key in ("default", "value"):
        if key not in data:
            continue
        given = data[key]
        if choices is not None:
            try:
                data[key] = _match_choice(choices, given)
            except ValueError as e:
                problems.append(_line(file, [*path, key], str(e)))
        elif numeric:
            number = _to_int(given)
            if number is None:
                problems.append(_line(file, [*path, key], f"must be a whole number (got {_got(given)})"))
                continue
            data[key] = number
            floor = _effective_min(spec)
            if high is None and number < floor:
                problems.append(_line(file, path, f"{key} ({number}) is below min ({floor})"))
            elif high is not None and not floor <= number <= high:
                problems.append(_line(file, path, f"{key} ({number}) is outside min..max ({floor}..{high})"))
    spec.value, spec.default = data.get("value"), data.get("default")
    return spec if len(problems) == before else None


def _check_product(raw: Any, environ: Mapping[str, str], file: str, source: str,
                   upstreams: dict[str, dict[str, Any]] | None,
                   problems: list[str]) -> tuple[dict, Product | None]:
    """The loaded fields (for cross-file checks) and the Product if the file is sound."""
    if raw is None:
        problems.append(_line(file, [], "the file is empty"))
        return {}, None
    if not isinstance(raw, Mapping):
        problems.append(_line(file, [], "must be a mapping with id, billing_product_ids, upstream, limits"))
        return {}, None
    before = len(problems)
    resolved = _resolve(raw, [], environ, file, problems)
    data = _load(_ProductSchema(), resolved, file, [], problems)

    ids = data.get("billing_product_ids") or []
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(_line(file, ["billing_product_ids"], f"billing product id {dup!r} is listed twice"))

    known_limits: frozenset[str] | None = None   # None: cannot tell (upstream unknown)
    upstream = data.get("upstream")
    if upstream is not None and upstreams is not None:
        if upstream not in upstreams:
            known = ", ".join(sorted(upstreams)) or "none"
            problems.append(_line(file, ["upstream"], f"unknown upstream {upstream!r} (known: {known})"))
        else:
            kind = upstreams[upstream].get("provider")
            info = _provider_info(kind) if isinstance(kind, str) else None
            if info is not None:
                known_limits = CORE_LIMITS | info[0]

    limits: dict[str, LimitSpec] = {}
    options_seen: dict[str, str] = {}
    for name, spec_raw in (data.get("limits") or {}).items():
        path = ["limits", name]
        if known_limits is not None and name not in known_limits:
            problems.append(_line(file, path, f"unknown limit name {name!r} for provider {kind} "
                                              f"(known: {', '.join(sorted(known_limits))})"))
        spec = _check_limit(str(name), spec_raw, file, path, problems)
        if spec is None:
            continue
        limits[spec.name] = spec
        if spec.option is not None:
            key = spec.option_key
            if not key:
                problems.append(_line(file, [*path, "option"], "must name a billing option"))
            elif key in options_seen:
                problems.append(_line(file, [*path, "option"],
                                      f"{spec.option!r} is also used by limits.{options_seen[key]}"))
            else:
                options_seen[key] = spec.name

    lifecycle = Lifecycle(**(data.get("lifecycle") or {}))
    if len(problems) > before or not {"id", "upstream", "billing_product_ids"} <= data.keys():
        return data, None
    return data, Product(id=data["id"], billing_product_ids=list(ids), upstream=upstream,
                         limits=limits, lifecycle=lifecycle, source=source,
                         sources=list(dict.fromkeys(data["sources"])) if data.get("sources") else None)


def _read_sources(root: Path, environ: Mapping[str, str], problems: list[str]) -> dict[str, BillingSource] | None:
    """The sources of billing.yaml (None if unreadable: product look-ups are then skipped)."""
    present = [n for n in BILLING_FILES if (root / n).is_file()]
    if len(present) > 1:
        problems.append(f"{present[1]}: use either {' or '.join(present)}, not both")
    if not present:
        return {}
    raw = _read_yaml(root / present[0], problems)
    if raw is _FAILED:
        return None
    return check_sources(raw, environ, present[0], problems)


def _overlap(a: list[str] | None, b: list[str] | None) -> list[str] | None:
    """The sources two products are both sold by (None: every source); [] if none."""
    if a is None:
        return b
    if b is None:
        return a
    return [name for name in a if name in b]


def _validate(directory: str | os.PathLike, environ: Mapping[str, str] | None
              ) -> tuple[Catalog, list[str]]:
    environ = os.environ if environ is None else environ
    root = Path(directory)
    if not root.is_dir():
        return Catalog(), [f"{directory}: no such directory"]
    problems: list[str] = []

    present = [n for n in _UPSTREAMS_FILES if (root / n).is_file()]
    upstreams: dict[str, dict[str, Any]] | None = None   # None: unreadable, skip look-ups
    if not present:
        problems.append(f"{UPSTREAMS_FILE}: not found in {directory}")
    elif len(present) > 1:
        problems.append(f"{present[1]}: use either {' or '.join(present)}, not both")
    if present:
        raw = _read_yaml(root / present[0], problems)
        if raw is not _FAILED:
            upstreams = _check_upstreams(raw, environ, present[0], problems)

    sources = _read_sources(root, environ, problems)
    catalog = Catalog(upstreams=upstreams or {}, sources=sources or {})
    product_files: dict[str, str] = {}     # product id -> file
    # billing id -> [(product id, file, the sources selling it or None for all)]
    billing_ids: dict[str, list[tuple[str, str, list[str] | None]]] = {}
    for path in sorted(root.iterdir()):
        if (path.suffix not in (".yaml", ".yml") or path.name in _UPSTREAMS_FILES
                or path.name in BILLING_FILES or path.name.startswith(".") or not path.is_file()):
            continue
        raw = _read_yaml(path, problems)
        if raw is _FAILED:
            continue
        data, product = _check_product(raw, environ, path.name, str(path), upstreams, problems)
        product_id = data.get("id")
        if product_id is not None:
            if product_id in product_files:
                problems.append(_line(path.name, ["id"], f"product id {product_id!r} is already "
                                                         f"defined in {product_files[product_id]}"))
                product = None
            else:
                product_files[product_id] = path.name
        sold_by = list(dict.fromkeys(data["sources"])) if data.get("sources") else None
        if sold_by is not None and sources is not None:
            known = [DEFAULT_SOURCE, *sorted(n for n in sources if n != DEFAULT_SOURCE)]
            for name in sold_by:
                if name not in known:
                    problems.append(_line(path.name, ["sources"], f"unknown billing source {name!r} "
                                                                  f"(known: {', '.join(known)})"))
                    product = None
        for billing_id in dict.fromkeys(data.get("billing_product_ids") or []):
            for other, other_file, other_sold_by in billing_ids.get(billing_id, []):
                shared = _overlap(sold_by, other_sold_by)
                if shared is None or shared:
                    by = "" if shared is None else f" for source(s) {', '.join(shared)}"
                    problems.append(_line(path.name, ["billing_product_ids"],
                                          f"billing product id {billing_id!r} is already used{by} by "
                                          f"product {other!r} ({other_file})"))
                    product = None
                    break
            billing_ids.setdefault(billing_id, []).append((product_id, path.name, sold_by))
        if product is not None:
            catalog.products[product.id] = product
    return catalog, problems


def check_configs(directory: str | os.PathLike, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every problem of the configs in ``directory``, one line each (empty: all good)."""
    return _validate(directory, environ)[1]


def load_catalog(directory: str | os.PathLike, environ: Mapping[str, str] | None = None) -> Catalog:
    """The products and upstreams of ``directory``; ProductConfigError if anything is wrong."""
    catalog, problems = _validate(directory, environ)
    if problems:
        raise ProductConfigError(problems)
    return catalog
