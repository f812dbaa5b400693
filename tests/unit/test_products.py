"""provisioner.products: config validation, options -> limits, downgrades."""
from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import pytest

from provisioner import products
from provisioner.devsetup import dev_products_env
from provisioner.products import (
    CORE_LIMITS, COUNTED_LIMITS, Catalog, Lifecycle, LimitSpec, OptionError, Product,
    ProductConfigError, check_configs, compute_limits, downgrade_violations, load_catalog,
)
from provisioner.providers import registry
from provisioner.providers.base import Provider

SHIPPED = Path(__file__).resolve().parents[2] / "product_configs"


# --- fixtures -------------------------------------------------------------------

class FakeSandbox(Provider):
    kind = "sandbox"
    required_settings = ("base_url",)


class FakeTiered(Provider):
    kind = "tiered"
    extra_limits = frozenset({"plan", "region"})
    required_settings = ("base_url", "username", "password")


#: the real registry, for the tests of the shipped configs (taken before any fixture runs)
REAL_PROVIDERS = dict(registry.PROVIDERS)


@pytest.fixture
def real_providers(monkeypatch):
    """The shipped configs use the real adapters (runs after the autouse fakes)."""
    monkeypatch.setattr(registry, "PROVIDERS", REAL_PROVIDERS)


@pytest.fixture(autouse=True)
def fake_providers(monkeypatch):
    """Register fakes so these tests never depend on the real adapters."""
    module = types.ModuleType("_fake_providers_for_products_tests")
    module.FakeSandbox, module.FakeTiered = FakeSandbox, FakeTiered
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(registry, "PROVIDERS", {
        "sandbox": f"{module.__name__}:FakeSandbox",
        "tiered": f"{module.__name__}:FakeTiered",
    })


UPSTREAMS = """
sb:
  provider: sandbox
  base_url: http://127.0.0.1:8701
tier:
  provider: tiered
  base_url: https://tier.example
  username: reseller
  password: ${TIER_PASSWORD}
"""

PRODUCT = """
id: business-mail
billing_product_ids: ["12", "13"]
upstream: sb
limits:
  mailboxes:          {option: "Total Mailboxes", default: 1, min: 0, max: 10000}
  enhanced_mailboxes: {option: "Total Enhanced Mailboxes", default: 0}
  mailbox_quota_gb:   {option: "Mailbox Quota (GB)", default: 5, min: 1, max: 100}
  aliases:            {option: "Total Aliases", default: 0}
  distribution_lists: {option: "Total Distribution Lists", default: 0}
lifecycle:
  suspend_grace_days: 3
  terminate_after_days: 30
  downgrade: reject
"""

ENV = {"TIER_PASSWORD": "s3cret"}


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


@pytest.fixture
def configs(tmp_path):
    """A config dir with valid upstreams and products; pass files to add/override."""
    def make(files: dict[str, str] | None = None, *, upstreams: str | None = UPSTREAMS) -> Path:
        base = {"business-mail.yaml": PRODUCT}
        if upstreams is not None:
            base["upstreams.yaml"] = upstreams
        return write(tmp_path / "configs", {**base, **(files or {})})
    return make


def problems_for(directory: Path, env=None) -> list[str]:
    return check_configs(directory, ENV if env is None else env)


def product_with(limits: str = "", **top: str) -> str:
    """PRODUCT with its limits block (and top-level lines) replaced."""
    fields = {"id": "x", "billing_product_ids": '["99"]', "upstream": "sb", **top}
    head = "".join(f"{k}: {v}\n" for k, v in fields.items())
    return head + ("limits:\n" + textwrap.indent(textwrap.dedent(limits), "  ") if limits else "")


# --- loading good configs -----------------------------------------------------------

