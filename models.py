"""Every SQL statement chatterd runs, as named constants beside small typed functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from db.pool import Database


@dataclass(frozen=True, slots=True)
class User:
    """A signed-in caller."""

    id: int
    username: str
    role: str


class UnknownChatt(Exception):
    """No chatt has the given id."""


class RateLimited(Exception):
    """Too many attempts from one address; `retry_after` seconds until the window ends."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after


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

DELETE_CHATT = "DELETE FROM chatts WHERE id = %s"

# Changes to chatts are announced on the events channel so every worker drops its in-memory feed. Not inside the
# INSERT: Postgres serialises the commits of notifying transactions, which would cap posting at one fsync at a time.
CHATTS_CHANGED = "chatts"
ANNOUNCE_CHATTS_CHANGED = "SELECT pg_notify('chatterd_events', 'chatts')"


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


# Many chatts in one statement, in the order given (seq follows the array order).
INSERT_CHATTS = """
INSERT INTO chatts (username, message, user_id)
SELECT username, message, user_id
FROM unnest(%s::text[], %s::text[], %s::bigint[]) WITH ORDINALITY AS posts (username, message, user_id, position)
ORDER BY position
"""

# Many chatterID posts in one statement, each checked against its session in the same statement (a chatterID
# ended elsewhere a moment ago is refused); returns the 0-based positions of the posts that were stored.
INSERT_CHATTS_FOR_SESSIONS = """
WITH posts AS (
    SELECT posts.position, users.username, posts.message, users.id AS user_id
    FROM unnest(%s::bytea[], %s::text[]) WITH ORDINALITY AS posts (id_hash, message, position)
    JOIN chatter_sessions AS sessions ON sessions.id_hash = posts.id_hash AND sessions.expires_at > now()
    JOIN users ON users.id = sessions.user_id
),
inserted AS (
    INSERT INTO chatts (username, message, user_id) SELECT username, message, user_id FROM posts ORDER BY position
)
SELECT position - 1 FROM posts
"""


async def add_chatts(db: Database, chatts: list[tuple[str, str, int | None]]) -> None:
    """Store several chatts (username, message, user id) with one statement."""
    usernames, messages, user_ids = (list(column) for column in zip(*chatts, strict=True))
    async with db.cursor() as cur:
        await cur.execute(INSERT_CHATTS, (usernames, messages, user_ids))


async def add_chatts_for_sessions(db: Database, posts: list[tuple[bytes, str]]) -> set[int]:
    """Store several chatts under their chatterIDs' users; the positions of those stored (live chatterIDs)."""
    hashes = [post[0] for post in posts]
    messages = [post[1] for post in posts]
    async with db.cursor() as cur:
        await cur.execute(INSERT_CHATTS_FOR_SESSIONS, (hashes, messages))
        return {row[0] for row in await cur.fetchall()}


async def delete_chatt(db: Database, chatt_id: str) -> bool:
    """Delete a chatt; False when there was none with that id."""
    async with db.cursor() as cur:
        await cur.execute(DELETE_CHATT, (chatt_id,))
        return cur.rowcount > 0


async def announce_chatts_changed(db: Database) -> None:
    """Tell every worker and server that chatts changed."""
    async with db.cursor() as cur:
        await cur.execute(ANNOUNCE_CHATTS_CHANGED)


# ---- users and chatterID sessions -------------------------------------------------------------------------------

