"""Migrations: applied once, in order, never again, even when many workers start together."""

from __future__ import annotations

import asyncio

import psycopg2.extensions
import pytest

from db.migrations import MigrationLockNotHeld, apply_locked, load_migrations, migrate
from db.pool import Database, create_pool
from tests.support.common import wait_for
from tests.support.pgproxy import PgProxy


async def open_db(url: str) -> Database:
    pool = await create_pool(url, minsize=0, maxsize=2, connect_timeout=5, statement_timeout=30)
    return Database(pool, acquire_timeout=30, direct_dsn=url)


async def applied_versions(db: Database) -> list[str]:
    async with db.cursor() as cur:
        await cur.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [row[0] for row in await cur.fetchall()]


async def test_migrations_apply_once_and_are_idempotent(make_database):
    db = await open_db(make_database())
    try:
        versions = [m.version for m in load_migrations()]
        assert versions, "sql/ has migrations"
        assert await migrate(db) == versions
        assert await migrate(db) == []
        assert await applied_versions(db) == versions
    finally:
        db.pool.close()
        await db.pool.wait_closed()


async def test_concurrent_starts_migrate_exactly_once(make_database):
    url = make_database()
    dbs = [await open_db(url) for _ in range(6)]
    try:
        results = await asyncio.gather(*(migrate(db) for db in dbs))
        versions = [m.version for m in load_migrations()]
        applied = [v for result in results for v in result]
        assert sorted(applied) == sorted(versions)  # each version applied by exactly one of them
        assert await applied_versions(dbs[0]) == versions
    finally:
        for db in dbs:
            db.pool.close()
            await db.pool.wait_closed()


def test_migration_files_are_numbered_without_gaps():
    numbers = [int(m.version.split("_")[0]) for m in load_migrations()]
    assert numbers == list(range(1, len(numbers) + 1))


async def test_a_migration_refuses_a_session_that_does_not_hold_the_lock(make_database):
    """What a pooler in transaction mode does to a session lock: the work lands on a session without it. Refused."""
    db = await open_db(make_database())
    try:
        async with db.direct_cursor(30) as cur:  # no pg_advisory_lock taken on this session
            with pytest.raises(MigrationLockNotHeld):
                await apply_locked(cur, load_migrations())
        assert await db.fetch_all("SELECT version FROM schema_migrations") == []
        assert await db.fetch_one("SELECT to_regclass('chatts')") == (None,)  # the first migration was rolled back
    finally:
        db.pool.close()
        await db.pool.wait_closed()


async def test_a_worker_keeps_trying_its_direct_connection_then_migrates(make_client, make_database, caplog):
    """DATABASE_LISTEN_URL not answering yet at start (the pool's address does): the worker retries, then serves."""
    database = make_database()
    params = psycopg2.extensions.parse_dsn(database)
    proxy = PgProxy.for_dsn_params(params)
    await proxy.start()
    await proxy.cut()  # its port is known; nothing listens there yet
    listen_url = psycopg2.extensions.make_dsn(**{**params, "host": "127.0.0.1", "port": str(proxy.port)})
    starting = asyncio.create_task(
        make_client(
            database_url=database, database_listen_url=listen_url, db_connect_timeout=1.0, db_acquire_timeout=1.0
        )
    )
    try:

        async def retrying() -> bool:
            assert not starting.done(), "the worker stopped trying before its direct connection answered"
            return "Postgres not reachable yet" in caplog.text

        await wait_for(retrying, timeout=10, what="the worker to retry its direct connection")
        await proxy.start()
        client = await asyncio.wait_for(starting, timeout=30)
        assert (await client.get("/readyz")).status == 200
    finally:
        await proxy.close()
