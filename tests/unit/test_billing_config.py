"""product_configs/billing.yaml: billing sources as `provisioner products check` validates them,
products sold per source, and which source owns a service's lifecycle."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from provisioner.billing.keys import service_key
from provisioner.billing.sources import BillingSource, Sources, authority_for
from provisioner.cli import main
from provisioner.config import Settings
from provisioner.devsetup import new_webhook_secret
from provisioner.products import Lifecycle, Product, check_configs, load_catalog
from tests.unit.test_products import ENV, PRODUCT, configs, fake_providers  # noqa: F401  (fixtures)

SECRET_A, SECRET_B = new_webhook_secret(), new_webhook_secret()
SOURCES_ENV = {**ENV, "MAIN_SECRETS": f"{SECRET_A} {new_webhook_secret()}", "BRAND_SECRETS": SECRET_B,
               "BRAND_CALLBACK_URL": "https://billing.brand.example/callbacks",
               "BRAND_CALLBACK_SECRET": new_webhook_secret()}

BILLING = """
whmcs-main:
  webhook_secrets: ${MAIN_SECRETS}
  callback_url: ${MAIN_CALLBACK_URL:-}
  callback_secret: ${MAIN_CALLBACK_SECRET:-}
  lifecycle_authority: billing
brand-b:
  webhook_secrets: ${BRAND_SECRETS}
  callback_url: ${BRAND_CALLBACK_URL}
  callback_secret: ${BRAND_CALLBACK_SECRET}
  lifecycle_authority: provisioner
