"""Migrations: applied once, in order, never again, even when many workers start together."""

from __future__ import annotations

import asyncio

import pytest

from db.migrations import MigrationLockNotHeld, apply_locked, load_migrations, migrate
from db.pool import Database, create_pool


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
