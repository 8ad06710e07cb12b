"""What the gunicorn master does once, before any worker starts, and undoes at exit (hooks in gunicorn.conf.py).

It refuses a port another process listens on, reads the settings (saying their warnings once for all workers),
gives itself a metrics folder of its own, and reaches Postgres or starts the embedded one. Every failure ends in
one line naming what to fix. State lives here rather than in gunicorn.conf.py, which gunicorn re-runs on HUP.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions

from db.embedded import EmbeddedPostgres
from settings import ConfigError, Settings

logger = logging.getLogger(__name__)

# libpq's words for a server that is not there (yet): worth waiting for. Anything else (a refused password, an
# unknown database) will not get better by waiting.
_TRANSIENT = (
    "could not connect",
    "connection refused",
    "no such file",
    "timeout expired",
    "could not translate host name",
    "starting up",
    "shutting down",
)


class StartupError(Exception):
    """Why the server cannot start, in one line for the operator."""


@dataclass(slots=True)
class Master:
    """What this master started and must undo at exit."""

    embedded: EmbeddedPostgres | None = None
    metrics_dir: Path | None = None


MASTER = Master()


def taken_address(addresses: list[Any]) -> str | None:
    """The first TCP address of `addresses` where another process already listens, if any.

    Each worker binds its own socket with SO_REUSEPORT, so that the kernel spreads connections over them; but the
    same option would let a second server join the port unnoticed and take part of the connections. The master
    therefore binds each address once without it first: that fails while anybody listens there.
    """
    for address in addresses:
        if not isinstance(address, tuple):
            continue  # a unix socket or an inherited descriptor
        host, port = address[0], address[1]
        if not port:
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # SO_REUSEADDR: connections of an earlier run lingering in TIME_WAIT do not count, a listener does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return f"{host}:{port}" if family == socket.AF_INET else f"[{host}]:{port}"
                # Anything else (an address not on this machine) is gunicorn's to report when it binds.
    return None


def describe_database(url: str) -> str:
    """Where a libpq URI or DSN points, as host:port (never the password); the libpq defaults fill what is unset."""
    params = psycopg2.extensions.parse_dsn(url)
    host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "the default unix socket"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    if host.startswith("/"):
        return f"unix socket {host}, port {port}"
    return f"{host}:{port}"


def wait_for_database(url: str, *, wait: float, connect_timeout: float) -> str:
    """Connect once to Postgres, retrying for `wait` seconds while it is not up; where it is, or StartupError."""
    try:
        where = describe_database(url)
    except psycopg2.ProgrammingError:
        raise StartupError("DATABASE_URL is not a libpq URI (postgresql://...) nor a key=value DSN") from None
    deadline = time.monotonic() + wait
    waiting = False
    while True:
        try:
            psycopg2.connect(url, connect_timeout=max(2, round(connect_timeout))).close()
            return where
        except psycopg2.Error as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip()
            if not any(word in str(exc).lower() for word in _TRANSIENT) or time.monotonic() >= deadline:
                raise StartupError(f"cannot use Postgres at {where} (DATABASE_URL): {reason}") from None
        if not waiting:
            logger.info("waiting up to %g s for Postgres at %s", wait, where)
            waiting = True
        time.sleep(0.5)


def make_metrics_dir(base: Path) -> Path:
    """A metrics folder of this master's own under `base`: another master of the same checkout never empties it."""
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"master-{os.getpid()}-", dir=base))


def start(server: Any) -> None:
    """gunicorn's on_starting: everything above, in order; exits with one line when the server cannot start."""
    try:
        _start(server)
    except (StartupError, ConfigError) as exc:
        server.log.error("chatterd cannot start: %s", exc)
        stop(server)
        if server.pidfile is not None:
            server.pidfile.unlink()
        raise SystemExit(1) from None


def _start(server: Any) -> None:
    # A re-executed master (USR2) or systemd's sockets: the listeners are this server's own.
    if not (server.master_pid or os.environ.get("LISTEN_FDS")):
        taken = taken_address(server.cfg.address)
        if taken:
            raise StartupError(f"another process already listens on {taken}; stop it or choose another --bind")
    settings = Settings.from_env()
    settings.log_warnings(before_fork=True)
    base = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(settings.var_dir / "prometheus")
    MASTER.metrics_dir = make_metrics_dir(Path(base))
    # Before any worker imports prometheus_client, which reads it once.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(MASTER.metrics_dir)
    server.log.info("metrics: this server's files in %s", MASTER.metrics_dir)
    if settings.database_url:
        where = wait_for_database(
            settings.database_url, wait=settings.db_startup_wait, connect_timeout=settings.db_connect_timeout
        )
        server.log.info("database: Postgres at %s (DATABASE_URL)", where)
        return
    MASTER.embedded = EmbeddedPostgres(settings.var_dir)
    try:
        os.environ["DATABASE_URL"] = MASTER.embedded.start()
    except Exception as exc:
        raise StartupError(f"the embedded Postgres in {MASTER.embedded.pgdata} did not start: {exc}") from exc
    server.log.info("database: embedded Postgres, data in %s", MASTER.embedded.pgdata)


def stop(server: Any) -> None:
    """gunicorn's on_exit: stop the embedded Postgres if this master started it, and remove its metrics folder."""
    embedded, MASTER.embedded = MASTER.embedded, None
    if embedded is not None:
        embedded.stop()
    metrics_dir, MASTER.metrics_dir = MASTER.metrics_dir, None
    if metrics_dir is not None:
        shutil.rmtree(metrics_dir, ignore_errors=True)
