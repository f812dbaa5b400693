"""The ``provisioner`` command (contract section 1)."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import click

from . import __version__
from .config import Settings, SettingsError
from .logsetup import announce, setup_logging


def _command() -> str:
    """The running subcommand as typed (``api-key list``), for the start-up line."""
    ctx = click.get_current_context(silent=True)
    return ctx.command_path.partition(" ")[2] if ctx else ""


def _settings(dev: bool = False) -> Settings:
    settings = Settings.from_env(dev=dev)
    setup_logging(settings.log_level)
    announce(_command(), database_url=settings.database_url, products_dir=settings.products_dir,
             log_level=settings.log_level)
    return settings


def _runtime(require_secrets: bool = True):
    from .products import ProductConfigError
    from .runtime import Runtime
    settings = _settings()
    try:
        if require_secrets:
            settings.require_secrets()
        return Runtime(settings)
    except (SettingsError, ProductConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


@click.group(help="Billing lifecycle events in, converged e-mail upstreams out.")
@click.version_option(__version__, "--version", prog_name="provisioner", message="%(prog)s %(version)s")
def main() -> None:
    pass


# --- database -----------------------------------------------------------------
@main.group(help="Database schema.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply Alembic migrations to PROVISIONER_DATABASE_URL.")
def db_upgrade() -> None:
    from .migrate import upgrade
    settings = _settings()
    Path(settings.instance_dir).mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    click.echo("database is up to date")


# --- processes ----------------------------------------------------------------
@main.command(help="Serve the web app under gunicorn.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--threads", default=8, show_default=True, type=int, help="threads per worker (Prefer: wait holds one)")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication

    _runtime().close()  # fail fast, in the parent, on missing secrets or bad product configs

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            # gthread, answering gunicorn's own refusals (431, 414, 400) as JSON
            self.cfg.set("worker_class", "provisioner.web.serving.JsonErrorWorker")
            self.cfg.set("logger_class", "provisioner.web.serving.TokenSafeLogger")
            self.cfg.set("timeout", 60)
            self.cfg.set("graceful_timeout", 35)
            self.cfg.set("accesslog", "-")
            # gunicorn's control socket is one per user; a second server on the
            # machine would take it over and remove it on exit.
            self.cfg.set("control_socket_disable", True)

        def load(self):
            from . import create_app
            return create_app()

    Server().run()


@main.command(help="Run the job runner and the scheduler ticks.")
@click.option("--concurrency", default=2, show_default=True, type=int)
@click.option("--metrics-port", default=None, type=int, help="serve this process's Prometheus metrics")
def worker(concurrency: int, metrics_port: int | None) -> None:
    from .scheduler import build_scheduler
    from .worker import Worker

    runtime = _runtime()
    if metrics_port:
        from prometheus_client import start_http_server
        start_http_server(metrics_port, addr="127.0.0.1")
    runner = Worker(runtime, concurrency=concurrency)
    scheduler = build_scheduler(runtime)
    runner.start()
    scheduler.start()
    _wait_for_signal()
    scheduler.shutdown(wait=False)
    runner.stop()
    runtime.close()


@main.command(help="Everything on one machine: web app, worker, scheduler and simulators (make run).")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
def dev(port: int, host: str) -> None:
    from .devserver import run_dev
    run_dev(host, port)


@main.command(help="Run one upstream simulator on 127.0.0.1.")
@click.argument("name")
@click.option("--port", default=0, type=int, help="0 picks a free port")
@click.option("--activation-delay", default=0.0, type=float, help="seconds before new accounts turn active")
@click.option("--api-key", default=None, help="require this API key (where the provider uses one)")
@click.option("--verification-delay", default=None, type=click.FloatRange(min=0),
              help="qboxmail: seconds after a create until the domain's ownership record counts as "
                   "published (0: at once; default: never by itself)")
def simulate(name: str, port: int, activation_delay: float, api_key: str | None,
             verification_delay: float | None) -> None:
    from .simulators.server import serve_forever
    level = os.environ.get("PROVISIONER_LOG_LEVEL", "INFO")
    setup_logging(level)
    announce(_command() + f" {name}", log_level=level, data="in memory, lost when it stops")
    options: dict[str, object] = {"activation_delay": activation_delay}
    if api_key:
        options["api_key"] = api_key
    if verification_delay is not None:
        if name != "qboxmail":
            raise click.UsageError("--verification-delay is an option of the qboxmail simulator only")
        options["verification_delay"] = verification_delay
    try:
        serve_forever(name, "127.0.0.1", port, **options)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


# --- products -----------------------------------------------------------------
@main.group(help="Product and upstream configs.")
def products() -> None:
    pass


@products.command("check", help="Validate product_configs/; exit 1 with one line per problem.")
@click.argument("directory", required=False)
def products_check(directory: str | None) -> None:
    from .products import check_configs
    settings = Settings.from_env()
    directory = directory or settings.products_dir
    setup_logging(settings.log_level)
    announce(_command(), products_dir=directory, log_level=settings.log_level)
    problems = check_configs(directory, settings.environ)
    if problems:
        for line in problems:
            click.echo(line, err=True)
        sys.exit(1)
    click.echo(f"{directory}: ok")


# --- API keys -----------------------------------------------------------------
@main.group("api-key", help="Admin API keys.")
def api_key() -> None:
    pass


@api_key.command("create", help="Create an API key and print it once.")
@click.argument("name")
@click.option("--scope", type=click.Choice(["admin", "read"]), required=True)
@click.option("--source", default=None, metavar="SOURCE",
              help="only this billing source's services (billing.yaml); without it: every source")
def api_key_create(name: str, scope: str, source: str | None) -> None:
    from .apikeys import ApiKeyError, create_api_key
    from .billing.sources import configured_names
    from .db import Database
    settings = _settings()
    if source is not None:
        known = configured_names(settings.products_dir)
        if source not in known:
            raise click.BadParameter(f"no billing source {source!r} (configured: {', '.join(known)})",
                                     param_hint="--source")
    database = Database(settings.database_url)
    try:
        with database.transaction() as session:
            row, key = create_api_key(session, name, scope, source)
    except ApiKeyError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.dispose()
    click.echo(key)
    where = f"billing source {source!r} only" if source else "every billing source"
    click.echo(f"created key {row.prefix}… ({scope}, {where}) for {name!r}; it is not stored and cannot be "
               "shown again", err=True)


@api_key.command("list", help="API keys: id, prefix, scope, source, name, created, last used.")
@click.option("--all", "include_revoked", is_flag=True, help="revoked keys too")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def api_key_list(include_revoked: bool, as_json: bool) -> None:
    from .apikeys import list_api_keys
    from .db import Database
    database = Database(_settings().database_url)
    try:
        with database.read() as session:
            rows = list_api_keys(session, include_revoked=include_revoked)
    finally:
        database.dispose()

    def when(value) -> str:
        return value.isoformat(timespec="seconds") if value else "-"

    for row in rows:
        fields = {"id": row.id, "prefix": row.prefix, "scope": row.scope, "source": row.source,
                  "name": row.name, "created_at": when(row.created_at), "last_used_at": when(row.last_used_at),
                  "revoked_at": when(row.revoked_at) if row.revoked_at else None}
        if as_json:
            click.echo(json.dumps(fields))
        else:
            click.echo(f"{row.id:>4}  {row.prefix}…  {row.scope:<5}  {row.source or '(every source)':<16}  "
                       f"created {fields['created_at']}  last used {fields['last_used_at']}"
                       + (f"  REVOKED {fields['revoked_at']}" if row.revoked_at else "") + f"  {row.name}")
    if not rows and not as_json:
        click.echo("no API keys", err=True)


@api_key.command("revoke", help="Revoke an API key by its id or prefix (see api-key list); it stops working at once.")
@click.argument("key_id")
def api_key_revoke(key_id: str) -> None:
    from .apikeys import ApiKeyError, revoke_api_key
    from .db import Database
    database = Database(_settings().database_url)
    try:
        with database.transaction() as session:
            row = revoke_api_key(session, key_id)
            prefix, name = row.prefix, row.name
    except ApiKeyError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.dispose()
    click.echo(f"revoked key {prefix}… ({name!r})")


# --- jobs ---------------------------------------------------------------------
@main.group(help="Inspect and retry converge jobs.")
def jobs() -> None:
    pass


@jobs.command("list", help="Jobs, newest first.")
@click.option("--state", type=click.Choice(["queued", "running", "retrying", "succeeded", "failed", "skipped"]))
@click.option("--limit", default=50, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def jobs_list(state: str | None, limit: int, as_json: bool) -> None:
    from sqlalchemy import select

    from .db import Database
    from .models import Job
    database = Database(_settings().database_url)
    query = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if state:
        query = query.where(Job.state == state)
    with database.read() as session:
        rows = session.execute(query).scalars().all()
    for job in rows:
        if as_json:
            click.echo(json.dumps({"id": job.id, "service_id": job.service_id, "reason": job.reason,
                                   "state": job.state, "attempts": job.attempts,
                                   "error": job.error_code, "created_at": job.created_at.isoformat()}))
        else:
            click.echo(f"{job.id}  {job.state:<9}  service {job.service_id:<10}  {job.reason:<24}  "
                       f"attempts {job.attempts}/{job.max_attempts}"
                       + (f"  {job.error_code}: {job.error_message}" if job.error_code else ""))
    if not rows and not as_json:
        click.echo("no jobs", err=True)


@jobs.command("retry", help="Queue a failed job again.")
@click.argument("job_id")
def jobs_retry(job_id: str) -> None:
    from .admin import retry_job
    from .db import Database
    from .web.errors import ApiError
    settings = _settings()
    database = Database(settings.database_url)
    try:
        with database.transaction() as session:
            retry_job(session, job_id, extra_attempts=settings.job_max_attempts)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"job {job_id} queued again")


# --- reconcile ----------------------------------------------------------------
@main.command(help="One reconcile pass now: due dates, upstream terms, drift, orphans, usage.")
@click.option("--dry-run", is_flag=True, help="report what the pass would do, change nothing")
@click.option("--at", "at", default=None, metavar="ISO8601",
              help="judge due dates as if it were this instant (e.g. 2027-01-05T00:00:00Z); "
                   "an instant in the future needs --dry-run")
@click.option("--source", default=None, metavar="SOURCE", help="judge only this billing source's services")
def reconcile(dry_run: bool, at: str | None, source: str | None) -> None:
    import datetime as dt

    from .reconcile import InvalidInstant, check_instant, run_pass
    instant = None
    if at:
        try:
            instant = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(f"not an ISO 8601 instant: {at!r}", param_hint="--at") from None
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=dt.timezone.utc)
    try:
        check_instant(instant, dry_run)
    except InvalidInstant as exc:
        raise click.BadParameter(exc.message, param_hint="--at") from None
    runtime = _runtime()
    if source is not None and runtime.source(source) is None:
        runtime.close()
        raise click.BadParameter(f"no billing source {source!r} (configured: {', '.join(runtime.sources.names())})",
                                 param_hint="--source")
    try:
        run = run_pass(runtime, at=instant, dry_run=dry_run, trigger="cli", source=source)
    finally:
        runtime.close()
    click.echo(json.dumps({"id": run.id, "state": run.state, **run.report}, indent=2))
    if run.state != "finished":
        sys.exit(1)


# --- pricing ------------------------------------------------------------------
@main.command(help="Print an upstream's price table: cost, your price and margin per cell.")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per row")
def pricing(name: str, as_json: bool) -> None:
    from .products import ProductConfigError, load_catalog
    from .providers.base import Capability
    from .providers.errors import ProviderError
    from .providers.registry import build_provider
    settings = _settings()
    try:
        catalog = load_catalog(settings.products_dir, settings.environ)
    except ProductConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if name not in catalog.upstreams:
        known = ", ".join(sorted(catalog.upstreams)) or "none"
        raise click.ClickException(f"no upstream named {name!r} (configured: {known})")
    try:
        provider = build_provider(name, catalog.upstream_config(name))
    except ProviderError as exc:
        raise click.ClickException(exc.message) from None
    try:
        if not provider.supports(Capability.PRICING):
            raise click.ClickException(f"upstream {name!r} ({provider.kind}) has no price table")
        rows = provider.price_table()
    except ProviderError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    finally:
        provider.close()

    def money(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    if as_json:
        for row in rows:
            click.echo(json.dumps({"product": row.product, "accounts": row.accounts, "action": row.action,
                                   "months": row.months, "cost": row.cost, "price": row.price,
                                   "margin": row.margin}))
        return
    header = ("product", "accounts", "action", "months", "cost", "price", "margin")
    table = [header] + [(r.product, r.accounts, r.action, str(r.months), money(r.cost), money(r.price),
                         money(r.margin)) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    numeric = {3, 4, 5, 6}
    for line in table:
        click.echo("  ".join(cell.rjust(w) if i in numeric else cell.ljust(w)
                             for i, (cell, w) in enumerate(zip(line, widths))).rstrip())
    if not rows:
        click.echo(f"upstream {name!r} reported no prices", err=True)
