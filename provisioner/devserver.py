"""``provisioner dev``: the whole system in one process on the embedded default.

SQLite under ``instance/``, every simulator on loopback, the job worker and the
scheduler in threads, and the web app on a threaded WSGI server.
"""
from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from werkzeug.serving import make_server

from .config import Settings
from .devsetup import DEV_SIMULATORS, ensure_admin_key, ensure_instance_secrets
from .logsetup import announce, log_destination, masked_url, setup_logging
from .migrate import upgrade
from .web.serving import TokenSafeFilter

log = logging.getLogger("provisioner.dev")

BANNER = """
provisioner is running on {url}
  database        {database}
  products        {products}
  logs            {logs} (hooks, jobs, and scheduler passes that change something)
  simulators      {simulators}
  webhook secret  {secret}
  admin API key   {api_key}
(both kept in {instance}/ and reused on the next run)

Try it (sign and send a service.create, waiting up to 10 s for the result):
  .venv/bin/python examples/send_event.py service.create 1042 example.com
  curl -s -H "Authorization: Bearer {api_key}" {url}/api/v1/services/1042
  curl -s {sandbox}/_sim/state
"""


def run_dev(host: str, port: int) -> None:
    from . import create_app
    from .runtime import Runtime
    from .scheduler import build_scheduler
    from .simulators.registry import create_simulator_app
    from .simulators.server import SimulatorServer
    from .worker import Worker

    instance = Path(Settings.from_env().instance_dir)
    ensure_instance_secrets(instance)
    settings = Settings.from_env(dev=True)
    setup_logging(settings.log_level)
    announce("dev", database_url=settings.database_url, products_dir=settings.products_dir,
             log_level=settings.log_level)
    logging.getLogger("werkzeug").addFilter(TokenSafeFilter())  # its request lines hold SSO paths
    settings.require_secrets()
    upgrade(settings.database_url)

    servers = []
    for name, sim in DEV_SIMULATORS.items():
        # The environment may override a credential; simulator and product use the same one.
        options = {option: os.environ.setdefault(var, value)
                   for option, (var, value) in sim.credentials.items()}
        server = SimulatorServer(create_simulator_app(name, **sim.options, **options), port=sim.port)
        server.start()
        servers.append((name, server))
        # Products read the simulator's URL from this variable (see upstreams.yaml).
        os.environ.setdefault(sim.url_var, server.url)

    runtime = Runtime(settings)
    api_key = ensure_admin_key(runtime.db, instance)
    worker = Worker(runtime, concurrency=2)
    scheduler = build_scheduler(runtime)
    worker.start()
    scheduler.start()

    app = create_app(runtime=runtime)
    http = make_server(host, port, app, threaded=True)
    url = f"http://{host}:{port}"
    print(BANNER.format(url=url, database=masked_url(settings.database_url), products=settings.products_dir,
                        logs=log_destination(),
                        simulators="\n                  ".join(f"{n:<13} {s.url}" for n, s in servers),
                        secret=settings.webhook_secrets[0], api_key=api_key, instance=instance,
                        sandbox=dict(servers)["sandbox"].url), flush=True)
    def _interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # stop as cleanly as on Ctrl-C
    try:
        http.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.shutdown(wait=False)
        worker.stop()
        for _, server in servers:
            server.stop()
        runtime.close()
