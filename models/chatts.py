"""The chatts table: read the newest, store many at once, delete one, announce changes."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2

from db.pool import Database
from models.fragments import ISO_UTC, USER_IN_GOOD_STANDING
from models.records import ChattRefused, PosterGone, UnknownChatt

ChattRow = tuple[str, str, str, str]  # the contract's [username, message, id, timestamp]
# A row as read: the contract's four fields, then whether a signed-in user posted it (the page shows which).
FeedRow = tuple[str, str, str, str, bool]

# Text conversions happen in Postgres: cheaper than building UUID and datetime objects in Python.
LIST_NEWEST_CHATTS = f"""
SELECT username, message, id::text, to_char(created_at AT TIME ZONE 'UTC', {ISO_UTC}), user_id IS NOT NULL
FROM (SELECT seq, username, message, id, created_at, user_id FROM chatts ORDER BY seq DESC LIMIT %(limit)s) AS newest
ORDER BY seq
"""

# One round trip that also tells "unknown anchor" (no row) from "nothing newer" (one row of NULLs).
LIST_CHATTS_AFTER = f"""
SELECT newer.username, newer.message, newer.id::text, to_char(newer.created_at AT TIME ZONE 'UTC', {ISO_UTC}),
       newer.user_id IS NOT NULL
FROM (SELECT seq FROM chatts WHERE id = %(after)s) AS anchor
LEFT JOIN LATERAL (
    SELECT seq, username, message, id, created_at, user_id FROM chatts
    WHERE seq > anchor.seq ORDER BY seq DESC LIMIT %(limit)s
) AS newer ON true
ORDER BY newer.seq
"""

DELETE_CHATT = "DELETE FROM chatts WHERE id = %s"

# The version of the chatts table (sql/0004, sql/0007): its slots, one of which changes in the transaction of every
# change to chatts, to a value never seen before. Equal versions mean no change committed in between.
CHATTS_VERSION = "(SELECT array_agg(v ORDER BY slot) FROM chatts_version)"
SELECT_CHATTS_VERSION = f"SELECT {CHATTS_VERSION}"

# The newest chatts and the version they are, read in one statement (one snapshot); one row even with no chatts.
LIST_NEWEST_CHATTS_VERSIONED = f"""
SELECT version.v, newest.username, newest.message, newest.id::text,
       to_char(newest.created_at AT TIME ZONE 'UTC', {ISO_UTC}), newest.user_id IS NOT NULL
FROM (SELECT {CHATTS_VERSION} AS v) AS version
LEFT JOIN LATERAL (
    SELECT seq, username, message, id, created_at, user_id FROM chatts ORDER BY seq DESC LIMIT %(limit)s
) AS newest ON true
ORDER BY newest.seq
"""

# Many chatts in one statement, in the order given (seq follows the array order). A signed-in post is stored under
# its user's current name, and only while that user may still post (deleted or banned since the request was
# authenticated: refused, not a foreign-key failure of the whole batch); returns the 0-based positions stored.
INSERT_CHATTS = f"""
WITH posts AS (
    SELECT posts.position, coalesce(users.username, posts.username) AS username, posts.message, posts.user_id
    FROM unnest(%s::text[], %s::text[], %s::bigint[]) WITH ORDINALITY AS posts (username, message, user_id, position)
    LEFT JOIN users ON users.id = posts.user_id
    WHERE posts.user_id IS NULL OR (users.id IS NOT NULL AND {USER_IN_GOOD_STANDING})
),
inserted AS (
    INSERT INTO chatts (username, message, user_id) SELECT username, message, user_id FROM posts ORDER BY position
)
SELECT position - 1 FROM posts
"""

# Many chatterID posts in one statement, each checked against its chatterID in the same statement (a chatterID
# ended elsewhere a moment ago is refused); returns the 0-based positions of the posts that were stored.
INSERT_CHATTS_FOR_CHATTER_IDS = f"""
WITH posts AS (
    SELECT posts.position, users.username, posts.message, users.id AS user_id
    FROM unnest(%s::bytea[], %s::text[]) WITH ORDINALITY AS posts (id_hash, message, position)
    JOIN sessions ON sessions.chatter_id_hash = posts.id_hash AND sessions.chatter_id_expires_at > now()
      AND sessions.ended_at IS NULL
    JOIN users ON users.id = sessions.user_id AND {USER_IN_GOOD_STANDING}
),
inserted AS (
    INSERT INTO chatts (username, message, user_id) SELECT username, message, user_id FROM posts ORDER BY position
)
SELECT position - 1 FROM posts
"""


async def list_chatts(db: Database, *, limit: int, after: str | None = None) -> list[FeedRow]:
    """The newest `limit` chatts (after the given one, if any), oldest first."""
    if after is None:
        return await db.fetch_all(LIST_NEWEST_CHATTS, {"limit": limit})
    rows = await db.fetch_all(LIST_CHATTS_AFTER, {"after": after, "limit": limit})
    if not rows:
        raise UnknownChatt(after)
    return [row for row in rows if row[2] is not None]


async def add_chatts(db: Database, chatts: list[tuple[str, str, int | None]]) -> set[int]:
    """Store several chatts (username, message, user id or None) with one statement; the positions stored.

    ChattRefused when a constraint refuses one of them (PosterGone when a user was deleted meanwhile): then none
    is stored.
    """
    usernames, messages, user_ids = (list(column) for column in zip(*chatts, strict=True))
    return await _insert(db, INSERT_CHATTS, (usernames, messages, user_ids))


async def add_chatts_for_chatter_ids(db: Database, posts: list[tuple[bytes, str]]) -> set[int]:
    """Store several chatts under their chatterIDs' users; the positions of those stored (live chatterIDs).

    ChattRefused when a constraint refuses one of them: then none is stored.
    """
    hashes = [post[0] for post in posts]
    messages = [post[1] for post in posts]
    return await _insert(db, INSERT_CHATTS_FOR_CHATTER_IDS, (hashes, messages))


async def _insert(db: Database, statement: str, params: tuple[Sequence[object], ...]) -> set[int]:
    try:
        return {row[0] for row in await db.fetch_all(statement, params)}
    except psycopg2.errors.ForeignKeyViolation as exc:  # chatts' one foreign key is its user
        raise PosterGone(exc.diag.constraint_name or "") from exc
    except (psycopg2.IntegrityError, psycopg2.DataError) as exc:
        raise ChattRefused(exc.diag.constraint_name or exc.pgcode or type(exc).__name__) from exc


async def delete_chatt(db: Database, chatt_id: str) -> bool:
    """Delete a chatt; False when there was none with that id."""
    return await db.execute(DELETE_CHATT, (chatt_id,)) > 0


ChattsVersion = tuple[int, ...] | None


def _version(slots: list[int] | None) -> ChattsVersion:
    return None if slots is None else tuple(slots)


async def chatts_version(db: Database) -> ChattsVersion:
    """The chatts table's current version (None only if its slots were removed)."""
    row = await db.fetch_one(SELECT_CHATTS_VERSION)
    return None if row is None else _version(row[0])


async def list_newest_versioned(db: Database, *, limit: int) -> tuple[ChattsVersion, list[FeedRow]]:
    """The newest `limit` chatts, oldest first, and the version of the table they were read at."""
    rows = await db.fetch_all(LIST_NEWEST_CHATTS_VERSIONED, {"limit": limit})
    version = _version(rows[0][0]) if rows else None
    return version, [row[1:] for row in rows if row[3] is not None]
