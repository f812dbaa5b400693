"""`provisioner simulate`'s options: refused where the simulator has no use for them,
handed to the simulator's factory where it does."""
from __future__ import annotations

from click.testing import CliRunner

from provisioner import cli


def test_verification_delay_is_an_option_of_the_qboxmail_simulator_only():
    result = CliRunner().invoke(cli.main, ["simulate", "sandbox", "--verification-delay", "0"])
    assert result.exit_code == 2
    assert "--verification-delay is an option of the qboxmail simulator only" in result.output


def test_a_negative_verification_delay_is_refused():
    result = CliRunner().invoke(cli.main, ["simulate", "qboxmail", "--verification-delay", "-1"])
    assert result.exit_code == 2 and "--verification-delay" in result.output


def test_verification_delay_reaches_the_qboxmail_simulator(monkeypatch):
    started = {}
    monkeypatch.setattr("provisioner.simulators.server.serve_forever",
                        lambda name, host, port, **options: started.update(name=name, **options))
    result = CliRunner().invoke(cli.main, ["simulate", "qboxmail", "--verification-delay", "0"])
    assert result.exit_code == 0, result.output
    assert started == {"name": "qboxmail", "activation_delay": 0.0, "verification_delay": 0.0}