def test_valid_configs_load(configs):
    catalog = load_catalog(configs(), ENV)
    assert isinstance(catalog, Catalog)
    product = catalog.products["business-mail"]
    assert product.billing_product_ids == ["12", "13"]
    assert product.upstream == "sb"
    assert set(product.limits) == CORE_LIMITS
    assert product.limits["mailbox_quota_gb"] == LimitSpec(
        "mailbox_quota_gb", "Mailbox Quota (GB)", None, 5, 1, 100, None)
    assert product.lifecycle == Lifecycle(3, 30, "reject", True)   # termination waits for an operator by default
    assert product.source.endswith("business-mail.yaml")
    assert catalog.product_for_billing_id("13") is product
    assert catalog.product_for_billing_id(" 12 ") is product
    assert catalog.product_for_billing_id("14") is None
    assert catalog.upstream_config("tier") == {
        "provider": "tiered", "base_url": "https://tier.example",
        "username": "reseller", "password": "s3cret"}
    with pytest.raises(KeyError, match="nope"):
        catalog.upstream_config("nope")


def test_upstream_config_is_a_copy(configs):
    catalog = load_catalog(configs(), ENV)
    catalog.upstream_config("sb")["base_url"] = "changed"
    assert catalog.upstream_config("sb")["base_url"] == "http://127.0.0.1:8701"


def test_lifecycle_defaults_and_yml_files_and_numeric_billing_ids(configs):
    directory = configs({"other.yml": product_with(
        "mailboxes: {value: 3}", billing_product_ids="[7, 8]")})
    product = load_catalog(directory, ENV).products["x"]
    assert product.billing_product_ids == ["7", "8"]
    assert product.lifecycle == Lifecycle()
    assert product.limits["mailboxes"].value == 3


def test_hidden_and_non_yaml_files_are_ignored(configs):
    directory = configs({".#draft.yaml": "broken: [", "README.md": "notes"})
    assert problems_for(directory) == []


def test_shipped_configs_validate(real_providers):
    assert check_configs(SHIPPED, dev_products_env()) == []
    catalog = load_catalog(SHIPPED, dev_products_env())
    assert catalog.upstream_config("sandbox") == {
        "provider": "sandbox", "base_url": "http://127.0.0.1:8701", "api_key": ""}
    product = catalog.products["sandbox-mail"]
    assert catalog.product_for_billing_id("1") is product
    assert catalog.product_for_billing_id("12") is product
    assert set(product.limits) == CORE_LIMITS
    limits = compute_limits(product, {"Total Mailboxes": 5, "Mailbox Quota (GB)": 10})
    assert limits == {"mailboxes": 5, "enhanced_mailboxes": 0, "mailbox_quota_gb": 10,
                      "aliases": 0, "distribution_lists": 0}


def test_shipped_configs_take_the_sandbox_url_from_the_environment(real_providers):
    catalog = load_catalog(SHIPPED, {**dev_products_env(), "SANDBOX_URL": "http://10.0.0.5:9000",
                                     "SANDBOX_API_KEY": "k"})
    assert catalog.upstream_config("sandbox")["base_url"] == "http://10.0.0.5:9000"
    assert catalog.upstream_config("sandbox")["api_key"] == "k"


def test_provider_class_that_cannot_be_imported_falls_back(configs, monkeypatch):
    monkeypatch.setattr(registry, "PROVIDERS", {"sandbox": "no_such_module_xyz:Nothing"})
    directory = configs(upstreams="sb:\n  provider: sandbox\n")
    assert problems_for(directory) == ["upstreams.yaml: sb: missing required setting base_url"]
    directory = configs(upstreams="sb:\n  provider: sandbox\n  base_url: http://x\n")
    assert problems_for(directory) == []


# --- problem lines ------------------------------------------------------------------

def test_min_above_max(configs):
    directory = configs({"business-mail.yaml": PRODUCT.replace(
        "default: 5, min: 1, max: 100", "default: 5, min: 10, max: 5")})
    assert "business-mail.yaml: limits.mailbox_quota_gb: min (10) is above max (5)" in problems_for(directory)


