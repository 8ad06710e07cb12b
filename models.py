"""Every SQL statement chatterd runs, as named constants beside small typed functions."""

from __future__ import annotations

from dataclasses import dataclass

from db import Database


@dataclass(frozen=True, slots=True)
class User:
    """A signed-in caller."""

    id: int
    username: str
    role: str


class UnknownChatt(Exception):
    """No chatt has the given id."""


# ---- chatts -----------------------------------------------------------------------------------------------------

# Text conversions happen in Postgres: cheaper than building UUID and datetime objects in Python.
LIST_NEWEST_CHATTS = """
SELECT username, message, id::text, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM (SELECT seq, username, message, id, created_at FROM chatts ORDER BY seq DESC LIMIT %(limit)s) AS newest
ORDER BY seq
"""

# One round trip that also tells "unknown anchor" (no row) from "nothing newer" (one row of NULLs).
LIST_CHATTS_AFTER = """
SELECT newer.username, newer.message, newer.id::text,
       to_char(newer.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM (SELECT seq FROM chatts WHERE id = %(after)s) AS anchor
LEFT JOIN LATERAL (
    SELECT seq, username, message, id, created_at FROM chatts
    WHERE seq > anchor.seq ORDER BY seq DESC LIMIT %(limit)s
) AS newer ON true
ORDER BY newer.seq
"""

INSERT_CHATT = "INSERT INTO chatts (username, message, user_id) VALUES (%s, %s, %s)"

DELETE_CHATT = "DELETE FROM chatts WHERE id = %s"


async def list_chatts(db: Database, *, limit: int, after: str | None = None) -> list[tuple[str, str, str, str]]:
    """The newest `limit` chatts (after the given one, if any), oldest first, as contract rows."""
    async with db.cursor() as cur:
        if after is None:
            await cur.execute(LIST_NEWEST_CHATTS, {"limit": limit})
            return await cur.fetchall()
        await cur.execute(LIST_CHATTS_AFTER, {"after": after, "limit": limit})
        rows = await cur.fetchall()
    if not rows:
        raise UnknownChatt(after)
    return [row for row in rows if row[2] is not None]


async def add_chatt(db: Database, username: str, message: str, user_id: int | None = None) -> None:
    """Store one chatt."""
    async with db.cursor() as cur:
        await cur.execute(INSERT_CHATT, (username, message, user_id))


async def delete_chatt(db: Database, chatt_id: str) -> bool:
    """Delete a chatt; False when there was none with that id."""
    async with db.cursor() as cur:
        await cur.execute(DELETE_CHATT, (chatt_id,))
        return cur.rowcount > 0
