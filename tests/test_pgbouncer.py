"""chatterd behind a real PgBouncer in transaction pooling mode: notices reach every worker, migrations run once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from db.migrations import load_migrations, migrate
from db.pool import Database, create_pool
from tests.support.launcher import Gunicorn, base_env
from tests.support.load import ACCESS_LOG_ARGS, JWT, Credentials, send
from tests.support.pgbouncer import MISSING, PGBOUNCER, PgBouncer
from tests.support.probes import refused_everywhere

pytestmark = pytest.mark.skipif(PGBOUNCER is None, reason=MISSING)

PASSWORD = "correct horse battery"


def dbname(url: str) -> str:
    """The database a libpq DSN names."""
    return dict(part.split("=", 1) for part in url.split())["dbname"]


@pytest.fixture
async def database(make_database: Any) -> str:
    """A fresh, empty database on the test Postgres (a direct DSN)."""
    return str(make_database())


async def bouncer_for(postgres_server_url: str, folder: Path, pool_size: int) -> PgBouncer:
    """A started PgBouncer in transaction mode with `pool_size` server connections per database."""
    bouncer = PgBouncer(postgres_server_url, folder, pool_size=pool_size)
    await bouncer.start()
    return bouncer


@pytest.fixture
async def bouncer(postgres_server_url: str, tmp_path: Path) -> AsyncIterator[PgBouncer]:
    """PgBouncer with two server connections per database: its clients share them, as in production."""
    bouncer = await bouncer_for(postgres_server_url, tmp_path / "pgbouncer", pool_size=2)
    yield bouncer
    await bouncer.stop()


async def open_db(pooled_url: str, direct_url: str) -> Database:
    pool = await create_pool(pooled_url, minsize=0, maxsize=2, connect_timeout=5, statement_timeout=30)
    return Database(pool, acquire_timeout=30, direct_dsn=direct_url)


async def test_concurrent_starts_behind_pgbouncer_migrate_exactly_once(bouncer, database):
    """Six workers' pools through PgBouncer, migrations on their direct connections: each version applied once."""
    dbs = [await open_db(bouncer.url(dbname(database)), database) for _ in range(6)]
    try:
        results = await asyncio.gather(*(migrate(db) for db in dbs))
        versions = [m.version for m in load_migrations()]
        assert sorted(v for result in results for v in result) == sorted(versions)
        rows = await dbs[0].fetch_all("SELECT version FROM schema_migrations ORDER BY version")
        assert [row[0] for row in rows] == versions
    finally:
        for db in dbs:
            db.pool.close()
            await db.pool.wait_closed()
    assert "not linked" not in bouncer.log()


async def serve(tmp_path: Path, env: dict[str, str]) -> Gunicorn:
    """A started two-worker server with the access log the probes read."""
    server = Gunicorn(
        {**env, "CHATTERD_VAR_DIR": str(tmp_path / "var")}, tmp_path / "server.log", extra_args=ACCESS_LOG_ARGS
    )
    await server.start()
    return server


async def signed_in(server: Gunicorn, username: str) -> Credentials:
    """Register and log in on `server`; the JWT, already accepted by both workers (fresh connections)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.post(f"{server.url}/register", json={"username": username, "password": PASSWORD}) as resp:
            assert resp.status == 201, await resp.text()
        async with session.post(f"{server.url}/login", json={"username": username, "password": PASSWORD}) as resp:
            assert resp.status == 200, await resp.text()
            creds = Credentials(token=(await resp.json())["token"])
        before = await asyncio.gather(
            *(send(session, server.url, JWT, f"pre-{n}", creds, timeout=5) for n in range(12))
        )
        assert {shot.status for shot in before} == {200}, before
    return creds


async def log_out(server: Gunicorn, creds: Credentials) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/logout", headers={"Authorization": f"Bearer {creds.token}"}) as resp:
            assert resp.status == 204, await resp.text()


async def test_a_logout_reaches_every_worker_through_pgbouncer(bouncer, database, tmp_path):
    """Queries through PgBouncer, LISTEN on DATABASE_LISTEN_URL: a logout is refused by both workers within a second."""
    env = base_env(DATABASE_URL=bouncer.url(dbname(database)), DATABASE_LISTEN_URL=database, ACCESS_LOG="-")
    server = await serve(tmp_path, env)
    try:
        creds = await signed_in(server, "pat")
        await log_out(server, creds)
        accepted_for, _, _ = await refused_everywhere(server, JWT, creds, "out", bound=1.0)
        assert accepted_for < 1.0
        log = server.log()
    finally:
        assert await server.stop() == 0
    # Said once for the server, by its master, before the workers start.
    assert log.count("(DATABASE_LISTEN_URL, direct)") == 1, log
    assert "not linked" not in bouncer.log()


async def test_listening_through_pgbouncer_misses_notices(postgres_server_url, database, tmp_path):
    """Why DATABASE_LISTEN_URL exists: LISTEN through PgBouncer in transaction mode never hears the logout.

    One server connection in PgBouncer's pool, so the migration lock stays on one session and nothing hangs; the
    notice then goes back to whichever client sent it, never to the listeners, and a worker keeps the JWT alive.
    """
    bouncer = await bouncer_for(postgres_server_url, tmp_path / "pgbouncer", pool_size=1)
    env = base_env(DATABASE_URL=bouncer.url(dbname(database)), ACCESS_LOG="-")
    server = await serve(tmp_path, env)
    try:
        creds = await signed_in(server, "lee")
        await log_out(server, creds)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            probes = await asyncio.gather(
                *(send(session, server.url, JWT, f"after-{n}", creds, timeout=5) for n in range(20))
            )
        assert 200 in {shot.status for shot in probes}, probes
    finally:
        assert await server.stop() == 0
        await bouncer.stop()