def test_unset_environment_variable(configs):
    assert problems_for(configs(), env={}) == [
        "upstreams.yaml: tier.password: environment variable TIER_PASSWORD is not set"]
    assert problems_for(configs(), env={"TIER_PASSWORD": ""}) == [
        "upstreams.yaml: tier.password: environment variable TIER_PASSWORD is empty"]


def test_unknown_upstream(configs):
    directory = configs({"business-mail.yaml": PRODUCT.replace("upstream: sb", "upstream: polaris2")})
    assert problems_for(directory) == [
        "business-mail.yaml: upstream: unknown upstream 'polaris2' (known: sb, tier)"]


def test_unknown_provider_kind(configs):
    directory = configs(upstreams="polaris:\n  provider: polarismail2\n")
    assert "upstreams.yaml: polaris.provider: unknown provider kind 'polarismail2' " \
           "(known: sandbox, tiered)" in problems_for(directory)


def test_unknown_limit_name_lists_core_and_provider_limits(configs):
    directory = configs({"x.yaml": product_with("foo: {value: 1}\nplan: {value: gold}", upstream="tier")})
    assert problems_for(directory) == [
        "x.yaml: limits.foo: unknown limit name 'foo' for provider tiered (known: aliases, "
        "distribution_lists, enhanced_mailboxes, mailbox_quota_gb, mailboxes, plan, region)"]


def test_provider_extra_limits_are_accepted(configs):
    directory = configs({"x.yaml": product_with(
        "plan: {option: Plan, choices: [basic, professional], default: basic}\n"
        "region: {value: eu}", upstream="tier")})
    product = load_catalog(directory, ENV).products["x"]
    assert product.limits["region"].value == "eu"
    assert compute_limits(product, {}) == {"plan": "basic", "region": "eu"}


def test_missing_required_settings(configs):
    directory = configs(upstreams="sb:\n  provider: sandbox\n"
                                   "tier:\n  provider: tiered\n  base_url: ''\n  username:\n")
    assert problems_for(directory) == [
        "upstreams.yaml: sb: missing required setting base_url",
        "upstreams.yaml: tier: missing required setting base_url",
        "upstreams.yaml: tier: missing required setting username",
        "upstreams.yaml: tier: missing required setting password",
    ]


def test_missing_provider_and_bad_upstream_blocks(configs):
    directory = configs(upstreams="sb:\n  base_url: http://x\nbad name:\n  provider: sandbox\n"
                                   "  base_url: http://x\nscalar: 5\n")
    found = problems_for(directory)
    assert "upstreams.yaml: sb.provider: is required" in found
    assert "upstreams.yaml: bad name: upstream names may only contain letters, digits, " \
           "'.', '-' and '_'" in found
    assert "upstreams.yaml: scalar: must be a mapping of settings (provider: ..., ...)" in found


def test_upstreams_file_must_be_a_mapping(configs):
    directory = configs(upstreams="- just\n- a list\n")
    assert "upstreams.yaml: must be a mapping of upstream name to its settings" in problems_for(directory)


def test_inline_secrets_are_refused(configs):
    directory = configs(upstreams="""
        sb: {provider: sandbox, base_url: "http://x"}
        tier:
          provider: tiered
          base_url: https://tier.example
          username: reseller
          password: hunter2
          api_key: 12345
          auth:
            client_secret: abc
          token_url: https://tier.example/token
          access_token: ${TOKEN:-inline}
          key_file: /etc/tier.pem
    """)
    assert problems_for(directory) == [
        "upstreams.yaml: tier.password: secrets must be given as ${ENV} references, not inline",
        "upstreams.yaml: tier.api_key: secrets must be given as ${ENV} references, not inline",
        "upstreams.yaml: tier.auth.client_secret: secrets must be given as ${ENV} references, not inline",
        "upstreams.yaml: tier.access_token: secrets must be given as ${ENV} references, "
        "not inline (a default after :- is inline too)",
    ]


