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


# Web sign-in (the redirect flow) wants the user only: it issues a JWT in a cookie, no chatterID.
UPSERT_GOOGLE_USER = """
INSERT INTO users (username, google_sub, email) VALUES (%(username)s, %(sub)s, %(email)s)
ON CONFLICT (google_sub) DO UPDATE SET username = EXCLUDED.username, email = EXCLUDED.email
RETURNING id, username, role
"""


async def upsert_google_user(db: Database, *, sub: str, username: str, email: str | None) -> User:
    """Find or create the user for a Google subject (its name and email following Google's), without a session."""
    async with db.cursor() as cur:
        await cur.execute(UPSERT_GOOGLE_USER, {"username": username, "sub": sub, "email": email})
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


# ---- password accounts ------------------------------------------------------------------------------------------


class UsernameTaken(Exception):
    """Another password account already has this username."""


@dataclass(frozen=True, slots=True)
class Account:
    """A password account as login needs it, plus how long its sign-ins are locked (seconds, 0 if not)."""

    user: User | None
    password_hash: str | None
    totp_secret: str | None
    totp_enabled: bool
    totp_last_step: int | None
    locked_for: float


INSERT_PASSWORD_USER = """
INSERT INTO users (username, password_hash) VALUES (%s, %s)
ON CONFLICT (lower(username)) WHERE google_sub IS NULL DO NOTHING
RETURNING id
"""

# The account and the lock on its sign-ins in one round trip; one row even for an unknown username.
SELECT_ACCOUNT_FOR_LOGIN = """
SELECT users.id, users.username, users.role, users.password_hash,
       users.totp_secret, users.totp_enabled, users.totp_last_step,
       coalesce((SELECT extract(epoch FROM max(locked_until) - now())::float8 FROM throttle
                 WHERE key = ANY(%(keys)s) AND locked_until > now()), 0)
FROM (SELECT 1) AS one
LEFT JOIN users ON lower(users.username) = lower(%(username)s) AND users.google_sub IS NULL
"""

UPDATE_PASSWORD_HASH = "UPDATE users SET password_hash = %s WHERE id = %s"

SET_TOTP_SECRET = "UPDATE users SET totp_secret = %s WHERE id = %s AND NOT totp_enabled AND password_hash IS NOT NULL"

SELECT_TOTP = "SELECT totp_secret, totp_enabled, totp_last_step FROM users WHERE id = %s"

# Only moves forward: of two racing uses of one code, one wins.
USE_TOTP_STEP = """
UPDATE users SET totp_enabled = true, totp_last_step = %(step)s
WHERE id = %(user_id)s AND totp_secret = %(secret)s AND (totp_last_step IS NULL OR totp_last_step < %(step)s)
"""

SET_ROLE = "UPDATE users SET role = %s WHERE lower(username) = lower(%s) AND google_sub IS NULL RETURNING id"

SELECT_USER_BY_NAME = "SELECT id, username, role FROM users WHERE lower(username) = lower(%s) AND google_sub IS NULL"


async def create_password_user(db: Database, username: str, password_hash: str) -> User:
    """Create a password account; UsernameTaken when the name is in use (whatever its case)."""
    async with db.cursor() as cur:
        await cur.execute(INSERT_PASSWORD_USER, (username, password_hash))
        row = await cur.fetchone()
    if row is None:
        raise UsernameTaken(username)
    return User(row[0], username, "user")


async def account_for_login(db: Database, username: str, throttle_keys: list[str]) -> Account:
    """The password account called `username` (user None if there is none) and the lock on these keys."""
    async with db.cursor() as cur:
        await cur.execute(SELECT_ACCOUNT_FOR_LOGIN, {"username": username, "keys": throttle_keys})
        row = await cur.fetchone()
    user = User(row[0], row[1], row[2]) if row[0] is not None else None
    return Account(user, row[3], row[4], bool(row[5]), row[6], float(row[7]))


async def update_password_hash(db: Database, user_id: int, password_hash: str) -> None:
    """Store a password hash made with newer parameters."""
    async with db.cursor() as cur:
        await cur.execute(UPDATE_PASSWORD_HASH, (password_hash, user_id))


async def set_totp_secret(db: Database, user_id: int, secret: str) -> bool:
    """Store a new TOTP secret, not yet enabled; False if TOTP is already on or the account has no password."""
    async with db.cursor() as cur:
        await cur.execute(SET_TOTP_SECRET, (secret, user_id))
        return cur.rowcount > 0


