"""Real ``provisioner`` processes for the end-to-end tests and ``bench/hook_intake.py``.

A :class:`Stack` is one sandbox simulator (``provisioner simulate sandbox``), the
web app under gunicorn (``provisioner serve``) and zero or more job workers
(``provisioner worker``), all started with ``subprocess.Popen`` from the
``provisioner`` console script next to ``sys.executable``, sharing one database
and one set of freshly generated secrets. Each process writes stdout and stderr
to its own log file; readiness is polled with a deadline.
"""
from __future__ import annotations

import json
import os
import secrets as _random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import requests
import yaml
from sqlalchemy import text

from provisioner.db import Database
from provisioner.devsetup import dev_products_env, new_webhook_secret
from provisioner.secrets import new_fernet_key
from tests.helpers import Signer

ROOT = Path(__file__).resolve().parents[2]
PROVISIONER = Path(sys.executable).parent / "provisioner"
HTTP_TIMEOUT = 10          # seconds, every HTTP call that does not hold a Prefer: wait
START_TIMEOUT = 30         # seconds for a process to become ready
STOP_GRACE = 5             # seconds between SIGTERM and SIGKILL
FINISHED = ("succeeded", "failed", "skipped")

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.1,
               alive: Callable[[], None] | None = None) -> T:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout``.

    ``alive`` is called on every round and should raise if a process died."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        if alive is not None:
            alive()
        try:
            last = check()
        except (requests.RequestException, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class ProcessDied(AssertionError):
    pass


class Proc:
    """One ``provisioner ...`` child process with its log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_path
        self.popen: subprocess.Popen | None = None
        self._log = None

    def start(self) -> "Proc":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        # A session of its own: gunicorn's workers can be reaped as one group.
        self.popen = subprocess.Popen([str(PROVISIONER), *self.args], env=self.env, cwd=str(ROOT),
                                      stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise ProcessDied(f"{self.name} exited with {self.popen.returncode} (log: {self.log_path})")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """SIGKILL, no clean-up: what a crash looks like."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        self._close_log()

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, then SIGKILL (to the whole process group) after ``grace`` seconds."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(timeout=10)
        # Children (gunicorn workers) left behind by a leader that is gone.
        self._signal_group(signal.SIGKILL)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def process_env(database_url: str, instance_dir: Path, *, webhook_secret: str, sandbox_url: str,
                lease_seconds: float | None = None, products_dir: Path | None = None,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every process of one stack shares.

    Inherited ``PROVISIONER_*`` and ``SANDBOX_*`` variables are dropped so that
    nothing from the developer's shell (or a repository ``instance/.env``:
    the instance directory is a fresh one) leaks in."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PROVISIONER_", "SANDBOX_"))}
    env.update({
        "PROVISIONER_DATABASE_URL": database_url,
        "PROVISIONER_WEBHOOK_SECRETS": webhook_secret,
        "PROVISIONER_SECRET_KEY": _random.token_urlsafe(32),
        "PROVISIONER_ENCRYPTION_KEY": new_fernet_key(),
        "PROVISIONER_INSTANCE_DIR": str(instance_dir),
        "PROVISIONER_PRODUCTS_DIR": str(products_dir or ROOT / "product_configs"),
        "PROVISIONER_JOB_BACKOFF_BASE": "0.05",
        "PROVISIONER_JOB_BACKOFF_CAP": "0.5",
        "PROVISIONER_WORKER_POLL_INTERVAL": "0.05",
        "PROVISIONER_LOG_LEVEL": "INFO",
        **dev_products_env({"sandbox": sandbox_url}),
        "PYTHONUNBUFFERED": "1",
        # gunicorn's control socket defaults to one per user ($XDG_RUNTIME_DIR or
        # ~/.gunicorn/gunicorn.ctl): keep concurrent stacks from fighting over it.
        "XDG_RUNTIME_DIR": str(instance_dir.parent / "run"),
    })
    if lease_seconds is not None:
        env["PROVISIONER_JOB_LEASE_SECONDS"] = str(lease_seconds)
    env.update(extra or {})
    return env