def test_secret_reference_with_empty_default_is_allowed(configs):
    directory = configs(upstreams="sb:\n  provider: sandbox\n  base_url: http://x\n"
                                   "  apiKey: ${SB_KEY:-}\n")
    assert load_catalog(directory, {}).upstream_config("sb")["apiKey"] == ""


def test_duplicate_billing_ids_across_and_within_products(configs):
    directory = configs({
        "a-second.yaml": product_with(billing_product_ids='["13", "14", "14"]'),
    })
    assert problems_for(directory) == [
        "a-second.yaml: billing_product_ids: billing product id '14' is listed twice",
        "business-mail.yaml: billing_product_ids: billing product id '13' is already used "
        "by product 'x' (a-second.yaml)",
    ]
    with pytest.raises(ProductConfigError):
        load_catalog(directory, ENV)


def test_duplicate_product_ids(configs):
    directory = configs({"copy.yaml": PRODUCT.replace('["12", "13"]', '["20"]')})
    assert problems_for(directory) == [
        "copy.yaml: id: product id 'business-mail' is already defined in business-mail.yaml"]


def test_limit_with_both_or_neither_option_and_value(configs):
    directory = configs({"x.yaml": product_with("""
        mailboxes: {option: Total Mailboxes, value: 3}
        aliases: {default: 3}
        distribution_lists: {value: 1, default: 1}
    """)})
    assert problems_for(directory) == [
        "x.yaml: limits.mailboxes: set either option (configurable) or value (fixed), not both",
        "x.yaml: limits.aliases: needs either option (configurable) or value (fixed)",
        "x.yaml: limits.distribution_lists: default only applies to an option, not to a fixed value",
    ]


def test_default_and_value_outside_range(configs):
    directory = configs({"x.yaml": product_with("""
        mailbox_quota_gb: {option: Quota, default: 200, min: 1, max: 100}
        mailboxes: {option: Boxes, default: -1}
        aliases: {value: 50, max: 10}
    """)})
    assert problems_for(directory) == [
        "x.yaml: limits.mailbox_quota_gb: default (200) is outside min..max (1..100)",
        "x.yaml: limits.mailboxes: default (-1) is below min (0)",
        "x.yaml: limits.aliases: value (50) is outside min..max (0..10)",
    ]


def test_limit_value_types(configs):
    directory = configs({"x.yaml": product_with("""
        mailboxes: {option: Boxes, default: lots, min: one}
        aliases: {value: 2.5}
        distribution_lists: {option: [a, b]}
        enhanced_mailboxes: {option: Enhanced, colour: red}
        mailbox_quota_gb: 10
    """)})
    assert problems_for(directory) == [
        "x.yaml: limits.mailboxes.min: must be a whole number (got 'one')",
        "x.yaml: limits.mailboxes.default: must be a whole number (got 'lots')",
        "x.yaml: limits.aliases.value: must be a whole number (got 2.5)",
        "x.yaml: limits.distribution_lists.option: must be a string",
        "x.yaml: limits.enhanced_mailboxes.colour: unknown key",
        "x.yaml: limits.mailbox_quota_gb: must be a mapping like {option: ..., default: ...} or {value: ...}",
    ]


def test_choices_config_problems(configs):
    directory = configs({"x.yaml": product_with("""
        plan: {option: Plan, choices: [basic, Basic], default: gold}
        region: {option: Region, choices: [eu, us], min: 1}
        mailbox_quota_gb: {option: Quota, choices: [5, ten]}
    """, upstream="tier")})
    assert problems_for(directory) == [
        "x.yaml: limits.plan.choices: 'basic' is listed more than once",
        "x.yaml: limits.plan.default: must be one of basic, Basic (got 'gold')",
        "x.yaml: limits.region: choices cannot be combined with min/max",
        "x.yaml: limits.mailbox_quota_gb.choices: mailbox_quota_gb choices must be whole numbers",
    ]


