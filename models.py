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


# ---- users and chatterID sessions -------------------------------------------------------------------------------

# Each sign-in also removes a few expired sessions (the "purged" part), so they never pile up and no full-table
# DELETE is needed.
# One round trip: the same Google subject is always the same user (whose name follows Google's), plus a new session.
SIGN_IN_GOOGLE_USER = """
WITH account AS (
    INSERT INTO users (username, google_sub, email) VALUES (%(username)s, %(sub)s, %(email)s)
    ON CONFLICT (google_sub) DO UPDATE SET username = EXCLUDED.username, email = EXCLUDED.email
    RETURNING id, username, role
),
session AS (
    INSERT INTO chatter_sessions (id_hash, user_id, expires_at)
    SELECT %(id_hash)s, id, now() + make_interval(secs => %(lifetime)s) FROM account
),
purged AS (
    DELETE FROM chatter_sessions WHERE id_hash IN (
        SELECT id_hash FROM chatter_sessions WHERE expires_at < now() ORDER BY expires_at LIMIT 50
    )
)
SELECT id, username, role FROM account
"""

START_SESSION = """
WITH session AS (
    INSERT INTO chatter_sessions (id_hash, user_id, expires_at)
    VALUES (%(id_hash)s, %(user_id)s, now() + make_interval(secs => %(lifetime)s))
),
purged AS (
    DELETE FROM chatter_sessions WHERE id_hash IN (
        SELECT id_hash FROM chatter_sessions WHERE expires_at < now() ORDER BY expires_at LIMIT 50
    )
)
SELECT 1
"""

SELECT_SESSION_USER = """
SELECT users.id, users.username, users.role, extract(epoch FROM sessions.expires_at)::float8
FROM chatter_sessions AS sessions JOIN users ON users.id = sessions.user_id
WHERE sessions.id_hash = %s AND sessions.expires_at > now()
"""

# The session check and the insert in one statement: no row inserted means the chatterID is unknown or expired.
INSERT_CHATT_FOR_SESSION = """
INSERT INTO chatts (username, message, user_id)
SELECT users.username, %(message)s, users.id
FROM chatter_sessions AS sessions JOIN users ON users.id = sessions.user_id
WHERE sessions.id_hash = %(id_hash)s AND sessions.expires_at > now()
RETURNING id
"""


async def sign_in_google_user(
    db: Database, *, sub: str, username: str, email: str | None, session_hash: bytes, lifetime: int
) -> User:
    """Find or create the user for a Google subject and open a chatterID session for it."""
    async with db.cursor() as cur:
        await cur.execute(
            SIGN_IN_GOOGLE_USER,
            {"username": username, "sub": sub, "email": email, "id_hash": session_hash, "lifetime": lifetime},
        )
        user_id, name, role = await cur.fetchone()
    return User(user_id, name, role)


async def start_session(db: Database, *, user_id: int, session_hash: bytes, lifetime: int) -> None:
    """Open a chatterID session for an existing user."""
    async with db.cursor() as cur:
        await cur.execute(START_SESSION, {"user_id": user_id, "id_hash": session_hash, "lifetime": lifetime})


async def session_user(db: Database, session_hash: bytes) -> tuple[User, float] | None:
    """The user a live chatterID belongs to and when it expires (epoch seconds), or None."""
    async with db.cursor() as cur:
        await cur.execute(SELECT_SESSION_USER, (session_hash,))
        row = await cur.fetchone()
    if row is None:
        return None
    return User(row[0], row[1], row[2]), row[3]


async def add_chatt_for_session(db: Database, session_hash: bytes, message: str) -> bool:
    """Store a chatt under the chatterID's user; False when the chatterID is unknown or expired."""
    async with db.cursor() as cur:
        await cur.execute(INSERT_CHATT_FOR_SESSION, {"message": message, "id_hash": session_hash})
        return await cur.fetchone() is not None


# ---- revocation -------------------------------------------------------------------------------------------------

REVOCATION_CHANNEL = "chatterd_revocations"

# The revocation is stored and announced to every listening worker in one transaction.
REVOKE_TOKEN = """
WITH revoked AS (
    INSERT INTO revoked_tokens (jti, expires_at) VALUES (%(jti)s, to_timestamp(%(expires_at)s))
    ON CONFLICT (jti) DO NOTHING
),
purged AS (
    DELETE FROM revoked_tokens WHERE jti IN (
        SELECT jti FROM revoked_tokens WHERE expires_at < now() ORDER BY expires_at LIMIT 50
    )
)
SELECT pg_notify('chatterd_revocations', %(notice)s)
"""

END_SESSION = """
WITH ended AS (DELETE FROM chatter_sessions WHERE id_hash = %(id_hash)s)
SELECT pg_notify('chatterd_revocations', %(notice)s)
"""

END_ALL_SESSIONS = """
WITH cutoff AS (UPDATE users SET tokens_valid_after = %(cutoff)s WHERE id = %(user_id)s),
ended AS (DELETE FROM chatter_sessions WHERE user_id = %(user_id)s)
SELECT pg_notify('chatterd_revocations', %(notice)s)
"""

SELECT_REVOKED_TOKENS = """
SELECT jti, extract(epoch FROM expires_at)::float8 FROM revoked_tokens WHERE expires_at > now()
"""

SELECT_TOKEN_CUTOFFS = "SELECT id, tokens_valid_after FROM users WHERE tokens_valid_after > %s"


async def revoke_token(db: Database, *, jti: str, expires_at: float, notice: str) -> None:
    """Refuse a JWT from now on, everywhere."""
    async with db.cursor() as cur:
        await cur.execute(REVOKE_TOKEN, {"jti": jti, "expires_at": expires_at, "notice": notice})


async def end_session(db: Database, *, session_hash: bytes, notice: str) -> None:
    """Refuse a chatterID from now on, everywhere."""
    async with db.cursor() as cur:
        await cur.execute(END_SESSION, {"id_hash": session_hash, "notice": notice})


async def end_all_sessions(db: Database, *, user_id: int, cutoff: float, notice: str) -> None:
    """Log a user out everywhere: every chatterID ends and every JWT issued before `cutoff` is refused."""
    async with db.cursor() as cur:
        await cur.execute(END_ALL_SESSIONS, {"user_id": user_id, "cutoff": cutoff, "notice": notice})


async def load_revocations(db: Database, *, cutoffs_since: float) -> tuple[dict[str, float], dict[int, float]]:
    """Revoked JWT ids (with their expiry) and per-user token cut-offs that can still matter."""
    async with db.cursor() as cur:
        await cur.execute(SELECT_REVOKED_TOKENS)
        jtis = {jti: expires for jti, expires in await cur.fetchall()}
        await cur.execute(SELECT_TOKEN_CUTOFFS, (cutoffs_since,))
        cutoffs = {user_id: cutoff for user_id, cutoff in await cur.fetchall()}
    return jtis, cutoffs
