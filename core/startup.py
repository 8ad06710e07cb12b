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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions

from db.embedded import EmbeddedPostgres
from db.pool import describe_connections
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
    reservations: list[socket.socket] = field(default_factory=list)


MASTER = Master()


def _tcp(addresses: list[Any]) -> list[tuple[socket.AddressFamily, str, int]]:
    """The TCP addresses among gunicorn's (not unix sockets, inherited descriptors or port 0)."""
    return [
        (socket.AF_INET6 if ":" in address[0] else socket.AF_INET, address[0], address[1])
        for address in addresses
        if isinstance(address, tuple) and address[1]
    ]


def taken_address(addresses: list[Any]) -> str | None:
    """The first TCP address of `addresses` where another process already listens (or holds it), if any.

    Each worker binds its own socket with SO_REUSEPORT, so that the kernel spreads connections over them; but the
    same option would let a second server join the port unnoticed and take part of the connections. The master
    therefore binds each address once without it first: that fails while anybody listens there.
    """
    for family, host, port in _tcp(addresses):
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


def reserve(addresses: list[Any]) -> list[socket.socket]:
    """Hold each TCP address for the master's life, so that no other server starts there even while none of this
    one's workers listens (all restarting at once): bound with SO_REUSEPORT, which this server's workers share, but
    not listening, so that no connection comes to it, and without SO_REUSEADDR, so that another master's check fails.
    """
    held = []
    for family, host, port in _tcp(addresses):
        reservation = socket.socket(family, socket.SOCK_STREAM)
        reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            reservation.bind((host, port))
        except OSError:
            reservation.close()
            continue  # gunicorn reports an address it cannot bind
        held.append(reservation)
    return held


def describe_database(url: str) -> str:
    """Where a libpq URI or DSN points, as host:port (never the password); the libpq defaults fill what is unset."""
    params = psycopg2.extensions.parse_dsn(url)
    host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "the default unix socket"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    if host.startswith("/"):
        return f"unix socket {host}, port {port}"
    return f"{host}:{port}"


def wait_for_database(url: str, *, wait: float, connect_timeout: float, name: str = "DATABASE_URL") -> str:
    """Connect once to Postgres, retrying for `wait` seconds while it is not up; where it is, or StartupError.

    It blocks: gunicorn's master calls it before any worker or event loop exists, and manage.py from a thread."""
    try:
        where = describe_database(url)
    except psycopg2.ProgrammingError:
        raise StartupError(f"{name} is not a libpq URI (postgresql://...) nor a key=value DSN") from None
    deadline = time.monotonic() + wait
    waiting = False
    while True:
        try:
            psycopg2.connect(url, connect_timeout=max(2, round(connect_timeout))).close()
            return where
        except psycopg2.Error as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip()
            if not any(word in str(exc).lower() for word in _TRANSIENT) or time.monotonic() >= deadline:
                raise StartupError(f"cannot use Postgres at {where} ({name}): {reason}") from None
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
        MASTER.reservations = reserve(server.cfg.address)
    settings = Settings.from_env()
    settings.log_warnings(before_fork=True)
    base = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(settings.var_dir / "prometheus")
    MASTER.metrics_dir = make_metrics_dir(Path(base))
    # Before any worker imports prometheus_client, which reads it once.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(MASTER.metrics_dir)
    server.log.info("metrics: this server's files in %s", MASTER.metrics_dir)
    if settings.database_url:
        urls = {"DATABASE_URL": settings.database_url, "DATABASE_LISTEN_URL": settings.database_listen_url}
        for name, url in urls.items():
            if url:
                wait_for_database(
                    url, wait=settings.db_startup_wait, connect_timeout=settings.db_connect_timeout, name=name
                )
    else:
        MASTER.embedded = EmbeddedPostgres(settings.var_dir)
        try:
            os.environ["DATABASE_URL"] = MASTER.embedded.start()
        except Exception as exc:
            raise StartupError(f"the embedded Postgres in {MASTER.embedded.pgdata} did not start: {exc}") from exc
        server.log.info("database: embedded Postgres, data in %s", MASTER.embedded.pgdata)
    server.log.info(describe_connections(os.environ["DATABASE_URL"], settings.database_listen_url))


def stop(server: Any) -> None:
    """gunicorn's on_exit: stop the embedded Postgres if this master started it, drop its metrics folder and ports."""
    embedded, MASTER.embedded = MASTER.embedded, None
    if embedded is not None:
        embedded.stop()
    metrics_dir, MASTER.metrics_dir = MASTER.metrics_dir, None
    if metrics_dir is not None:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    for reservation in MASTER.reservations:
        reservation.close()
    MASTER.reservations = []
