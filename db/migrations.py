"""Apply the numbered files in sql/ once each, under an advisory lock so concurrent workers migrate once; then create
the functions of db/routines.py that the database lacks.

The lock is a session-level one, held from the first migration to the last backfill, so it is taken on a direct
connection of its own (DATABASE_LISTEN_URL): behind a pooler in transaction mode, consecutive statements of one client
may run on different server sessions, and a session lock would be neither held where the work runs nor released. Each
migration's transaction also checks, on the session that runs it, that this session holds the lock and that the
version is still unapplied, so a misconfigured "direct" URL fails loudly instead of migrating twice.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from db import routines
from db.pool import Cursor, Database
from models.accounts import SIGN_IN_GOOGLE, fill_username_keys

logger = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant will do as long as nothing else in the database uses it; this one spells "chatterd".
ADVISORY_LOCK_KEY = 0x63686174746572
# Statements on the migration connection, waiting for the lock included: another worker may be rewriting a big table.
MIGRATION_TIMEOUT = 600.0

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by text NOT NULL
)
"""
SELECT_APPLIED = "SELECT version FROM schema_migrations"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, applied_by) VALUES (%s, %s)"
# Asked inside a migration's transaction, on the session that will run it. A bigint advisory key shows in pg_locks as
# its high and low 32 bits (classid, objid) with objsubid 1.
SELECT_LOCK_HELD_AND_APPLIED = """
SELECT EXISTS (SELECT 1 FROM pg_locks
               WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1
                 AND classid = (%(key)s >> 32)::oid AND objid = (%(key)s & 4294967295)::oid),
       EXISTS (SELECT 1 FROM schema_migrations WHERE version = %(version)s)
"""


class MigrationLockNotHeld(RuntimeError):
    """The session about to apply a migration does not hold the migration lock: the connection is not direct."""


# Data that only Python can compute, filled once the migration that makes room for it is applied. They run on every
# start, under the same lock, because rows can arrive without it later (an operator's INSERT); each does nothing when
# nothing is missing.
BACKFILLS: dict[str, Callable[[Cursor], Awaitable[int]]] = {"0005_usernames": fill_username_keys}

# Statements served as functions (db/routines.py), created after the migrations when the database lacks them.
ROUTINES = [SIGN_IN_GOOGLE]


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
    async with db.direct_cursor(MIGRATION_TIMEOUT) as cur:
        # A session-level lock: held across the per-migration transactions, released however we leave.
        await cur.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            return await apply_locked(cur, migrations)
        finally:
            await cur.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))


async def apply_locked(cur: Cursor, migrations: list[Migration]) -> list[str]:
    """The work done under the lock, on the session that took it: the migrations not applied yet, then the backfills."""
    applied_now: list[str] = []
    await cur.execute(CREATE_MIGRATIONS_TABLE)
    await cur.execute(SELECT_APPLIED)
    done = {row[0] for row in await cur.fetchall()}
    for migration in migrations:
        if migration.version in done:
            continue
        async with cur.transaction():
            await cur.execute(SELECT_LOCK_HELD_AND_APPLIED, {"key": ADVISORY_LOCK_KEY, "version": migration.version})
            locked, applied = await cur.fetchone()
            if not locked:
                raise MigrationLockNotHeld(
                    "the session applying migrations does not hold the migration lock: DATABASE_LISTEN_URL (or"
                    " DATABASE_URL when it is unset) must name a direct connection to Postgres, not a pooler in"
                    " transaction mode"
                )
            if applied:
                continue
            await cur.execute(migration.sql)
            await cur.execute(INSERT_APPLIED, (migration.version, f"pid {os.getpid()}"))
        logger.info("applied migration %s", migration.version)
        applied_now.append(migration.version)
    for version, backfill in BACKFILLS.items():
        if version in done or version in applied_now:
            filled = await backfill(cur)
            if filled:
                logger.info("%s: filled %d rows", backfill.__name__, filled)
    await routines.install(cur, ROUTINES)
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
