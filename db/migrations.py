"""Apply the numbered files in sql/ once each, under an advisory lock so concurrent workers migrate once."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from db.pool import Cursor, Database
from models.accounts import fill_username_keys

logger = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant will do as long as nothing else in the database uses it; this one spells "chatterd".
ADVISORY_LOCK_KEY = 0x63686174746572

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by text NOT NULL
)
"""
SELECT_APPLIED = "SELECT version FROM schema_migrations"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, applied_by) VALUES (%s, %s)"

# Data that only Python can compute, filled once the migration that makes room for it is applied. They run on every
# start, under the same lock, because rows can arrive without it later (an operator's INSERT); each does nothing when
# nothing is missing.
BACKFILLS: dict[str, Callable[[Cursor], Awaitable[int]]] = {"0005_usernames": fill_username_keys}


@dataclass(frozen=True, slots=True)
class Migration:
    """One file of sql/: its version (the file name without .sql) and its text."""

    version: str
    sql: str


def load_migrations(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migrations in sql/, in order; a badly named file is an error rather than silently skipped."""
    migrations = []
    for path in sorted(sql_dir.glob("*.sql")):
        if not _FILE_NAME.match(path.name):
            raise ValueError(f"migration file {path.name} must be named NNNN_lowercase_words.sql")
        migrations.append(Migration(path.stem, path.read_text()))
    return migrations


async def migrate(db: Database, migrations: list[Migration] | None = None) -> list[str]:
    """Apply what is not applied yet, then the backfills; return the versions this call applied."""
    migrations = load_migrations() if migrations is None else migrations
    applied_now: list[str] = []
    async with db.cursor() as cur:
        # A session-level lock: held across the per-migration transactions, released however we leave.
        await cur.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            await cur.execute(CREATE_MIGRATIONS_TABLE)
            await cur.execute(SELECT_APPLIED)
            done = {row[0] for row in await cur.fetchall()}
            for migration in migrations:
                if migration.version in done:
                    continue
                async with cur.transaction():
                    await cur.execute(migration.sql)
                    await cur.execute(INSERT_APPLIED, (migration.version, f"pid {os.getpid()}"))
                logger.info("applied migration %s", migration.version)
                applied_now.append(migration.version)
            for version, backfill in BACKFILLS.items():
                if version in done or version in applied_now:
                    filled = await backfill(cur)
                    if filled:
                        logger.info("%s: filled %d rows", backfill.__name__, filled)
        finally:
            await cur.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    return applied_now


async def pending(db: Database, migrations: list[Migration] | None = None) -> list[str]:
    """The versions in sql/ that the database has not applied; all of them when nothing was ever migrated."""
    migrations = load_migrations() if migrations is None else migrations
    async with db.cursor() as cur:
        await cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        (exists,) = await cur.fetchone()
        done: set[str] = set()
        if exists:
            await cur.execute(SELECT_APPLIED)
            done = {row[0] for row in await cur.fetchall()}
    return [m.version for m in migrations if m.version not in done]
