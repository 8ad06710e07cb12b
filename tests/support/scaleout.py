"""Two gunicorn servers on one database, and probing every worker of both: what the scale-out tests share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2

from tests.support.common import CLIENT_ID
from tests.support.launcher import Gunicorn, base_env
from tests.support.load import ACCESS_LOG_ARGS, served, worker_pids


@asynccontextmanager
async def server_pair(
    database_url: str, google_certs_url: str, tmp_path: Path, **settings: str
) -> AsyncIterator[list[Gunicorn]]:
    """Two servers on one database with one SECRET_KEY, the test's fake Google and `settings` (environment variables),
    each with its own var/, two workers and an access log that names the worker of every request; both must stop
    cleanly."""
    shared = base_env(
        DATABASE_URL=database_url,
        GOOGLE_CERTS_URL=google_certs_url,
        GOOGLE_CLIENT_IDS=CLIENT_ID,
        ACCESS_LOG="-",
        **settings,
    )
    pair = [
        Gunicorn(
            {**shared, "CHATTERD_VAR_DIR": str(tmp_path / name)}, tmp_path / f"{name}.log", extra_args=ACCESS_LOG_ARGS
        )
        for name in ("a", "b")
    ]
    await asyncio.gather(*(server.start() for server in pair))
    try:
        yield pair
    finally:
        assert await asyncio.gather(*(server.stop() for server in pair)) == [0, 0]


async def fetch(method: str, url: str, rid: str, *, token: str | None = None, **kwargs: Any) -> tuple[int, Any]:
    """One request on a fresh connection, tagged with a request id (so the access log tells which worker answered)."""
    headers = {"X-Request-ID": rid}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.request(method, url, headers=headers, **kwargs) as resp:
            return resp.status, (await resp.json() if resp.content_length else None)


def run_sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> None:
    """What an operator would type in psql: one statement on a connection of its own, committed."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
    conn.close()


def answered_by(servers: list[Gunicorn], prefix: str, status: int | None = None) -> set[int]:
    """The worker pids that answered the requests whose ids start with `prefix` (with `status`, when given)."""
    return {
        entry.pid
        for server in servers
        for entry in served(server.log())
        if entry.rid.startswith(prefix) and status in (None, entry.status)
    }


def all_workers(servers: list[Gunicorn]) -> set[int]:
    """Every worker pid of every server."""
    return {pid for server in servers if server.proc is not None for pid in worker_pids(server.proc.pid)}
