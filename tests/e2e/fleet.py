"""A :class:`~tests.e2e.procs.Stack` with several ``serve`` processes behind one
imaginary load balancer, and workers that can be SIGKILLed and started again.

What production looks like with PostgreSQL: more than one web app and more than
one worker on one database. Everything else (the simulator, the shared secrets,
logs, database helpers) is the Stack's.
"""
from __future__ import annotations

from pathlib import Path

from tests.e2e.procs import START_TIMEOUT, Proc, Stack, free_port, wait_until


class Fleet(Stack):
    def __init__(self, workdir: Path, database_url: str, *, servers: int = 2, **options):
        super().__init__(workdir, database_url, **options)
        self.server_count = servers
        self.servers: list[Proc] = []
        self.server_urls: list[str] = []

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
            self.start_simulator()
            self.start_servers()
            for _ in range(workers):
                self.start_worker(worker_concurrency)

        self.start_or_close(steps)
        return self

    def check_alive(self) -> None:
        """Every process that should be running is (one that was killed on purpose and
        has not been started again is not checked)."""
        for proc in self.procs:
            if proc.popen is not None and proc.popen.returncode is None:
                proc.check_alive()

    def restart_worker(self, worker: Proc) -> None:
        """SIGKILL ``worker`` (a crash: no clean-up, its leases left behind) and start it
        again; returns once the new process's runners have started."""
        started = worker.log_text().count("started with")
        worker.kill()
        worker.start()
        wait_until(lambda: worker.log_text().count("started with") > started, timeout=START_TIMEOUT,
                   what=f"{worker.name} to start again", alive=worker.check_alive)