# Each sign-in also removes a few expired sessions (the "purged" part), so they never pile up and no full-table
# DELETE is needed.
# One round trip: the same Google subject is always the same user (whose name follows Google's), plus a new session.
# The per-address rate count is part of the same statement: nothing is written past the limit.
SIGN_IN_GOOGLE_USER = """
WITH attempt AS (
    INSERT INTO throttle AS t (key, hits, max_hits, window_start)
    SELECT %(rate_key)s, 1, 0, now() WHERE %(limit)s > 0
    ON CONFLICT (key) DO UPDATE SET
        hits = CASE WHEN t.window_start < now() - make_interval(secs => %(window)s) THEN 1 ELSE t.hits + 1 END,
        window_start = CASE WHEN t.window_start < now() - make_interval(secs => %(window)s)
                            THEN now() ELSE t.window_start END
    RETURNING hits, extract(epoch FROM now() - window_start)::float8 AS age
),
allowed AS (SELECT 1 WHERE %(limit)s = 0 OR (SELECT hits FROM attempt) <= %(limit)s),
existing AS (SELECT id, username, role, email FROM users WHERE google_sub = %(sub)s),
inserted AS (
    INSERT INTO users (username, google_sub, email)
    SELECT %(username)s, %(sub)s, %(email)s FROM allowed WHERE NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT (google_sub) DO NOTHING
    RETURNING id, username, role
),
-- Only a changed name or email is written: a returning user's sign-in takes no lock on its row.
renamed AS (
    UPDATE users SET username = %(username)s, email = %(email)s
    FROM existing, allowed
    WHERE users.id = existing.id
      AND (existing.username IS DISTINCT FROM %(username)s OR existing.email IS DISTINCT FROM %(email)s)
    RETURNING users.id, users.username, users.role
),
account AS (
    SELECT id, username, role FROM inserted
    UNION ALL SELECT id, username, role FROM renamed
    UNION ALL SELECT existing.id, existing.username, existing.role FROM existing, allowed
              WHERE NOT EXISTS (SELECT 1 FROM renamed)
),
session AS (
    INSERT INTO chatter_sessions (id_hash, user_id, expires_at)
    SELECT %(id_hash)s, id, now() + make_interval(secs => %(lifetime)s) FROM account
),
refresh AS (
    INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)
    SELECT %(refresh_hash)s, %(family_id)s, id, now() + make_interval(secs => %(refresh_lifetime)s) FROM account
),
audit AS (
    INSERT INTO auth_events (user_id, event, kind, address) SELECT id, 'sign_in', 'google', %(address)s FROM account
),
purged AS (
    DELETE FROM chatter_sessions WHERE id_hash IN (
        SELECT id_hash FROM chatter_sessions WHERE expires_at < now() ORDER BY expires_at LIMIT 50
    )
)
SELECT account.id, account.username, account.role, (SELECT age FROM attempt), EXISTS (SELECT 1 FROM allowed)
FROM (SELECT 1) AS one LEFT JOIN account ON true
"""

SELECT_SESSION_USER = """
SELECT users.id, users.username, users.role, extract(epoch FROM sessions.expires_at)::float8
FROM chatter_sessions AS sessions JOIN users ON users.id = sessions.user_id
WHERE sessions.id_hash = %s AND sessions.expires_at > now()
"""


@dataclass(frozen=True, slots=True)
class NewRefreshToken:
    """Where a new refresh token goes: its hash, its family and how long it lives (seconds)."""

    token_hash: bytes
    family_id: str
    lifetime: int


async def sign_in_google_user(
    db: Database,
    *,
    sub: str,
    username: str,
    email: str | None,
    session_hash: bytes,
    lifetime: int,
    refresh: NewRefreshToken,
    address: str,
    rate_key: str,
    rate_limit: int,
    rate_window: int,
) -> User:
    """Find or create the user for a Google subject; open a chatterID session and a refresh-token family for it.

    RateLimited (with the seconds to wait) when `rate_key` is past `rate_limit` attempts in `rate_window` seconds;
    a limit of 0 counts nothing.
    """
    # A first sign-in racing another for the same subject finds the row only on a second try.
    for _ in range(2):
        async with db.cursor() as cur:
            await cur.execute(
                SIGN_IN_GOOGLE_USER,
                {
                    "username": username,
                    "sub": sub,
                    "email": email,
                    "id_hash": session_hash,
                    "lifetime": lifetime,
                    "refresh_hash": refresh.token_hash,
                    "family_id": refresh.family_id,
                    "refresh_lifetime": refresh.lifetime,
                    "address": address,
                    "rate_key": rate_key,
                    "limit": rate_limit,
                    "window": rate_window,
                },
            )
            user_id, name, role, window_age, allowed = await cur.fetchone()
        if not allowed:
            raise RateLimited(rate_window - (window_age or 0.0))
        if user_id is not None:
            return User(user_id, name, role)
    raise RuntimeError(f"could not find or create the user for Google subject {sub!r}")


