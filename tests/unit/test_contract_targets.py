"""Contract targets: a real upstream's target exists only when its environment names one."""
from __future__ import annotations

import importlib

import pytest

import tests.contract.targets as targets
import tests.contract.targets.modoboa_real as modoboa_real


@pytest.fixture
def rediscover(monkeypatch):
    def run(**env: str):
        for name in ("MODOBOA_REAL_URL", "MODOBOA_REAL_TOKEN", "PROVISIONER_CONTRACT_TARGETS"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        importlib.reload(modoboa_real)
        return targets._discover()
    yield run
    monkeypatch.undo()
    importlib.reload(modoboa_real)


def test_the_real_modoboa_target_is_left_out_without_its_environment(rediscover):
    found = rediscover()
    assert "modoboa" in found and "modoboa_real" not in found
    assert not any(t.real for t in found.values())
    with pytest.raises(ValueError, match="modoboa_real.*not configured: set MODOBOA_REAL_URL"):
        rediscover(PROVISIONER_CONTRACT_TARGETS="modoboa_real")


def test_the_real_modoboa_target_points_the_adapter_at_the_instance(rediscover):
    found = rediscover(MODOBOA_REAL_URL="http://127.0.0.1:9/", MODOBOA_REAL_TOKEN="a" * 40,
                       PROVISIONER_CONTRACT_TARGETS="modoboa_real")
    target = found["modoboa_real"]
    assert list(found) == ["modoboa_real"] and target.real and target.real_url == "http://127.0.0.1:9"
    assert target.config(target.real_url, 3) == {"provider": "modoboa", "base_url": "http://127.0.0.1:9",
                                                 "token": "a" * 40, "timeout": 3}
    assert target.bad_credentials(target.real_url)["token"] != "a" * 40
    assert "a" * 40 in target.secrets
    control = target.control(target.real_url)
    with pytest.raises(pytest.skip.Exception, match="faults"):
        control.faults(error_rate=1.0)
    with pytest.raises(pytest.skip.Exception, match="calls"):
        control.total_calls()                   # nothing watched yet
    control.close()
