"""Providers as plug-ins: a separately installed package adds an upstream (adapter,
simulator, contract target) through entry points alone, without editing the provisioner.

The package here is made the way pip lays one out (a module beside its ``.dist-info``
with ``entry_points.txt``) in a temporary folder put on the path."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner.products import check_configs
from provisioner.providers import registry
from provisioner.simulators import registry as sim_registry
from provisioner.simulators.server import SimulatorServer

ROOT = Path(__file__).resolve().parents[2]
PROVISIONER = Path(sys.executable).with_name("provisioner")

PLUGIN = '''
"""acme-mail: an upstream shipped as its own package (here: the sandbox's API under another name)."""
from provisioner.providers.sandbox import SandboxProvider
from provisioner.providers.target import Target
from provisioner.simulators.sandbox import create_app as _sandbox_app


class AcmeMailProvider(SandboxProvider):
    kind = "acmemail"


def create_app(**options):
    return _sandbox_app(**options)


create_app.env_options = {"api_key": "ACME_API_KEY"}


def _config(url, timeout=None):
    config = {"provider": "acmemail", "base_url": url, "api_key": "acme-contract-key"}
    if timeout is not None:
        config["timeout"] = timeout
    return config


TARGET = Target(
    kind="acmemail", simulator="acmemail", sim_options={"api_key": "acme-contract-key"},
    config=_config, bad_credentials=lambda url: {**_config(url), "api_key": "wrong-acme-key"},
    limits={"mailboxes": 2, "enhanced_mailboxes": 1, "mailbox_quota_gb": 10, "aliases": 1,
            "distribution_lists": 1},
    secrets=("acme-contract-key", "wrong-acme-key"),
    create_action="accounts.create", read_action="accounts.list",
)
'''

ENTRY_POINTS = '''
[provisioner.providers]
acmemail = acme_mail_plugin:AcmeMailProvider

[provisioner.simulators]
acmemail = acme_mail_plugin:create_app

[provisioner.contract_targets]
acmemail = acme_mail_plugin:TARGET
'''


@pytest.fixture
def plugin_site(tmp_path) -> Path:
    site = tmp_path / "site"
    (site / "acme_mail_plugin").mkdir(parents=True)
    (site / "acme_mail_plugin" / "__init__.py").write_text(PLUGIN)
    info = site / "acme_mail_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-mail-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


@pytest.fixture
def installed(plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_site))
    tables = (registry.PROVIDERS, sim_registry.SIMULATORS)
    for table in tables:
        table.refresh()
    yield plugin_site
    monkeypatch.undo()
    for table in tables:
        table.refresh()


def _env(site: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), **extra}
    env.pop("PROVISIONER_TEST_DATABASE_URL", None)    # the nested suite needs no database
    return env


def test_the_built_in_providers_are_found_as_entry_points_too():
    assert {"sandbox", "resellerclub", "polarismail", "mailboxorg", "qboxmail"} <= set(registry.PROVIDERS)
    assert set(registry.PROVIDERS) <= set(sim_registry.SIMULATORS)
    assert registry.provider_class("qboxmail").__name__ == "QboxmailProvider"


def test_an_installed_package_adds_an_adapter_and_its_simulator(installed, tmp_path):
    cls = registry.provider_class("acmemail")
    assert cls.__module__ == "acme_mail_plugin" and cls.kind == "acmemail"
    assert sim_registry.options_from_env("acmemail", {"ACME_API_KEY": "k1"}) == {"api_key": "k1"}

    server = SimulatorServer(sim_registry.create_simulator_app("acmemail", api_key="k1")).start()
    try:
        provider = registry.build_provider("acme", {"provider": "acmemail", "base_url": server.url,
                                                    "api_key": "k1"})
        assert provider.list_accounts(page=1, per_page=10).items == []
    finally:
        server.stop()

    # products check knows the new kind and its settings
    configs = tmp_path / "products"
    configs.mkdir()
    (configs / "upstreams.yaml").write_text("acme:\n  provider: acmemail\n")
    problems = check_configs(configs, environ={})
    assert problems == ["upstreams.yaml: acme: missing required setting base_url"], problems


def test_without_the_package_the_kind_is_unknown_and_says_which_are_known(tmp_path):
    configs = tmp_path / "products"
    configs.mkdir()
    (configs / "upstreams.yaml").write_text("acme:\n  provider: acmemail\n  base_url: http://x\n")
    [problem] = check_configs(configs, environ={})
    assert "unknown provider kind 'acmemail'" in problem and "qboxmail" in problem


def test_the_commands_find_an_installed_plugin(plugin_site, tmp_path):
    configs = tmp_path / "products"
    configs.mkdir()
    (configs / "upstreams.yaml").write_text("acme:\n  provider: acmemail\n  base_url: http://127.0.0.1:1\n"
                                            "  api_key: ${ACME_API_KEY}\n")
    check = subprocess.run([str(PROVISIONER), "products", "check", str(configs)], env=_env(
        plugin_site, ACME_API_KEY="k"), capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    bare = subprocess.run([str(PROVISIONER), "products", "check", str(configs)], env={
        **os.environ, "ACME_API_KEY": "k"}, capture_output=True, text=True, timeout=60)
    assert bare.returncode == 1 and "unknown provider kind 'acmemail'" in bare.stdout + bare.stderr


def test_the_contract_suite_runs_against_an_installed_plugin(plugin_site):
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/contract", "-v", "-p", "no:cacheprovider", "-x"],
        cwd=ROOT, env=_env(plugin_site, PROVISIONER_CONTRACT_TARGETS="acmemail"),
        capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # the suite's provider-parametrised tests ran for the plug-in's target alone
    ran = [line for line in run.stdout.splitlines()
           if " PASSED" in line and "[" in line.split(" ")[0] and "_published_shapes" not in line]
    assert len(ran) >= 20 and all("[acmemail" in line for line in ran), run.stdout[-3000:]