# Web sign-in (the redirect flow) wants the user only: it issues a JWT in a cookie, no chatterID.
UPSERT_GOOGLE_USER = """
WITH account AS (
    INSERT INTO users (username, google_sub, email) VALUES (%(username)s, %(sub)s, %(email)s)
    ON CONFLICT (google_sub) DO UPDATE SET username = EXCLUDED.username, email = EXCLUDED.email
    RETURNING id, username, role
),
audit AS (
    INSERT INTO auth_events (user_id, event, kind, address) SELECT id, 'sign_in', 'google_web', %(address)s FROM account
)
SELECT id, username, role FROM account
"""


async def upsert_google_user(db: Database, *, sub: str, username: str, email: str | None, address: str) -> User:
    """Find or create the user for a Google subject (its name and email following Google's), without a session."""
    async with db.cursor() as cur:
        await cur.execute(UPSERT_GOOGLE_USER, {"username": username, "sub": sub, "email": email, "address": address})
        user_id, name, role = await cur.fetchone()
    return User(user_id, name, role)


async def session_user(db: Database, session_hash: bytes) -> tuple[User, float] | None:
    """The user a live chatterID belongs to and when it expires (epoch seconds), or None."""
    async with db.cursor() as cur:
        await cur.execute(SELECT_SESSION_USER, (session_hash,))
        row = await cur.fetchone()
    if row is None:
        return None
    return User(row[0], row[1], row[2]), row[3]


# ---- revocation -------------------------------------------------------------------------------------------------

# The revocation is stored and announced to every listening worker in one transaction.
REVOKE_TOKEN = """
WITH revoked AS (
    INSERT INTO revoked_tokens (jti, expires_at) VALUES (%(jti)s, to_timestamp(%(expires_at)s))
    ON CONFLICT (jti) DO NOTHING
),
family AS (
    UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = %(family_id)s::uuid AND revoked_at IS NULL
),
audit AS (
    INSERT INTO auth_events (user_id, event, kind, address) VALUES (%(user_id)s, 'logout', 'jwt', %(address)s)
),
purged AS (
    DELETE FROM revoked_tokens WHERE jti IN (
        SELECT jti FROM revoked_tokens WHERE expires_at < now() ORDER BY expires_at LIMIT 50
    )
)
SELECT pg_notify('chatterd_events', %(notice)s)
"""

END_SESSION = """
WITH ended AS (DELETE FROM chatter_sessions WHERE id_hash = %(id_hash)s),
audit AS (
    INSERT INTO auth_events (user_id, event, kind, address) VALUES (%(user_id)s, 'logout', 'chatterid', %(address)s)
)
SELECT pg_notify('chatterd_events', %(notice)s)
"""

END_ALL_SESSIONS = """
WITH cutoff AS (UPDATE users SET tokens_valid_after = %(cutoff)s WHERE id = %(user_id)s),
ended AS (DELETE FROM chatter_sessions WHERE user_id = %(user_id)s),
families AS (UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = %(user_id)s AND revoked_at IS NULL),
audit AS (
    INSERT INTO auth_events (user_id, event, kind, address, detail)
    VALUES (%(user_id)s, 'logout_everywhere', NULL, %(address)s, %(detail)s::jsonb)
)
SELECT pg_notify('chatterd_events', %(notice)s)
"""

SELECT_REVOKED_TOKENS = """
SELECT jti, extract(epoch FROM expires_at)::float8 FROM revoked_tokens WHERE expires_at > now()
"""

SELECT_TOKEN_CUTOFFS = "SELECT id, tokens_valid_after FROM users WHERE tokens_valid_after > %s"

# What a worker asks while it cannot follow revocations: this JWT logged out, its refresh family revoked, or its
# user logged out everywhere after it was issued.
SELECT_TOKEN_REVOKED = """
SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = %(jti)s)
    OR EXISTS (SELECT 1 FROM users WHERE id = %(user_id)s AND tokens_valid_after >= %(issued_at)s)
    OR EXISTS (SELECT 1 FROM refresh_tokens WHERE family_id = %(family_id)s::uuid AND revoked_at IS NOT NULL)
"""

SELECT_REVOKED_FAMILIES = """
SELECT family_id::text, extract(epoch FROM max(revoked_at))::float8 FROM refresh_tokens
WHERE revoked_at > to_timestamp(%s) GROUP BY family_id
"""


