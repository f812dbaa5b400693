"""Serve a simulator app over real HTTP: in a background thread (tests, ``dev``)
or in the foreground (``provisioner simulate NAME``)."""
from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from .registry import create_simulator_app, options_from_env

log = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    """No per-request access log: tests and ``dev`` would drown in it."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _PathOnlyHandler(WSGIRequestHandler):
    """Access log without query strings: some real APIs (ResellerClub) carry the
    credentials there, and the simulators accept them the same way."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        self.log("info", '"%s %s %s" %s %s', self.command, path, self.request_version, code, size)


class SimulatorServer:
    """A threaded WSGI server for ``app`` on ``host:port`` (0 picks a free port).

    The socket is bound on construction, so ``url`` is known before ``start()``.
    """

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0, *,
                 access_log: bool = False):
        self.app = app
        handler = _PathOnlyHandler if access_log else _QuietHandler
        self._server = make_server(host, port, app, threaded=True, request_handler=handler)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> SimulatorServer:
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            # A short poll interval keeps stop() (and test teardown) quick.
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                            name=f"simulator-{self.port}", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def stop(self) -> None:
        # Requests still sleeping (latency, timeout faults) run in daemon
        # threads and are not waited for.
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve_forever(name: str, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
    """Run the simulator ``name`` in the foreground (``provisioner simulate``).

    Options left None fall back to the simulator's environment variables
    (e.g. ``SANDBOX_API_KEY``)."""
    given = {k: v for k, v in options.items() if v is not None}
    app = create_simulator_app(name, **{**options_from_env(name), **given})
    server = SimulatorServer(app, host, port, access_log=True)
    # Options are not logged: one of them may be an API key.
    log.info("simulator %s listening on %s", name, server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("simulator %s stopped", name)