def test_two_limits_on_one_option(configs):
    directory = configs({"x.yaml": product_with("""
        mailboxes: {option: Total Mailboxes}
        aliases: {option: " total mailboxes |Aliases"}
    """)})
    assert problems_for(directory) == [
        "x.yaml: limits.aliases.option: ' total mailboxes |Aliases' is also used by limits.mailboxes"]


def test_lifecycle_problems(configs):
    directory = configs({"business-mail.yaml": PRODUCT.replace(
        "suspend_grace_days: 3", "suspend_grace_days: -1").replace(
        "terminate_after_days: 30", "terminate_after_days: -5\n  terminate_requires_operator: maybe\n"
                                    "  grace: 2").replace("downgrade: reject", "downgrade: refuse")})
    assert sorted(problems_for(directory)) == sorted([
        "business-mail.yaml: lifecycle.suspend_grace_days: must not be negative (got -1)",
        "business-mail.yaml: lifecycle.terminate_after_days: must not be negative (got -5)",
        "business-mail.yaml: lifecycle.downgrade: must be one of reject, allow (got 'refuse')",
        "business-mail.yaml: lifecycle.terminate_requires_operator: must be true or false",
        "business-mail.yaml: lifecycle.grace: unknown key",
    ])


def test_product_structure_problems(configs):
    directory = configs({
        "a.yaml": "id: has space\nbilling_product_ids: []\nupstreams: sb\n",
        "b.yaml": "",
        "c.yaml": "- a list\n",
        "d.yaml": product_with(billing_product_ids='[true, "", "5"]', upstream="[sb]"),
    })
    assert problems_for(directory) == [
        "a.yaml: id: may only contain letters, digits, '.', '-' and '_'",
        "a.yaml: billing_product_ids: must list at least one billing product id",
        "a.yaml: upstream: is required",
        "a.yaml: upstreams: unknown key",
        "b.yaml: the file is empty",
        "c.yaml: must be a mapping with id, billing_product_ids, upstream, limits",
        "d.yaml: billing_product_ids[0]: must be a string or a whole number",
        "d.yaml: billing_product_ids[1]: must not be empty",
        "d.yaml: upstream: must be a string",
    ]


def test_yaml_syntax_error_names_the_line(configs):
    directory = configs({"broken.yaml": "id: x\nlimits:\n  mailboxes: {option: [\n"})
    [problem] = problems_for(directory)
    assert problem.startswith("broken.yaml: line 4, column 1: invalid YAML: ")


def test_yaml_duplicate_keys_are_refused(configs):
    directory = configs({"business-mail.yaml": PRODUCT + "upstream: tier\n"})
    [problem] = problems_for(directory)
    assert problem == "business-mail.yaml: line 15, column 1: invalid YAML: found duplicate key 'upstream'"


def test_missing_directory(tmp_path):
    assert check_configs(tmp_path / "nowhere", {}) == [f"{tmp_path / 'nowhere'}: no such directory"]


def test_missing_upstreams_file_does_not_cascade(configs):
    directory = configs(upstreams=None)
    assert problems_for(directory) == [f"upstreams.yaml: not found in {directory}"]


def test_broken_upstreams_file_does_not_cascade(configs):
    directory = configs(upstreams="sb: [\n")
    [problem] = problems_for(directory)
    assert problem.startswith("upstreams.yaml: line ")


def test_empty_upstreams_file_makes_every_upstream_unknown(configs):
    directory = configs(upstreams="")
    assert problems_for(directory) == [
        "business-mail.yaml: upstream: unknown upstream 'sb' (known: none)"]


def test_all_problems_are_collected_and_raised_together(configs):
    directory = configs({
        "x.yaml": product_with("mailboxes: {option: Boxes, min: 5, max: 1}", upstream="nope"),
        "y.yaml": "id: [\n",
    }, upstreams=UPSTREAMS + "z:\n  provider: unknown\n")
    found = check_configs(directory, {})
    assert found == [
        "upstreams.yaml: tier.password: environment variable TIER_PASSWORD is not set",
        "upstreams.yaml: z.provider: unknown provider kind 'unknown' (known: sandbox, tiered)",
        "x.yaml: upstream: unknown upstream 'nope' (known: sb, tier, z)",
        "x.yaml: limits.mailboxes: min (5) is above max (1)",
        found[4],
    ]
    assert found[4].startswith("y.yaml: line 2")
    with pytest.raises(ProductConfigError) as info:
        load_catalog(directory, {})
    assert info.value.problems == found
    assert str(info.value) == "\n".join(found)


