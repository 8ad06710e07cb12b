"""A real PgBouncer (the Debian package's binary) in transaction pooling mode in front of the test Postgres."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions

from tests.support.common import end_process, free_port, wait_for

PGBOUNCER = shutil.which("pgbouncer") or next(
    (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(path, os.X_OK)), None
)
MISSING = "pgbouncer is not installed: `make test` installs it as root (apt-get install pgbouncer)"


def _run_as(host: str) -> str | None:
    """PgBouncer refuses to run as root: run it as the owner of Postgres' socket folder (who can reach the socket)."""
    if os.geteuid() != 0:
        return None
    if host.startswith("/"):
        owner = os.stat(host).st_uid
        if owner != 0:
            return pwd.getpwuid(owner).pw_name
    return "nobody"


class PgBouncer:
    """`pgbouncer` with its own config in `folder`, listening on 127.0.0.1, every database forwarded to one server."""

    def __init__(self, server_url: str, folder: Path, *, pool_size: int = 20, max_client_conn: int = 1000) -> None:
        self.server = psycopg2.extensions.parse_dsn(server_url)
        self.folder = folder
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.port = free_port()
        self.user = self.server.get("user") or "postgres"
        self.proc: asyncio.subprocess.Process | None = None

    def url(self, dbname: str, **params: str) -> str:
        """A libpq DSN for `dbname` through PgBouncer (the admin console is the database "pgbouncer")."""
        return str(
            psycopg2.extensions.make_dsn(host="127.0.0.1", port=str(self.port), user=self.user, dbname=dbname, **params)
        )

    def _config(self) -> str:
        target = {key: self.server[key] for key in ("host", "port", "password") if self.server.get(key)}
        target["user"] = self.user
        forward = " ".join(f"{key}={value}" for key, value in target.items())
        return f"""[databases]
* = {forward}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.folder / "userlist.txt"}
admin_users = {self.user}
pool_mode = transaction
default_pool_size = {self.pool_size}
max_client_conn = {self.max_client_conn}
"""

    async def start(self) -> None:
        """Write the config, start PgBouncer in the foreground, and wait until its admin console answers."""
        assert PGBOUNCER is not None, MISSING
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "pgbouncer.ini"
        config.write_text(self._config())
        (self.folder / "userlist.txt").write_text(f'"{self.user}" ""\n')
        user = _run_as(self.server.get("host", ""))
        log = (self.folder / "pgbouncer.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            PGBOUNCER, *(("-u", user) if user else ()), str(config), stdout=log, stderr=log
        )
        log.close()

        async def answers() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"pgbouncer exited early:\n{self.log()}")
            try:
                await asyncio.to_thread(self.show, "VERSION")
            except psycopg2.OperationalError:
                return False
            return True

        await wait_for(answers, timeout=20, what="pgbouncer to answer")

    def show(self, what: str) -> list[dict[str, Any]]:
        """`SHOW <what>` on the admin console (POOLS, CLIENTS, SERVERS, STATS…), as dicts. Blocking."""
        conn = psycopg2.connect(self.url("pgbouncer"), connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"SHOW {what}")
                names = [column[0] for column in cur.description or ()]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            conn.close()

    def log(self) -> str:
        """What PgBouncer has logged so far."""
        return (self.folder / "pgbouncer.log").read_text(errors="replace")

    async def stop(self) -> None:
        """SIGINT (wait for clients' transactions to end, then exit); SIGKILL past ten seconds."""
        if self.proc is not None:
            await end_process(self.proc, signal.SIGINT, timeout=10)