async def totp_state(db: Database, user_id: int) -> tuple[str | None, bool, int | None]:
    """The user's TOTP secret, whether it is enabled, and the last time step used."""
    async with db.cursor() as cur:
        await cur.execute(SELECT_TOTP, (user_id,))
        row = await cur.fetchone()
    return (row[0], bool(row[1]), row[2]) if row else (None, False, None)


async def use_totp_step(db: Database, user_id: int, secret: str, step: int) -> bool:
    """Record a code's time step as used (and TOTP as enabled); False if that step or a later one was used."""
    async with db.cursor() as cur:
        await cur.execute(USE_TOTP_STEP, {"user_id": user_id, "secret": secret, "step": step})
        return cur.rowcount > 0


async def set_role(db: Database, username: str, role: str) -> int | None:
    """Give a password account a role; its id, or None when there is no such account."""
    async with db.cursor() as cur:
        await cur.execute(SET_ROLE, (role, username))
        row = await cur.fetchone()
    return row[0] if row else None


async def user_by_name(db: Database, username: str) -> User | None:
    """The password account called `username`, if any."""
    async with db.cursor() as cur:
        await cur.execute(SELECT_USER_BY_NAME, (username,))
        row = await cur.fetchone()
    return User(row[0], row[1], row[2]) if row else None


# ---- throttling -------------------------------------------------------------------------------------------------

# Count a failure against each key; a key reaching its limit within the window is locked for `lockout` seconds.
# Stale counters of other keys are purged a few at a time on the way.
RECORD_FAILURE = """
WITH counted AS (
    INSERT INTO throttle AS t (key, hits, max_hits, window_start, locked_until)
    SELECT key, 1, max_hits, now(), CASE WHEN max_hits <= 1 THEN now() + make_interval(secs => %(lockout)s) END
    FROM unnest(%(keys)s::text[], %(limits)s::int[]) AS limits (key, max_hits)
    ON CONFLICT (key) DO UPDATE SET
        hits = CASE WHEN t.window_start < now() - make_interval(secs => %(window)s) THEN 1 ELSE t.hits + 1 END,
        max_hits = EXCLUDED.max_hits,
        window_start = CASE WHEN t.window_start < now() - make_interval(secs => %(window)s)
                            THEN now() ELSE t.window_start END,
        locked_until = CASE
            WHEN (CASE WHEN t.window_start < now() - make_interval(secs => %(window)s) THEN 1 ELSE t.hits + 1 END)
                 >= EXCLUDED.max_hits
            THEN now() + make_interval(secs => %(lockout)s)
            ELSE t.locked_until END
    RETURNING key
),
purged AS (
    DELETE FROM throttle WHERE key IN (
        SELECT key FROM throttle
        WHERE window_start < now() - make_interval(secs => %(window)s) AND coalesce(locked_until, now()) <= now()
          AND key <> ALL(%(keys)s)
        ORDER BY window_start LIMIT 50
    )
)
SELECT count(*) FROM counted
"""

CLEAR_THROTTLE = "DELETE FROM throttle WHERE key = %s"

# Count one attempt (successful or not) against a rate key; the count in the current window and its age.
COUNT_ATTEMPT = """
INSERT INTO throttle AS t (key, hits, max_hits, window_start) VALUES (%(key)s, 1, 0, now())
ON CONFLICT (key) DO UPDATE SET
    hits = CASE WHEN t.window_start < now() - make_interval(secs => %(window)s) THEN 1 ELSE t.hits + 1 END,
    window_start = CASE WHEN t.window_start < now() - make_interval(secs => %(window)s)
                        THEN now() ELSE t.window_start END
RETURNING hits, extract(epoch FROM now() - window_start)::float8
"""


async def record_failures(db: Database, limits: dict[str, int], *, window: int, lockout: int) -> None:
    """Count a failed sign-in against each key; keys reaching their limit get locked."""
    async with db.cursor() as cur:
        await cur.execute(
            RECORD_FAILURE,
            {"keys": list(limits), "limits": list(limits.values()), "window": window, "lockout": lockout},
        )


async def clear_throttle(db: Database, key: str) -> None:
    """Forget the failures counted against a key (after a successful sign-in)."""
    async with db.cursor() as cur:
        await cur.execute(CLEAR_THROTTLE, (key,))


async def count_attempt(db: Database, key: str, *, window: int) -> tuple[int, float]:
    """Count one attempt against `key`; returns the attempts in this window and the window's age in seconds."""
    async with db.cursor() as cur:
        await cur.execute(COUNT_ATTEMPT, {"key": key, "window": window})
        hits, age = await cur.fetchone()
    return int(hits), float(age)