def products_dir_with_settings(target: Path, settings: dict[str, dict[str, Any]]) -> Path:
    """A copy of product_configs/ with ``settings`` (upstream name -> its settings to set,
    ``"*"``: every upstream) merged into upstreams.yaml."""
    shutil.copytree(ROOT / "product_configs", target)
    upstreams = target / "upstreams.yaml"
    document = yaml.safe_load(upstreams.read_text())
    for name, upstream in document.items():
        upstream.update({**settings.get("*", {}), **settings.get(name, {})})
    upstreams.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def products_dir_with_timeout(target: Path, timeout: float) -> Path:
    """A copy of product_configs/ whose upstreams give up after ``timeout`` seconds."""
    return products_dir_with_settings(target, {"*": {"timeout": timeout}})


class Stack:
    """Simulator + web app + workers on one database; see the module docstring."""

    def __init__(self, workdir: Path, database_url: str, *, lease_seconds: float | None = None,
                 server_workers: int = 2, products_dir: Path | None = None,
                 extra_env: dict[str, str] | None = None):
        self.workdir = workdir
        self.logs_dir = workdir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        (workdir / "run").mkdir(mode=0o700, exist_ok=True)
        self.database_url = database_url
        self.webhook_secret = new_webhook_secret()
        self.signer = Signer(self.webhook_secret)
        self.sim_port = free_port()
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.web_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.server_workers = server_workers
        self.env = process_env(database_url, workdir / "instance", webhook_secret=self.webhook_secret,
                               sandbox_url=self.sim_url, lease_seconds=lease_seconds,
                               products_dir=products_dir, extra=extra_env)
        self.procs: list[Proc] = []
        self.sim: Proc | None = None
        self.server: Proc | None = None
        self.workers: list[Proc] = []
        self.admin_key: str | None = None
        self.http = requests.Session()
        self.db = Database(database_url)

    # --- processes ---------------------------------------------------------------
    def _proc(self, name: str, args: list[str]) -> Proc:
        proc = Proc(name, args, self.env, self.logs_dir / f"{name}.log")
        self.procs.append(proc)
        return proc.start()

    def check_alive(self) -> None:
        for proc in (self.sim, self.server, *self.workers):
            if proc is not None and proc.popen is not None and proc.popen.returncode is None:
                proc.check_alive()

    def start_simulator(self) -> Proc:
        self.sim = self._proc("simulator", ["simulate", "sandbox", "--port", str(self.sim_port)])
        wait_until(lambda: self.http.get(f"{self.sim_url}/_sim/state", timeout=2).status_code == 200,
                   timeout=START_TIMEOUT, what="the simulator's /_sim/state", alive=self.sim.check_alive)
        return self.sim

    def start_server(self) -> Proc:
        self.server = self._proc("server", ["serve", "--port", str(self.web_port),
                                            "--workers", str(self.server_workers)])
        wait_until(lambda: self.http.get(f"{self.base_url}/readyz", timeout=2).status_code == 200,
                   timeout=START_TIMEOUT, what="the web app's /readyz", alive=self.server.check_alive)
        return self.server

    def start_worker(self, concurrency: int = 2) -> Proc:
        """A new ``provisioner worker``; ready once it logs that its runners started."""
        name = "worker" if not self.workers else f"worker-{len(self.workers) + 1}"
        worker = self._proc(name, ["worker", "--concurrency", str(concurrency)])
        self.workers.append(worker)
        wait_until(lambda: "started with" in worker.log_text(), timeout=START_TIMEOUT,
                   what=f"{name} to start", alive=worker.check_alive)
        return worker

    def create_admin_key(self) -> str:
        result = subprocess.run([str(PROVISIONER), "api-key", "create", "e2e", "--scope", "admin"],
                                env=self.env, cwd=str(ROOT), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"api-key create failed: {result.stdout}\n{result.stderr}"
        self.admin_key = result.stdout.splitlines()[0].strip()
        assert self.admin_key, "api-key create printed no key"
        return self.admin_key

    def start(self, *, worker_concurrency: int | None = 2) -> "Stack":
        def steps() -> None:
            self.start_simulator()
            self.start_server()
            if worker_concurrency:
                self.start_worker(worker_concurrency)
            self.create_admin_key()

        return self.start_or_close(steps)

    def start_or_close(self, steps: Callable[[], None]) -> "Stack":
        """Run ``steps``; if one fails, stop every process and fail with their logs."""
        try:
            steps()
        except BaseException as exc:
            logs = self.log_tails()
            self.close()
            if isinstance(exc, AssertionError):
                raise AssertionError(f"{exc}\n{logs}") from None
            raise
        return self

    def close(self) -> None:
        self.http.close()        # idle keep-alive connections would hold up gunicorn's graceful stop
        for proc in reversed(self.procs):
            proc.stop()
        self.db.dispose()

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        for proc in self.procs:
            parts.append(f"----- {proc.name} ({proc.log_path}), last {lines} lines -----\n{proc.tail(lines)}")
        return "\n".join(parts)

    def log_texts(self) -> dict[str, str]:
        return {proc.name: proc.log_text() for proc in self.procs}

    # --- billing hooks -------------------------------------------------------------
    def signed(self, body: dict | str, *, msg_id: str | None = None, wait: int | None = None,
               secret: str | None = None, timestamp=None) -> tuple[bytes, dict[str, str]]:
        raw = body if isinstance(body, str) else json.dumps(body)
        signer = Signer(secret) if secret else self.signer
        headers = signer.headers(raw, msg_id or "msg_" + uuid.uuid4().hex, timestamp)
        if wait is not None:
            headers["Prefer"] = f"wait={wait}"
        return raw.encode(), headers

    def post(self, body: dict | str, *, msg_id: str | None = None, wait: int | None = None,
             secret: str | None = None, timestamp=None, session: requests.Session | None = None
             ) -> requests.Response:
        raw, headers = self.signed(body, msg_id=msg_id, wait=wait, secret=secret, timestamp=timestamp)
        return self.post_raw(raw, headers, wait=wait, session=session)

    def post_raw(self, raw: bytes, headers: dict[str, str], *, wait: int | None = None,
                 session: requests.Session | None = None) -> requests.Response:
        timeout = HTTP_TIMEOUT + (wait or 0)
        return (session or requests).post(f"{self.base_url}/hooks/v1/events", data=raw,
                                          headers=headers, timeout=timeout)

    # --- admin API -----------------------------------------------------------------
    def admin_get(self, path: str) -> requests.Response:
        return self.http.get(f"{self.base_url}{path}", timeout=HTTP_TIMEOUT,
                             headers={"Authorization": f"Bearer {self.admin_key}"})

    # --- simulator control ---------------------------------------------------------
    def sim_accounts(self) -> list[dict]:
        resp = self.http.get(f"{self.sim_url}/_sim/state", timeout=HTTP_TIMEOUT)
        resp.raise_for_status()
        return resp.json()["accounts"]

    def live_accounts(self) -> list[dict]:
        return [a for a in self.sim_accounts() if a["status"] != "deleted"]

    def accounts_for(self, service_id: str, *, live: bool = True) -> list[dict]:
        accounts = self.live_accounts() if live else self.sim_accounts()
        return [a for a in accounts if a["native"]["external_id"] == service_id]

    def sim_faults(self, **faults: Any) -> dict:
        resp = self.http.post(f"{self.sim_url}/_sim/faults", json=faults, timeout=HTTP_TIMEOUT)
        resp.raise_for_status()
        return resp.json()["faults"]

    def clear_faults(self) -> dict:
        return self.sim_faults(reset=True)

    def sim_calls(self) -> dict[str, int]:
        resp = self.http.get(f"{self.sim_url}/_sim/calls", timeout=HTTP_TIMEOUT)
        resp.raise_for_status()
        return resp.json()["calls"]

    # --- the database ---------------------------------------------------------------
    def query(self, sql: str, **params: Any) -> list[dict]:
        with self.db.read() as session:
            return [dict(row._mapping) for row in session.execute(text(sql), params)]

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.db.read() as session:
            return session.execute(text(sql), params).scalar()

    def job(self, job_id: str) -> dict:
        rows = self.query("SELECT * FROM jobs WHERE id = :id", id=job_id)
        assert rows, f"no job {job_id}"
        return rows[0]

    def job_state(self, job_id: str) -> str:
        return self.job(job_id)["state"]

    def attempts(self, job_id: str) -> list[dict]:
        return self.query("SELECT * FROM job_attempts WHERE job_id = :id ORDER BY number, id", id=job_id)

    def wait_job(self, job_id: str, *, states: Iterable[str] = FINISHED, timeout: float = 30) -> dict:
        wanted = tuple(states)
        return wait_until(lambda: (job := self.job(job_id))["state"] in wanted and job,
                          timeout=timeout, what=f"job {job_id} to be {'|'.join(wanted)}",
                          alive=self.check_alive)

    def job_counts(self) -> dict[str, int]:
        return {row["state"]: row["n"] for row in
                self.query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")}

    def count(self, table: str) -> int:
        assert table.isidentifier()
        return self.scalar(f"SELECT COUNT(*) FROM {table}")
