"""A :class:`~tests.e2e.procs.Stack` with several ``serve`` processes behind one
imaginary load balancer, more upstream simulators than the sandbox, and workers
that can be SIGKILLed and started again.

What production looks like with PostgreSQL: more than one web app and more than
one worker on one database, several upstreams. Everything else (the sandbox
simulator, the shared secrets, logs, database helpers) is the Stack's.
"""
from __future__ import annotations

import threading
from pathlib import Path

import requests

from provisioner.devsetup import DEV_SIMULATORS
from tests.e2e.procs import HTTP_TIMEOUT, START_TIMEOUT, Proc, Stack, free_port, wait_until


class Fleet(Stack):
    def __init__(self, workdir: Path, database_url: str, *, servers: int = 2,
                 simulators: dict[str, list[str]] | None = None, extra_env: dict[str, str] | None = None,
                 **options):
        """``simulators``: upstreams besides the sandbox, each ``provisioner simulate NAME``
        with its extra arguments, on a free port the example products are pointed at (never
        a dev port)."""
        self.sim_args = dict(simulators or {})
        self.sim_urls = {name: f"http://127.0.0.1:{free_port()}" for name in self.sim_args}
        urls = {DEV_SIMULATORS[name].url_var: url for name, url in self.sim_urls.items()}
        super().__init__(workdir, database_url, extra_env={**urls, **(extra_env or {})}, **options)
        self.sim_urls = {"sandbox": self.sim_url, **self.sim_urls}
        self.server_count = servers
        self.servers: list[Proc] = []
        self.server_urls: list[str] = []
        self._restarting: set[str] = set()     # killed on purpose, not yet running again
        self._restart_lock = threading.Lock()

    def start_simulators(self) -> None:
        self.start_simulator()
        for name, url in self.sim_urls.items():
            if name == "sandbox":
                continue
            proc = self._proc(f"simulator-{name}", ["simulate", name, "--port", url.rsplit(":", 1)[1],
                                                    *self.sim_args[name]])
            wait_until(lambda: self.http.get(f"{url}/_sim/state", timeout=2).status_code == 200,
                       timeout=START_TIMEOUT, what=f"the {name} simulator's /_sim/state",
                       alive=proc.check_alive)

    def upstream_accounts(self, simulator: str) -> list[dict]:
        """Every account in ``simulator``'s ``/_sim/state``, deleted ones too."""
        resp = self.http.get(f"{self.sim_urls[simulator]}/_sim/state", timeout=HTTP_TIMEOUT)
        resp.raise_for_status()
        return resp.json()["accounts"]

    def upstream_calls(self, simulator: str) -> int:
        resp = requests.get(f"{self.sim_urls[simulator]}/_sim/calls", timeout=HTTP_TIMEOUT)
        resp.raise_for_status()
        return resp.json()["total"]

    def start_servers(self) -> list[Proc]:
        for n in range(self.server_count):
            port = self.web_port if n == 0 else free_port()
            url = f"http://127.0.0.1:{port}"
            proc = self._proc(f"server-{n + 1}", ["serve", "--port", str(port),
                                                  "--workers", str(self.server_workers)])
            wait_until(lambda: self.http.get(f"{url}/readyz", timeout=2).status_code == 200,
                       timeout=START_TIMEOUT, what=f"{proc.name}'s /readyz", alive=proc.check_alive)
            self.servers.append(proc)
            self.server_urls.append(url)
        self.server = self.servers[0]
        return self.servers

    def start_fleet(self, *, workers: int = 2, worker_concurrency: int = 4) -> "Fleet":
        def steps() -> None:
            self.start_simulators()
            self.start_servers()
            for _ in range(workers):
                self.start_worker(worker_concurrency)

        self.start_or_close(steps)
        return self

    def check_alive(self) -> None:
        """Every process that should be running is (one being killed and started again
        on purpose, by another thread perhaps, is not checked)."""
        for proc in self.procs:
            with self._restart_lock:
                if proc.name in self._restarting:
                    continue
            if proc.popen is not None and proc.popen.returncode is None:
                proc.check_alive()

    def restart_worker(self, worker: Proc) -> None:
        """SIGKILL ``worker`` (a crash: no clean-up, its leases left behind) and start it
        again; returns once the new process's runners have started."""
        started = worker.log_text().count("started with")
        with self._restart_lock:
            self._restarting.add(worker.name)
        try:
            worker.kill()
            worker.start()
        finally:
            with self._restart_lock:
                self._restarting.discard(worker.name)
        wait_until(lambda: worker.log_text().count("started with") > started, timeout=START_TIMEOUT,
                   what=f"{worker.name} to start again", alive=worker.check_alive)