async def token_revoked(db: Database, *, jti: str, user_id: int, issued_at: float, family_id: str | None) -> bool:
    """True when this JWT was logged out, its refresh family revoked, or its user logged out everywhere since."""
    async with db.cursor() as cur:
        await cur.execute(
            SELECT_TOKEN_REVOKED, {"jti": jti, "user_id": user_id, "issued_at": issued_at, "family_id": family_id}
        )
        (revoked,) = await cur.fetchone()
    return bool(revoked)


async def revoke_token(
    db: Database, *, jti: str, expires_at: float, family_id: str | None, user_id: int, address: str, notice: str
) -> None:
    """Refuse a JWT (and the refresh-token family it came from) from now on, everywhere."""
    async with db.cursor() as cur:
        await cur.execute(
            REVOKE_TOKEN,
            {
                "jti": jti,
                "expires_at": expires_at,
                "family_id": family_id,
                "user_id": user_id,
                "address": address,
                "notice": notice,
            },
        )


async def end_session(db: Database, *, session_hash: bytes, user_id: int, address: str, notice: str) -> None:
    """Refuse a chatterID from now on, everywhere."""
    async with db.cursor() as cur:
        await cur.execute(
            END_SESSION, {"id_hash": session_hash, "user_id": user_id, "address": address, "notice": notice}
        )


async def end_all_sessions(
    db: Database, *, user_id: int, cutoff: float, address: str, reason: str, notice: str
) -> None:
    """Log a user out everywhere: chatterIDs, refresh tokens, and every JWT issued before `cutoff`."""
    async with db.cursor() as cur:
        await cur.execute(
            END_ALL_SESSIONS,
            {
                "user_id": user_id,
                "cutoff": cutoff,
                "address": address,
                "detail": orjson.dumps({"reason": reason}).decode(),
                "notice": notice,
            },
        )


@dataclass(frozen=True, slots=True)
class Revocations:
    """What a worker must refuse: JWT ids, per-user cut-offs, refresh-token families (each with a time)."""

    jtis: dict[str, float]
    cutoffs: dict[int, float]
    families: dict[str, float]


async def load_revocations(db: Database, *, since: float) -> Revocations:
    """Revoked JWT ids (with their expiry), and user cut-offs and revoked families newer than `since`."""
    async with db.cursor() as cur:
        await cur.execute(SELECT_REVOKED_TOKENS)
        jtis = {jti: expires for jti, expires in await cur.fetchall()}
        await cur.execute(SELECT_TOKEN_CUTOFFS, (since,))
        cutoffs = {user_id: cutoff for user_id, cutoff in await cur.fetchall()}
        await cur.execute(SELECT_REVOKED_FAMILIES, (since,))
        families = {family: at for family, at in await cur.fetchall()}
    return Revocations(jtis, cutoffs, families)


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
),
audit AS (
    INSERT INTO auth_events (user_id, event, kind, address, detail)
    VALUES (%(user_id)s, 'sign_in_failed', 'password', %(address)s, %(detail)s::jsonb)
)
SELECT count(*) FROM counted
"""


# Count one attempt (successful or not) against a rate key; the count in the current window and its age.
COUNT_ATTEMPT = """
INSERT INTO throttle AS t (key, hits, max_hits, window_start) VALUES (%(key)s, 1, 0, now())
ON CONFLICT (key) DO UPDATE SET
    hits = CASE WHEN t.window_start < now() - make_interval(secs => %(window)s) THEN 1 ELSE t.hits + 1 END,
    window_start = CASE WHEN t.window_start < now() - make_interval(secs => %(window)s)
                        THEN now() ELSE t.window_start END
RETURNING hits, extract(epoch FROM now() - window_start)::float8
"""


async def record_failures(
    db: Database,
    limits: dict[str, int],
    *,
    window: int,
    lockout: int,
    user_id: int | None,
    address: str,
    reason: str,
) -> None:
    """Count a failed password sign-in against each key (keys reaching their limit get locked) and audit it."""
    async with db.cursor() as cur:
        await cur.execute(
            RECORD_FAILURE,
            {
                "keys": list(limits),
                "limits": list(limits.values()),
                "window": window,
                "lockout": lockout,
                "user_id": user_id,
                "address": address,
                "detail": orjson.dumps({"reason": reason}).decode(),
            },
        )


async def count_attempt(db: Database, key: str, *, window: int) -> tuple[int, float]:
    """Count one attempt against `key`; returns the attempts in this window and the window's age in seconds."""
    async with db.cursor() as cur:
        await cur.execute(COUNT_ATTEMPT, {"key": key, "window": window})
        hits, age = await cur.fetchone()
    return int(hits), float(age)