# --- ${ENV} references ---------------------------------------------------------------

def test_env_references_and_defaults(configs):
    directory = configs({"x.yaml": product_with(
        "mailboxes: {option: '${BOX_OPTION:-Total Boxes}', default: '${BOX_DEFAULT:-2}', max: '${BOX_MAX}'}",
        billing_product_ids='["${PID}"]')}, upstreams="""
        sb:
          provider: sandbox
          base_url: https://${HOST}:${PORT:-8443}/api
          note: ${EMPTY:-fallback}
    """)
    env = {"HOST": "mail.example", "PID": "77", "BOX_MAX": "9", "EMPTY": ""}
    catalog = load_catalog(directory, env)
    assert catalog.upstream_config("sb") == {
        "provider": "sandbox", "base_url": "https://mail.example:8443/api", "note": "fallback"}
    spec = catalog.product_for_billing_id("77").limits["mailboxes"]
    assert (spec.option, spec.default, spec.max) == ("Total Boxes", 2, 9)

    env["PORT"], env["BOX_OPTION"] = "9443", "Boxes"
    catalog = load_catalog(directory, env)
    assert catalog.upstream_config("sb")["base_url"] == "https://mail.example:9443/api"
    assert catalog.products["x"].limits["mailboxes"].option == "Boxes"


def test_env_problems_in_product_files(configs):
    directory = configs({"x.yaml": product_with("mailboxes: {value: '${BOXES}'}", upstream="${UP:-sb}")},
                        upstreams="sb:\n  provider: sandbox\n  base_url: ${URL\n")
    assert problems_for(directory) == [
        "upstreams.yaml: sb.base_url: malformed ${...} reference (use ${NAME} or ${NAME:-default})",
        "x.yaml: limits.mailboxes.value: environment variable BOXES is not set",
        "x.yaml: limits.mailboxes.value: must be a whole number (got '${BOXES}')",
    ]


# --- compute_limits -------------------------------------------------------------------

@pytest.fixture
def product(configs) -> Product:
    return load_catalog(configs(), ENV).products["business-mail"]


def make_product(**limits: LimitSpec) -> Product:
    return Product(id="p", billing_product_ids=["1"], upstream="sb",
                   limits={name: spec for name, spec in limits.items()}, lifecycle=Lifecycle(),
                   source="test")


def test_defaults_when_options_are_absent(product):
    assert compute_limits(product, {}) == {
        "mailboxes": 1, "enhanced_mailboxes": 0, "mailbox_quota_gb": 5,
        "aliases": 0, "distribution_lists": 0}
    # Billing systems send "" (or null) for options nobody set.
    assert compute_limits(product, {"Total Mailboxes": " ", "Total Aliases": None})["mailboxes"] == 1


@pytest.mark.parametrize("key", [
    "Total Mailboxes", "total mailboxes", "  TOTAL MAILBOXES  ",
    "total mailboxes|Total Mailboxes", "Total Mailboxes | Mailboxes (each)",
])
def test_option_names_match_before_the_pipe_trimmed_and_caseless(product, key):
    assert compute_limits(product, {key: 7})["mailboxes"] == 7


def test_configured_option_names_with_a_pipe(product):
    spec = LimitSpec("mailboxes", option="boxes|Total Mailboxes", default=1)
    p = make_product(mailboxes=spec)
    assert compute_limits(p, {"BOXES": 3}) == {"mailboxes": 3}
    assert compute_limits(p, {"boxes|Whatever": 4}) == {"mailboxes": 4}
    assert compute_limits(p, {"Total Mailboxes": 9}) == {"mailboxes": 1}   # display part not matched
    assert spec.display_name == "Total Mailboxes"


