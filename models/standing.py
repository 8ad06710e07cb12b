"""Users' standing: what authorises their credentials (name, role, ban, deletion, log-out-everywhere cut-off)."""

from __future__ import annotations

from db.pool import Database
from models.records import Standing, User

STANDING_COLUMNS = """
id, username, role, tokens_valid_after, extract(epoch FROM banned_until)::float8, deleted_at IS NOT NULL,
standing_version, email, email_verified_at IS NOT NULL
"""

SELECT_STANDING = f"SELECT {STANDING_COLUMNS} FROM users WHERE id = %s"

# The most recent users first: the ones whose credentials are most likely in use.
SELECT_RECENT_STANDINGS = f"SELECT {STANDING_COLUMNS} FROM users ORDER BY id DESC LIMIT %s"


def _standing(row: tuple[int, str, str, float, float | None, bool, int, str | None, bool]) -> Standing:
    user = User(row[0], row[1], row[2], row[7], bool(row[8]))
    return Standing(user, float(row[3]), row[4], bool(row[5]), int(row[6]))


async def user_standing(db: Database, user_id: int) -> Standing | None:
    """One user's standing, or None when there is no such user."""
    row = await db.fetch_one(SELECT_STANDING, (user_id,))
    return None if row is None else _standing(row)


async def recent_standings(db: Database, *, limit: int) -> list[Standing]:
    """The standing of the `limit` newest users."""
    return [_standing(row) for row in await db.fetch_all(SELECT_RECENT_STANDINGS, (limit,))]
