"""What admins do to users: search them, read one, change a role, ban and unban; every change audited.

Whatever may leave the site without an admin who can act (a demotion, a ban, an account's deletion) takes one
transaction-scoped advisory lock first, then counts the other admins: of two admins demoting each other at once, the
second waits for the first and then finds no other admin left, so one admin always remains.
"""

from __future__ import annotations

from typing import Any

from db.pool import Cursor, Database
from models.fragments import AUDIT_INSERT, BANNED_UNTIL, ISO_UTC, USER_IN_GOOD_STANDING
from models.identities import identities_in
from models.records import Ending, LastAdmin, SessionPolicy, UnknownUser
from models.sessions import end_all_sessions_in, list_sessions

# Any constant nothing else takes; this one spells "admins".
ADMINS_LOCK_KEY = 0x61646D696E73

LOCK_ADMINS = "SELECT pg_advisory_xact_lock(%(admins_lock)s)"
# The user's row, held until commit; whether they are an admin who can act now.
LOCK_USER = f"""
SELECT role = 'admin' AND {USER_IN_GOOD_STANDING}, role FROM users WHERE id = %(user_id)s AND deleted_at IS NULL
FOR NO KEY UPDATE
"""
OTHER_ADMINS = f"""
SELECT count(*) FROM users WHERE role = 'admin' AND {USER_IN_GOOD_STANDING} AND id <> %(user_id)s
"""

USER_COLUMNS = f"""
users.id, users.username, users.email, users.role, to_char(users.created_at AT TIME ZONE 'UTC', {ISO_UTC}),
{BANNED_UNTIL}"""
USER_KEYS = ("id", "username", "email", "role", "created_at", "banned_until")

# Newest first, a page at a time after the cursor (the last id of the page before); `pattern` is an ILIKE pattern
# matched against the name and the addresses, `q` an exact id.
SEARCH_USERS = f"""
SELECT {USER_COLUMNS}
FROM users
WHERE users.deleted_at IS NULL AND (%(before)s::bigint IS NULL OR users.id < %(before)s)
  AND (%(pattern)s::text IS NULL OR users.username ILIKE %(pattern)s OR users.email ILIKE %(pattern)s
       OR users.id::text = %(q)s
       OR EXISTS (SELECT 1 FROM google_identities AS g WHERE g.user_id = users.id AND g.email ILIKE %(pattern)s))
ORDER BY users.id DESC
LIMIT %(limit)s
"""

SELECT_USER = f"""
SELECT {USER_COLUMNS}, CASE WHEN users.banned_until > now() THEN users.ban_reason END, users.totp_enabled
FROM users WHERE users.id = %(user_id)s AND users.deleted_at IS NULL
"""

SET_ROLE = f"""
WITH changed AS (UPDATE users SET role = %(role)s WHERE id = %(user_id)s RETURNING id)
{AUDIT_INSERT}
SELECT id, 'role_change', NULL, %(address)s,
       jsonb_build_object('from', %(previous)s::text, 'to', %(role)s::text, 'by', %(by)s)
FROM changed
"""

BAN = f"""
WITH banned AS (
    UPDATE users SET banned_until = %(until)s::timestamptz, ban_reason = %(reason)s WHERE id = %(user_id)s RETURNING id
)
{AUDIT_INSERT}
SELECT id, 'ban', NULL, %(address)s,
       jsonb_build_object('until', %(until)s::text, 'ban_reason', %(reason)s::text, 'by', %(by)s)
FROM banned
"""

UNBAN = f"""
WITH lifted AS (
    UPDATE users SET banned_until = NULL, ban_reason = NULL WHERE id = %(user_id)s AND deleted_at IS NULL RETURNING id
)
{AUDIT_INSERT} SELECT id, 'unban', NULL, %(address)s, jsonb_build_object('by', %(by)s) FROM lifted
RETURNING user_id
"""


def _escape_like(text: str) -> str:
    """`text` matched literally by LIKE/ILIKE (whose default escape character is the backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_users(
    db: Database, *, q: str | None, limit: int, before: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """Users whose name or address holds `q` (or whose id it is), newest first, `limit` at most after the cursor
    `before`; and the cursor of the next page (None on the last)."""
    params = {
        "q": q,
        "pattern": None if not q else f"%{_escape_like(q)}%",
        "before": before,
        "limit": limit + 1,
    }
    rows = await db.fetch_all(SEARCH_USERS, params)
    users = [dict(zip(USER_KEYS, row, strict=True)) for row in rows[:limit]]
    return users, (users[-1]["id"] if len(rows) > limit else None)


async def user_details(db: Database, *, user_id: int, policy: SessionPolicy, sessions: int) -> dict[str, Any] | None:
    """One user as an admin sees them: the listed fields, the ban's reason, identities and live sessions."""
    async with db.cursor() as cur:
        await cur.execute(SELECT_USER, {"user_id": user_id})
        row = await cur.fetchone()
        if row is None:
            return None
        found: dict[str, Any] = dict(zip(USER_KEYS, row, strict=False))
        found.update(ban_reason=row[6], totp_enabled=bool(row[7]), identities=await identities_in(cur, user_id))
    found["sessions"] = await list_sessions(db, user_id=user_id, policy=policy, limit=sessions)
    return found


async def keep_an_admin(cur: Cursor, user_id: int, *, still_admin: bool) -> str:
    """Take the admins' lock and the user's row, within a transaction open on `cur`; LastAdmin when the user is the
    only admin who can act and would no longer be one (`still_admin` False). Returns the user's role."""
    params = {"admins_lock": ADMINS_LOCK_KEY, "user_id": user_id}
    await cur.execute(LOCK_ADMINS, params)
    await cur.execute(LOCK_USER, params)
    row = await cur.fetchone()
    if row is None:
        raise UnknownUser(user_id)
    acting_admin, role = row
    if acting_admin and not still_admin:
        await cur.execute(OTHER_ADMINS, params)
        (others,) = await cur.fetchone()
        if not others:
            raise LastAdmin(user_id)
    return str(role)


async def change_user_role(db: Database, *, user_id: int, role: str, by: int, address: str) -> None:
    """Give a user a role (audited); UnknownUser, or LastAdmin for a demotion of the only admin."""
    async with db.cursor() as cur, cur.transaction():
        previous = await keep_an_admin(cur, user_id, still_admin=role == "admin")
        params = {"user_id": user_id, "role": role, "previous": previous, "by": by, "address": address}
        await cur.execute(SET_ROLE, params)


async def ban_user(
    db: Database, *, user_id: int, until: str, reason: str | None, by: int, cutoff: float, ending: Ending
) -> list[str]:
    """Ban a user until `until` (ISO 8601, or "infinity") and end every session and JWT of theirs (as `ending` says),
    in one transaction, audited; the ids of the sessions ended. UnknownUser, or LastAdmin for the only admin."""
    async with db.cursor() as cur, cur.transaction():
        await keep_an_admin(cur, user_id, still_admin=False)
        params = {"user_id": user_id, "until": until, "reason": reason, "by": by, "address": ending.address}
        await cur.execute(BAN, params)
        return await end_all_sessions_in(cur, user_id=user_id, cutoff=cutoff, ending=ending)


async def unban_user(db: Database, *, user_id: int, by: int, address: str) -> None:
    """Lift a user's ban (audited, banned or not); UnknownUser when there is no such user."""
    if await db.fetch_one(UNBAN, {"user_id": user_id, "by": by, "address": address}) is None:
        raise UnknownUser(user_id)