@pytest.mark.parametrize("raw, expected", [
    (5, 5), ("5", 5), (" 10 ", 10), (10.0, 10), ("+3", 3),
    ("10 GB", 10), ("10GB", 10), ("10|10 GB", 10), (" 25 | 25 GB mailbox", 25),
])
def test_integer_values(raw, expected):
    p = make_product(mailbox_quota_gb=LimitSpec("mailbox_quota_gb", option="Quota", default=5, max=100))
    assert compute_limits(p, {"Quota": raw}) == {"mailbox_quota_gb": expected}


@pytest.mark.parametrize("raw, message", [
    ("abc", "must be a whole number (got 'abc')"),
    ("2.5", "must be a whole number (got '2.5')"),
    (2.5, "must be a whole number (got 2.5)"),
    ("1.5 GB", "must be a whole number (got '1.5 GB')"),
    ("10 x 2", "must be a whole number (got '10 x 2')"),
    (True, "must be a whole number (got True)"),
    ([3], "must be a whole number (got [3])"),
    (500, "must be between 1 and 100 (got 500)"),
    ("0", "must be between 1 and 100 (got 0)"),
])
def test_bad_integer_values(raw, message):
    p = make_product(mailbox_quota_gb=LimitSpec("mailbox_quota_gb", option="Mailbox Quota (GB)",
                                                default=5, min=1, max=100))
    with pytest.raises(OptionError) as info:
        compute_limits(p, {"Mailbox Quota (GB)": raw})
    assert info.value.fields == {"Mailbox Quota (GB)": message}


def test_one_sided_ranges_and_the_implicit_minimum():
    p = make_product(
        mailboxes=LimitSpec("mailboxes", option="Boxes", default=1),
        aliases=LimitSpec("aliases", option="Aliases", default=0, min=2),
        distribution_lists=LimitSpec("distribution_lists", option="Lists", default=0, max=3),
    )
    with pytest.raises(OptionError) as info:
        compute_limits(p, {"Boxes": -1, "Aliases": 1, "Lists": 4})
    assert info.value.fields == {
        "Boxes": "must be at least 0 (got -1)",
        "Aliases": "must be at least 2 (got 1)",
        "Lists": "must be between 0 and 3 (got 4)",   # the implicit min of 0
    }
    # A config may allow negatives explicitly (an upstream's -1 = unlimited).
    q = make_product(mailboxes=LimitSpec("mailboxes", option="Boxes", default=1, min=-1))
    assert compute_limits(q, {"Boxes": "-1"}) == {"mailboxes": -1}


def test_required_options_and_every_error_at_once():
    p = make_product(
        mailboxes=LimitSpec("mailboxes", option="Total Mailboxes"),
        aliases=LimitSpec("aliases", option="aliases|Total Aliases", default=0, max=10),
        mailbox_quota_gb=LimitSpec("mailbox_quota_gb", value=10),
    )
    with pytest.raises(OptionError) as info:
        compute_limits(p, {"Aliases": 11})
    assert info.value.fields == {"Total Mailboxes": "is required",
                                 "Total Aliases": "must be between 0 and 10 (got 11)"}
    assert str(info.value) == ("Total Mailboxes: is required; "
                               "Total Aliases: must be between 0 and 10 (got 11)")
    assert compute_limits(p, {"total mailboxes": 2}) == {
        "mailboxes": 2, "aliases": 0, "mailbox_quota_gb": 10}


def test_fixed_values_ignore_options():
    p = make_product(mailbox_quota_gb=LimitSpec("mailbox_quota_gb", value=10),
                     region=LimitSpec("region", value="eu"))
    assert compute_limits(p, {"mailbox_quota_gb": 99, "region": "us"}) == {
        "mailbox_quota_gb": 10, "region": "eu"}


