"""A database as it was before a given migration, for tests of what that migration does to existing rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from db.migrations import load_migrations, migrate
from db.pool import Database, create_pool


@asynccontextmanager
async def before_migration(url: str, name: str) -> AsyncIterator[Database]:
    """The database at `url` migrated up to the migration whose version ends with `_{name}`, for the test to fill;
    on leaving, that migration and the later ones are applied (each once) and the connections closed."""
    migrations = load_migrations()
    at = next(n for n, m in enumerate(migrations) if m.version.endswith(f"_{name}"))
    pool = await create_pool(url, minsize=0, maxsize=2, connect_timeout=5, statement_timeout=30)
    db = Database(pool, acquire_timeout=30, direct_dsn=url)
    try:
        await migrate(db, migrations[:at])
        yield db
        assert await migrate(db) == [m.version for m in migrations[at:]]
    finally:
        pool.close()
        await pool.wait_closed()
