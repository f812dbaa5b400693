"""Modoboa's own virtualenv for the tests against a real instance (tests/real).

``python tests/real/modoboa_env.py`` (``make modoboa-deps``) creates it once in
``.cache/modoboa-venv`` (``MODOBOA_VENV`` overrides) and reuses it while its stamp names
the same requirements. Modoboa never shares the provisioner's environment: it pins its own
Django and friends. ``rrdtool-bindings`` builds from source (Debian's ``librrd-dev``,
``pkg-config``, gcc and Python's headers).

A failed build exits 1 under ``CI=true`` and 0 elsewhere (the tests then skip, naming
``make modoboa-deps``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ("modoboa[postgresql]==2.12.*", "gunicorn")
INSTALL_TIMEOUT = 900          # seconds; the first install takes about 80 s


def venv_dir() -> Path:
    return Path(os.environ.get("MODOBOA_VENV") or ROOT / ".cache" / "modoboa-venv")


def _stamp(venv: Path) -> Path:
    return venv / ".provisioner-stamp"


def _stamp_text() -> str:
    return "\n".join(REQUIREMENTS) + "\n"


def venv_problem(venv: Path | None = None) -> str | None:
    """Why the cached virtualenv cannot be used, or None."""
    venv = venv or venv_dir()
    stamp = _stamp(venv)
    if not stamp.exists():
        return f"no Modoboa virtualenv in {venv}"
    if stamp.read_text() != _stamp_text():
        return f"the Modoboa virtualenv in {venv} was built for other requirements"
    for tool in ("python", "modoboa-admin.py", "gunicorn"):
        if not (venv / "bin" / tool).exists():
            return f"{venv}/bin/{tool} is missing"
    return None


def ensure_venv(venv: Path | None = None, log=print) -> Path:
    """Build the virtualenv unless a complete one is there; raises on failure."""
    venv = venv or venv_dir()
    if venv_problem(venv) is None:
        return venv
    # A half-built environment (no stamp) is never trusted: start again.
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"creating Modoboa's virtualenv in {venv} ({', '.join(REQUIREMENTS)})")
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--timeout", "60"]
    subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip", "setuptools", "wheel"],
                   check=True, timeout=INSTALL_TIMEOUT)
    subprocess.run([*pip, "install", "--quiet", *REQUIREMENTS], check=True, timeout=INSTALL_TIMEOUT)
    _stamp(venv).write_text(_stamp_text())
    log(f"Modoboa's virtualenv is ready ({time.monotonic() - started:.0f} s)")
    return venv


def main() -> int:
    try:
        ensure_venv()
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"could not build Modoboa's virtualenv: {exc}", file=sys.stderr)
        return 1 if os.environ.get("CI", "").lower() == "true" else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