# ---- completing a password sign-in, refresh tokens ---------------------------------------------------------------

# Everything a successful password sign-in writes, in one round trip.
COMPLETE_LOGIN = """
WITH cleared AS (DELETE FROM throttle WHERE key = %(throttle_key)s),
rehashed AS (
    UPDATE users SET password_hash = %(new_hash)s WHERE id = %(user_id)s AND %(new_hash)s::text IS NOT NULL
),
refresh AS (
    INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)
    VALUES (%(refresh_hash)s, %(family_id)s, %(user_id)s, now() + make_interval(secs => %(refresh_lifetime)s))
),
audit AS (
    INSERT INTO auth_events (user_id, event, kind, address) VALUES (%(user_id)s, 'sign_in', 'password', %(address)s)
)
SELECT 1
"""

SELECT_REFRESH_FOR_UPDATE = """
SELECT tokens.family_id::text, tokens.user_id, users.username, users.role,
       tokens.expires_at > now() AND tokens.revoked_at IS NULL,
       extract(epoch FROM now() - tokens.rotated_at)::float8, tokens.rotated_by
FROM refresh_tokens AS tokens JOIN users ON users.id = tokens.user_id
WHERE tokens.token_hash = %s
FOR UPDATE OF tokens
"""

ROTATE_REFRESH = """
WITH rotated AS (
    UPDATE refresh_tokens SET rotated_at = now(), rotated_by = %(address)s WHERE token_hash = %(token_hash)s
),
audit AS (
    INSERT INTO auth_events (user_id, event, kind, address) VALUES (%(user_id)s, 'refresh', NULL, %(address)s)
)
INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)
VALUES (%(successor_hash)s, %(family_id)s::uuid, %(user_id)s, now() + make_interval(secs => %(lifetime)s))
"""

SUCCESSOR_IS_CURRENT = """
SELECT 1 FROM refresh_tokens
WHERE token_hash = %s AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > now()
"""

REVOKE_FAMILY = """
WITH revoked AS (
    UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = %(family_id)s::uuid AND revoked_at IS NULL
),
audit AS (
    INSERT INTO auth_events (user_id, event, kind, address, detail)
    VALUES (%(user_id)s, 'refresh_reuse', NULL, %(address)s, %(detail)s::jsonb)
)
SELECT pg_notify('chatterd_events', %(notice)s)
"""


async def complete_login(
    db: Database, *, user_id: int, throttle_key: str, new_hash: str | None, refresh: NewRefreshToken, address: str
) -> None:
    """Record a successful password sign-in: clear the account's failures, rehash, open a refresh family, audit."""
    async with db.cursor() as cur:
        await cur.execute(
            COMPLETE_LOGIN,
            {
                "user_id": user_id,
                "throttle_key": throttle_key,
                "new_hash": new_hash,
                "refresh_hash": refresh.token_hash,
                "family_id": refresh.family_id,
                "refresh_lifetime": refresh.lifetime,
                "address": address,
            },
        )


@dataclass(frozen=True, slots=True)
class Refreshed:
    """The outcome of presenting a refresh token: the user and family when it may be rotated, else why not."""

    user: User | None
    family_id: str | None
    reuse_detected: bool = False