def test_string_choices_are_matched_caselessly_to_the_canonical_spelling():
    p = make_product(plan=LimitSpec("plan", option="Plan", default="basic",
                                    choices=["basic", "Professional"]))
    assert compute_limits(p, {"plan": " PROFESSIONAL "}) == {"plan": "Professional"}
    assert compute_limits(p, {"Plan": "professional|Professional plan"}) == {"plan": "Professional"}
    assert compute_limits(p, {}) == {"plan": "basic"}
    with pytest.raises(OptionError) as info:
        compute_limits(p, {"Plan": "gold"})
    assert info.value.fields == {"Plan": "must be one of basic, Professional (got 'gold')"}


def test_numeric_choices(configs):
    directory = configs({"x.yaml": product_with(
        "mailbox_quota_gb: {option: Quota, choices: [5, '10', 50], default: '10'}")})
    p = load_catalog(directory, ENV).products["x"]
    assert p.limits["mailbox_quota_gb"].choices == [5, 10, 50]
    assert compute_limits(p, {}) == {"mailbox_quota_gb": 10}
    assert compute_limits(p, {"quota": "50 GB"}) == {"mailbox_quota_gb": 50}
    with pytest.raises(OptionError) as info:
        compute_limits(p, {"quota": 7})
    assert info.value.fields == {"Quota": "must be one of 5, 10, 50 (got 7)"}


def test_config_options_may_be_none(product):
    assert compute_limits(product, None)["mailboxes"] == 1


# --- downgrade_violations -----------------------------------------------------------

def test_counted_limits():
    assert COUNTED_LIMITS == CORE_LIMITS - {"mailbox_quota_gb"}


def test_downgrade_violations(product):
    new = compute_limits(product, {"Total Mailboxes": 5, "Total Aliases": 0, "Mailbox Quota (GB)": 1})
    usage = {"mailboxes": 7, "enhanced_mailboxes": 0, "aliases": 1, "distribution_lists": 0,
             "storage_mb": 99999}
    assert downgrade_violations(product, new, usage) == {
        "mailboxes": "7 mailboxes are in use, above the new limit of 5",
        "aliases": "1 alias is in use, above the new limit of 0",
    }


def test_downgrade_that_fits(product):
    new = compute_limits(product, {"Total Mailboxes": 5})
    assert downgrade_violations(product, new, {"mailboxes": 5}) == {}
    assert downgrade_violations(product, new, {}) == {}


def test_downgrade_wording_for_the_other_counted_limits():
    p = make_product(enhanced_mailboxes=LimitSpec("enhanced_mailboxes", value=1),
                     distribution_lists=LimitSpec("distribution_lists", value=0),
                     mailboxes=LimitSpec("mailboxes", value=-1, min=-1))
    violations = downgrade_violations(
        p, compute_limits(p, {}), {"enhanced_mailboxes": 2, "distribution_lists": 1, "mailboxes": 50})
    assert violations == {
        "enhanced_mailboxes": "2 enhanced mailboxes are in use, above the new limit of 1",
        "distribution_lists": "1 distribution list is in use, above the new limit of 0",
    }


def test_module_has_no_import_time_state():
    # Loading twice from different dirs must not leak between calls.
    assert products.check_configs(SHIPPED, {}) == products.check_configs(SHIPPED, {})


def test_downgrade_checks_provider_counted_limits_found_in_usage():
    tiers = Product(id="t", billing_product_ids=["1"], upstream="u", limits={
        "premium_mailboxes": LimitSpec("premium_mailboxes", option="Premium", default=0),
        "mailbox_quota_gb": LimitSpec("mailbox_quota_gb", option="Quota", default=5)})
    assert downgrade_violations(tiers, {"premium_mailboxes": 1, "mailbox_quota_gb": 1},
                                {"premium_mailboxes": 3, "storage_mb": 9000}) == {
        "premium_mailboxes": "3 Premium mailboxes are in use, above the new limit of 1"}
