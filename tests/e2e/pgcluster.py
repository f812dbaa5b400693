"""A throwaway PostgreSQL cluster of the test's own, so a test may stop and restart it.

The machine's server (127.0.0.1:5432) is shared by the whole suite and must never be
restarted by a test; a :class:`PgCluster` is ``initdb`` in a fresh temporary
directory, listening on 127.0.0.1 at a free port with its socket in that directory,
trust authentication and no fsync (nothing in it needs to survive a power cut).

``initdb`` and ``postgres`` refuse to run as root; CI runs as root, so there they
run as the ``postgres`` system user (``runuser``) in a directory that user owns.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.e2e.procs import free_port

SYSTEM_USER = "postgres"      # who runs the server when the tests run as root
SUPERUSER = "postgres"        # the cluster's superuser (initdb -U)
PG_CTL_TIMEOUT = 60           # seconds pg_ctl waits for a start or stop
#: Speed without lying about commits: fsync=off only matters if the machine itself
#: crashes (the OS keeps what was written), but synchronous_commit must stay on —
#: with it off, an immediate stop (a crash) loses commits already answered to
#: clients, and a chaos run counts those as hooks answered 2xx and then lost.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "300",   # 2 serve x 2 gunicorn workers x pool, 2 workers, the test
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] '",
}


class PgUnavailable(Exception):
    """The PostgreSQL server binaries (or the user to run them as) are missing."""


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    PATH first, then Debian's versioned /usr/lib/postgresql/N/bin (newest first)."""
    candidates = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                           key=lambda p: int(Path(p).parent.name)
                                           if Path(p).parent.name.isdigit() else 0, reverse=True)]
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PgUnavailable("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found "
                        "on PATH or in /usr/lib/postgresql/*/bin")


class PgCluster:
    """One local cluster: ``start``, ``stop``, ``restart``, ``create_database``, ``cleanup``."""

    def __init__(self, bindir: Path | None = None, port: int | None = None):
        self.bindir = bindir or find_bindir()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                self._owner = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                raise PgUnavailable(f"running as root and there is no {SYSTEM_USER!r} user "
                                    "to run PostgreSQL as") from None
            if not shutil.which("runuser"):
                raise PgUnavailable("running as root and runuser is missing")
        # Not under pytest's tmp_path: its parents are private to root, and the
        # postgres user must reach this directory.
        self.root = Path(tempfile.mkdtemp(prefix="provisioner-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        self.port = port or free_port()
        if self.as_root:
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
        self.running = False

    # --- commands ----------------------------------------------------------------
    def _run(self, name: str, *args: str, timeout: float = PG_CTL_TIMEOUT + 30) -> subprocess.CompletedProcess:
        command = [str(self.bindir / name), *args]
        if self.as_root:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                cwd=str(self.root), stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}\n{self.log_tail()}")
        return result

    def init(self) -> "PgCluster":
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        lines = [f"{key} = {value}" for key, value in SETTINGS.items()]
        lines += [f"port = {self.port}", f"unix_socket_directories = '{self.root}'"]
        conf = self.data / "postgresql.conf"
        text = conf.read_text() + "\n# tests/e2e/pgcluster.py\n" + "\n".join(lines) + "\n"
        conf.write_text(text)          # root may write it; the owner stays postgres
        return self

    def start(self) -> None:
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log_path), "-w",
                  "-t", str(PG_CTL_TIMEOUT))
        self.running = True
        self.wait_ready()

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash: every backend is cut off at once."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", str(PG_CTL_TIMEOUT))
        self.running = False

    def restart(self, mode: str = "fast", down_for: float = 0.0) -> None:
        self.stop(mode)
        time.sleep(down_for)
        self.start()

    def wait_ready(self, timeout: float = PG_CTL_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    # --- databases -----------------------------------------------------------------
    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL the provisioner takes (PROVISIONER_DATABASE_URL)."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        assert name.isidentifier(), name
        with psycopg.connect(self.dsn("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    # --- teardown --------------------------------------------------------------------
    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (FileNotFoundError, PermissionError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cleanup(self) -> None:
        """Stop the server if it runs (immediately: nothing is kept) and remove its files."""
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w",
                          "-t", str(PG_CTL_TIMEOUT))
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        self.running = False
        shutil.rmtree(self.root, ignore_errors=True)