async def rotate_refresh_token(
    db: Database,
    *,
    token_hash: bytes,
    successor_hash: bytes,
    lifetime: int,
    grace: float,
    address: str,
    notice_for: Callable[[str], str],
) -> Refreshed:
    """Rotate a refresh token to its successor; a token already rotated revokes its family, but within `grace`
    seconds of the rotation and from the same address it yields the same successor again (racing refreshes)."""
    async with db.cursor() as cur:
        async with cur.transaction():
            await cur.execute(SELECT_REFRESH_FOR_UPDATE, (token_hash,))
            row = await cur.fetchone()
            if row is None:
                return Refreshed(None, None)
            family_id, user_id, username, role, usable, rotated_age, rotated_by = row
            user = User(user_id, username, role)
            if not usable:
                return Refreshed(None, None)
            if rotated_age is None:
                await cur.execute(
                    ROTATE_REFRESH,
                    {
                        "token_hash": token_hash,
                        "successor_hash": successor_hash,
                        "family_id": family_id,
                        "user_id": user_id,
                        "lifetime": lifetime,
                        "address": address,
                    },
                )
                return Refreshed(user, family_id)
            if rotated_age <= grace and rotated_by == address:
                await cur.execute(SUCCESSOR_IS_CURRENT, (successor_hash,))
                if await cur.fetchone() is not None:
                    return Refreshed(user, family_id)
            await cur.execute(
                REVOKE_FAMILY,
                {
                    "family_id": family_id,
                    "user_id": user_id,
                    "address": address,
                    "detail": orjson.dumps({"family": family_id}).decode(),
                    "notice": notice_for(family_id),
                },
            )
            return Refreshed(None, family_id, reuse_detected=True)


# ---- TOTP recovery codes and switching TOTP off -------------------------------------------------------------------

REPLACE_RECOVERY_CODES = """
WITH gone AS (DELETE FROM recovery_codes WHERE user_id = %(user_id)s)
INSERT INTO recovery_codes (user_id, code_hash) SELECT %(user_id)s, unnest(%(hashes)s::bytea[])
"""

USE_RECOVERY_CODE = """
UPDATE recovery_codes SET used_at = now() WHERE user_id = %s AND code_hash = %s AND used_at IS NULL RETURNING 1
"""

DISABLE_TOTP = """
WITH codes AS (DELETE FROM recovery_codes WHERE user_id = %(user_id)s),
audit AS (
    INSERT INTO auth_events (user_id, event, kind, address) VALUES (%(user_id)s, 'totp_off', NULL, %(address)s)
)
UPDATE users SET totp_enabled = false, totp_secret = NULL, totp_last_step = NULL WHERE id = %(user_id)s
"""


async def replace_recovery_codes(db: Database, user_id: int, code_hashes: list[bytes]) -> None:
    """Store a new set of recovery codes (hashed), dropping the old ones."""
    async with db.cursor() as cur:
        await cur.execute(REPLACE_RECOVERY_CODES, {"user_id": user_id, "hashes": code_hashes})


async def use_recovery_code(db: Database, user_id: int, code_hash: bytes) -> bool:
    """Spend a recovery code; False when it is unknown or already used."""
    async with db.cursor() as cur:
        await cur.execute(USE_RECOVERY_CODE, (user_id, code_hash))
        return await cur.fetchone() is not None


async def disable_totp(db: Database, user_id: int, address: str) -> None:
    """Turn TOTP off and drop the recovery codes."""
    async with db.cursor() as cur:
        await cur.execute(DISABLE_TOTP, {"user_id": user_id, "address": address})


# ---- the audit log ------------------------------------------------------------------------------------------------

INSERT_EVENT = """
INSERT INTO auth_events (user_id, event, kind, address, detail) VALUES (%s, %s, %s, %s, %s::jsonb)
"""

SELECT_EVENTS = """
SELECT id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), user_id, event, kind, address, detail::text
FROM auth_events
WHERE (%(before)s::bigint IS NULL OR id < %(before)s) AND (%(user_id)s::bigint IS NULL OR user_id = %(user_id)s)
ORDER BY id DESC
LIMIT %(limit)s
"""


async def record_event(
    db: Database,
    *,
    user_id: int | None,
    event: str,
    kind: str | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one entry to the audit log."""
    async with db.cursor() as cur:
        await cur.execute(INSERT_EVENT, (user_id, event, kind, address, orjson.dumps(detail or {}).decode()))


async def list_events(db: Database, *, limit: int, before: int | None, user_id: int | None) -> list[dict[str, Any]]:
    """Audit entries, newest first."""
    async with db.cursor() as cur:
        await cur.execute(SELECT_EVENTS, {"limit": limit, "before": before, "user_id": user_id})
        rows = await cur.fetchall()
    return [
        {
            "id": row[0],
            "at": row[1],
            "user_id": row[2],
            "event": row[3],
            "kind": row[4],
            "address": row[5],
            "detail": orjson.loads(row[6]),
        }
        for row in rows
    ]
