"""Logging for every ``provisioner`` command, and the line each prints at start.

APScheduler logs two INFO lines for every run of every tick (several a second
with the default intervals), which buries the lines that matter: hooks, jobs and
passes that changed something. Its loggers stay at WARNING, so a tick that
raises still shows, unless the level asked for is DEBUG.
"""
from __future__ import annotations

import logging
import os
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: loggers of libraries whose INFO lines repeat on every tick
QUIET_LOGGERS = ("apscheduler",)
#: what Alembic says at INFO on every start, whether or not it migrates anything
ALEMBIC_PREAMBLE = ("Context impl ", "Will assume ")


class _AlembicPreamble(logging.Filter):
    """Keeps Alembic's "Running upgrade ..." lines, drops its every-start preamble."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not str(record.msg).startswith(ALEMBIC_PREAMBLE)


def setup_logging(level: str) -> None:
    numeric = getattr(logging, str(level).upper(), None)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(level=numeric, format=FORMAT)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if numeric <= logging.DEBUG else logging.WARNING)
    if numeric > logging.DEBUG:
        migration = logging.getLogger("alembic.runtime.migration")
        if not any(isinstance(f, _AlembicPreamble) for f in migration.filters):
            migration.addFilter(_AlembicPreamble())


def log_destination() -> str:
    """Where this process's log lines go: stderr (what basicConfig sets up) unless a
    handler configured before us writes to a file."""
    for handler in logging.getLogger().handlers:
        path = getattr(handler, "baseFilename", None)
        if path and path != os.devnull:
            return path
        stream = getattr(handler, "stream", None)
        if stream is sys.stdout:
            return "stdout"
    return "stderr"


def masked_url(url: str) -> str:
    """A database URL with its password replaced by ***."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a valid database URL)"


def startup_line(command: str, *, database_url: str | None = None, products_dir: str | None = None,
                 log_level: str = "INFO", data: str | None = None) -> str:
    """``provisioner 0.1.0 worker: database …, logs stderr (INFO), products …``."""
    where = []
    if database_url is not None:
        where.append(f"database {masked_url(database_url)}")
    if data is not None:
        where.append(f"data {data}")
    where.append(f"logs {log_destination()} ({str(log_level).upper()})")
    if products_dir is not None:
        where.append(f"products {products_dir}")
    return f"provisioner {version()} {command}: " + ", ".join(where)


def announce(command: str, **where: str | None) -> None:
    """Print where this command's logs and data are, on stderr (stdout stays the command's output)."""
    print(startup_line(command, **where), file=sys.stderr, flush=True)


def version() -> str:
    # The code's own version, not the metadata of whatever copy pip installed
    # (setup.cfg reads it from here, so a fresh install says the same).
    from . import __version__
    return __version__