"""


def test_the_issue_shape_loads(configs):
    catalog = load_catalog(configs({"billing.yaml": BILLING}), SOURCES_ENV)
    main_, brand = catalog.sources["whmcs-main"], catalog.sources["brand-b"]
    assert main_.webhook_secrets == tuple(SOURCES_ENV["MAIN_SECRETS"].split())   # rotation: two secrets
    assert (main_.callback_url, main_.callback_secret, main_.lifecycle_authority) == ("", "", "billing")
    assert brand.callback_url == "https://billing.brand.example/callbacks"
    assert brand.lifecycle_authority == "provisioner"
    assert "billing" not in [p.id for p in catalog.products.values()]      # billing.yaml is not a product


def test_an_empty_billing_file_adds_no_source(configs):
    assert load_catalog(configs({"billing.yaml": "# sources go here\n"}), ENV).sources == {}


@pytest.mark.parametrize("text, expected", [
    ("Bad_Name:\n  webhook_secrets: ${MAIN_SECRETS}\n  lifecycle_authority: billing\n",
     "billing.yaml: Bad_Name: source names may only contain lower-case letters"),
    ("a:\n  webhook_secrets: whsec_aW5saW5l\n  lifecycle_authority: billing\n",
     "billing.yaml: a.webhook_secrets: secrets must be given as ${ENV} references, not inline"),
    ("a:\n  webhook_secrets: ${MAIN_SECRETS}\n",
     "billing.yaml: a.lifecycle_authority: is required: billing (the billing system suspends and terminates)"),
    ("a:\n  webhook_secrets: ${MAIN_SECRETS}\n  lifecycle_authority: whmcs\n",
     "billing.yaml: a.lifecycle_authority: must be one of billing, provisioner (got 'whmcs')"),
    ("a:\n  webhook_secrets: ${NOT_SET}\n  lifecycle_authority: billing\n",
     "billing.yaml: a.webhook_secrets: environment variable NOT_SET is not set"),
    ("a:\n  webhook_secrets: ${EMPTY:-}\n  lifecycle_authority: billing\n",
     "billing.yaml: a.webhook_secrets: is empty: set the environment variable"),
    ("a:\n  webhook_secrets: ${NOT_WHSEC}\n  lifecycle_authority: billing\n",
     "billing.yaml: a.webhook_secrets: secret 1 is not a whsec_ secret"),
    ("a:\n  webhook_secrets: ${MAIN_SECRETS}\n  lifecycle_authority: billing\n  callback_url: https://x.example/cb\n",
     "billing.yaml: a.callback_secret: is required when callback_url is set (callbacks are signed)"),
    ("a:\n  webhook_secrets: ${MAIN_SECRETS}\n  lifecycle_authority: billing\n  callback_secret: s3cret\n",
     "billing.yaml: a.callback_secret: secrets must be given as ${ENV} references, not inline"),
    ("a:\n  webhook_secrets: ${MAIN_SECRETS}\n  lifecycle_authority: billing\n  color: blue\n",
     "billing.yaml: a.color: unknown key"),
    ("a:\n  webhook_secrets: ${BRAND_SECRETS}\n  lifecycle_authority: billing\n"
     "b:\n  webhook_secrets: ${BRAND_SECRETS}\n  lifecycle_authority: billing\n",
     "billing.yaml: b.webhook_secrets: a secret is also used by a: a signature could not tell the two sources apart"),
    ("- a\n", "billing.yaml: must be a mapping of source name to its settings"),
])
def test_each_problem_is_one_clear_line(configs, text, expected):
    env = {**SOURCES_ENV, "NOT_WHSEC": "secret-without-prefix"}
    problems = check_configs(configs({"billing.yaml": text}), env)
    assert any(line.startswith(expected) for line in problems), problems


def test_the_environment_default_and_billing_yaml_must_not_both_define_default(configs):
    text = "default:\n  webhook_secrets: ${BRAND_SECRETS}\n  lifecycle_authority: provisioner\n"
    env = {**SOURCES_ENV, "PROVISIONER_WEBHOOK_SECRETS": SECRET_A}
    assert any("the default source is defined here and by PROVISIONER_WEBHOOK_SECRETS" in line
               for line in check_configs(configs({"billing.yaml": text}), env))
    shared = "a:\n  webhook_secrets: ${MAIN_SECRETS}\n  lifecycle_authority: billing\n"
    assert any("a secret is also used by PROVISIONER_WEBHOOK_SECRETS" in line
               for line in check_configs(configs({"billing.yaml": shared}), env))


def product(pid: str, ids: str, sources: str | None) -> str:
    text = PRODUCT.replace("id: business-mail", f"id: {pid}").replace('["12", "13"]', ids)
    return text + (f"sources: {sources}\n" if sources else "")


def test_billing_product_ids_are_per_source(configs):
    files = {"billing.yaml": BILLING,
             "business-mail.yaml": product("business-mail", '["12"]', "[whmcs-main]"),
             "brand-mail.yaml": product("brand-mail", '["12"]', "[brand-b]")}
    catalog = load_catalog(configs(files), SOURCES_ENV)
    assert catalog.product_for_billing_id("12", "whmcs-main").id == "business-mail"
    assert catalog.product_for_billing_id("12", "brand-b").id == "brand-mail"
    assert catalog.product_for_billing_id("12", "default") is None


@pytest.mark.parametrize("first, second, expected", [
    (None, "[brand-b]", "billing product id '12' is already used for source(s) brand-b by product"),
    ("[whmcs-main, brand-b]", "[brand-b]", "already used for source(s) brand-b"),
    (None, None, "billing product id '12' is already used by product"),
])
def test_overlapping_billing_ids_are_refused(configs, first, second, expected):
    files = {"billing.yaml": BILLING, "business-mail.yaml": product("business-mail", '["12"]', first),
             "zz-brand.yaml": product("brand-mail", '["12"]', second)}
    problems = check_configs(configs(files), SOURCES_ENV)
    assert any(expected in line for line in problems), problems


def test_a_product_naming_an_unknown_source_is_refused(configs):
    files = {"billing.yaml": BILLING, "business-mail.yaml": product("business-mail", '["12"]', "[whmcs-mian]")}
    assert any("sources: unknown billing source 'whmcs-mian' (known: default, brand-b, whmcs-main)" in line
               for line in check_configs(configs(files), SOURCES_ENV))


def test_products_may_override_the_sources_authority(configs):
    text = PRODUCT + "  lifecycle_authority: billing\n"
    catalog = load_catalog(configs({"business-mail.yaml": text}), ENV)
    assert catalog.products["business-mail"].lifecycle.lifecycle_authority == "billing"
    provisioner = BillingSource("x", (SECRET_A,), lifecycle_authority="provisioner")
    assert authority_for(provisioner, catalog.products["business-mail"]) == "billing"
    plain = Product("p", ["1"], "sb", {}, Lifecycle())
    assert authority_for(provisioner, plain) == "provisioner"
    assert authority_for(None, plain) == "billing"     # a source no longer configured: nothing automatic
    assert any("lifecycle.lifecycle_authority: must be one of billing, provisioner" in line
               for line in check_configs(configs({"business-mail.yaml": PRODUCT + "  lifecycle_authority: x\n"}),
                                         ENV))


def test_the_default_source_comes_from_the_environment_and_follows_it():
    settings = Settings.from_env({"PROVISIONER_WEBHOOK_SECRETS": SECRET_A})
    catalog = type("C", (), {"sources": {"b": BillingSource("b", (SECRET_B,), lifecycle_authority="billing")}})()
    sources = Sources(settings, lambda: catalog)
    assert sources.names() == ["default", "b"]
    default = sources.default()
    assert (default.webhook_secrets, default.lifecycle_authority, default.origin) == (
        (SECRET_A,), "provisioner", "environment")
    settings.callback_url = "http://127.0.0.1:9/cb"
    assert sources.get("default").callback_url == "http://127.0.0.1:9/cb"
    assert sources.get("nope") is None


def test_service_keys_keep_the_default_sources_ids():
    assert service_key("default", "1042") == "1042"
    assert service_key("whmcs-main", "1042") == "whmcs-main:1042"


def test_products_check_command_reports_billing_yaml(configs):
    directory = configs({"billing.yaml": "a:\n  webhook_secrets: ${MAIN_SECRETS}\n"})
    result = CliRunner().invoke(main, ["products", "check", str(directory)], env=SOURCES_ENV)
    assert result.exit_code == 1
    assert "billing.yaml: a.lifecycle_authority: is required" in result.output
