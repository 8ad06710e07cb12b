"""Users: signing in by Google subject or by password, roles, TOTP secrets and recovery codes."""

from __future__ import annotations

import psycopg2.errors

from auth.usernames import username_key
from db.pool import Cursor, Database
from db.routines import Routine
from mail.messages import Letter
from models.fragments import (
    AUDIT_INSERT,
    CHATTER_ID_VALUES,
    PURGE_SESSIONS,
    RATE_ATTEMPT,
    SESSION_INSERT,
    SESSION_VALUES,
    SESSION_WITH_CHATTER_ID_INSERT,
    SIGNED_IN_DEVICE,
    USER_IN_GOOD_STANDING,
)
from models.mail import NOTICE_INSERT, letter_params
from models.records import (
    Account,
    AccountSecurity,
    NewRefreshToken,
    NewSession,
    NotAdmitted,
    RateLimited,
    SessionPolicy,
    User,
    UsernameTaken,
)
from models.sessions import session_detail, session_params

# The user a Google subject signs in as, found through its identity and locked FOR SHARE until the sign-in commits: a
# ban or deletion of that user waits for the sign-in in flight (and then ends the session it opened), and a sign-in
# arriving during a ban waits for it and reads the banned row. A subject nobody has gets a new user whose id is drawn
# first, so that the identity is claimed before the user exists: of two first sign-ins at once, one makes the user
# and the other finds it on a second try. Never by email: only the subject names the user.
GOOGLE_ACCOUNT = f"""
existing AS (
    SELECT users.id, users.username, users.role, users.password_hash IS NOT NULL AS has_password,
           {USER_IN_GOOD_STANDING} AS admitted, users.banned_until > now() AS banned, identity.email AS identity_email
    FROM google_identities AS identity JOIN users ON users.id = identity.user_id
    WHERE identity.sub = %(sub)s
    FOR SHARE OF users
),
new_user AS (
    SELECT nextval(pg_get_serial_sequence('users', 'id')) AS id FROM allowed WHERE NOT EXISTS (SELECT 1 FROM existing)
),
linked AS (
    INSERT INTO google_identities (sub, user_id, email) SELECT %(sub)s, id, %(email)s FROM new_user
    ON CONFLICT (sub) DO NOTHING
    RETURNING user_id
),
inserted AS (
    INSERT INTO users (id, username, email) OVERRIDING SYSTEM VALUE SELECT user_id, %(username)s, %(email)s FROM linked
    RETURNING id, username, role
),
-- Only a changed name is written, and only while the user has no password (whose name is its login name): a returning
-- user's sign-in writes nothing to its row. Google's email claim is the address of a new user only (unverified): after
-- that the address is the user's own, set and verified at /email.
renamed AS (
    UPDATE users SET username = %(username)s
    FROM existing, allowed
    WHERE users.id = existing.id AND existing.admitted AND NOT existing.has_password
      AND existing.username IS DISTINCT FROM %(username)s
    RETURNING users.id, users.username, users.role
),
identity_email AS (
    UPDATE google_identities SET email = %(email)s
    FROM existing, allowed
    WHERE google_identities.sub = %(sub)s AND existing.identity_email IS DISTINCT FROM %(email)s
),
account AS (
    SELECT id, username, role, true AS admitted, false AS banned FROM inserted
    UNION ALL SELECT id, username, role, true, false FROM renamed
    UNION ALL SELECT existing.id, existing.username, existing.role, existing.admitted, coalesce(existing.banned, false)
              FROM existing, allowed WHERE NOT EXISTS (SELECT 1 FROM renamed)
),
audit AS (
    {AUDIT_INSERT}
    SELECT id, CASE WHEN admitted THEN 'sign_in' ELSE 'sign_in_failed' END, %(kind)s, %(address)s,
           CASE WHEN admitted THEN %(detail)s::jsonb ELSE jsonb_build_object('reason', 'banned or deleted') END
    FROM account
)"""

# One round trip: the user of a Google subject (whose name follows Google's), plus a session with its chatterID and
# refresh token. The per-address rate count is part of the same statement: nothing is written past the limit. Each
# sign-in also removes a few expired sessions (with their chatterIDs), so no full-table DELETE is needed.
SIGN_IN_GOOGLE_USER = f"""
WITH {RATE_ATTEMPT},
{GOOGLE_ACCOUNT},
opened AS (
    {SESSION_WITH_CHATTER_ID_INSERT}
    SELECT {SESSION_VALUES.format(user_id="id")}, {CHATTER_ID_VALUES} FROM account WHERE admitted
    RETURNING id, expires_at
),
refresh AS (
    INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
    SELECT %(refresh_hash)s, id, least(expires_at, now() + make_interval(secs => %(refresh_lifetime)s)) FROM opened
),
{SIGNED_IN_DEVICE.format(user_id="id", source="FROM account WHERE admitted")},
{PURGE_SESSIONS}
SELECT account.id, account.username, account.role, account.admitted, account.banned,
       (SELECT age FROM attempt), EXISTS (SELECT 1 FROM allowed)
FROM (SELECT 1) AS one LEFT JOIN account ON true
"""

# Called a thousand times a second in bursts of sign-ins, and costlier to plan than to run: a function (db/routines.py).
SIGN_IN_GOOGLE = Routine(
    "sign_in_google",
    SIGN_IN_GOOGLE_USER,
    arguments=(
        ("rate_key", "text"),
        ("limit", "integer"),
        ("window", "integer"),
        ("sub", "text"),
        ("email", "text"),
        ("username", "text"),
        ("kind", "text"),
        ("address", "text"),
        ("detail", "text"),
        ("session_id", "text"),
        ("session_kind", "text"),
        ("session_ip", "text"),
        ("session_user_agent", "text"),
        ("session_device", "text"),
        ("session_max_age", "integer"),
        ("id_hash", "bytea"),
        ("lifetime", "integer"),
        ("refresh_hash", "bytea"),
        ("refresh_lifetime", "integer"),
        ("device_family", "text"),
        ("device_network", "text"),
        ("device_letter_kind", "text"),
        ("device_letter_sealed", "bytea"),
        ("idle_timeout", "integer"),
        ("keep_ended", "integer"),
    ),
    returns="id bigint, username text, role text, admitted boolean, banned boolean, window_age float8, allowed boolean",
)

# Web sign-in (the redirect flow) opens a session whose only credential is the JWT in the login cookie.
UPSERT_GOOGLE_USER = f"""
WITH allowed AS (SELECT 1),
{GOOGLE_ACCOUNT},
opened AS ({SESSION_INSERT} SELECT {SESSION_VALUES.format(user_id="id")} FROM account WHERE admitted),
{SIGNED_IN_DEVICE.format(user_id="id", source="FROM account WHERE admitted")},
{PURGE_SESSIONS}
SELECT account.id, account.username, account.role, account.admitted, account.banned
FROM (SELECT 1) AS one LEFT JOIN account ON true
"""

# The name as typed is kept for display; uniqueness is on its key (see sql/0005_usernames.sql for the clash column).
INSERT_PASSWORD_USER = """
INSERT INTO users (username, username_key, password_hash, email)
VALUES (%(username)s, %(key)s, %(password_hash)s, %(email)s)
ON CONFLICT (username_key, username_key_clash) WHERE password_hash IS NOT NULL DO NOTHING
RETURNING id
"""

# The id of the password account a name means. Only accounts made before keys existed can share one; of those, the
# one spelled exactly as given wins, else the key's owner (clash 0), so each of them can still sign in.
ACCOUNT_NAMED = """
SELECT id FROM users WHERE username_key = %(key)s AND password_hash IS NOT NULL
ORDER BY username = %(username)s DESC, username_key_clash LIMIT 1
"""

# The account and the lock on its sign-ins in one round trip; one row even for an unknown username.
SELECT_ACCOUNT_FOR_LOGIN = f"""
SELECT users.id, users.username, users.role, users.password_hash,
       users.totp_secret, users.totp_enabled, users.totp_last_step, coalesce(users.banned_until > now(), false)
FROM (SELECT 1) AS one
LEFT JOIN users ON users.id = ({ACCOUNT_NAMED})
"""

SET_ROLE = f"UPDATE users SET role = %(role)s WHERE id = ({ACCOUNT_NAMED}) RETURNING id"

SELECT_USER_BY_NAME = f"SELECT id, username, role FROM users WHERE id = ({ACCOUNT_NAMED})"

SELECT_KEYLESS_USERS = """
SELECT id, username FROM users WHERE username_key IS NULL AND password_hash IS NOT NULL AND id > %s ORDER BY id LIMIT %s
"""

# Keys computed in Python for a batch of rows that have none. A key nobody holds yet goes to the oldest row wanting
# it; a row whose key is already held, or wanted by an older row of the batch, keeps it under its own id as clash.
FILL_USERNAME_KEYS = """
WITH batch (id, key) AS (SELECT * FROM unnest(%(ids)s::bigint[], %(keys)s::text[])),
ranked AS (
    SELECT batch.id, batch.key,
           EXISTS (SELECT 1 FROM users AS owner
                   WHERE owner.username_key = batch.key AND owner.password_hash IS NOT NULL
                     AND owner.username_key_clash = 0)
           OR row_number() OVER (PARTITION BY batch.key ORDER BY batch.id) > 1 AS clashes
    FROM batch
)
UPDATE users SET username_key = ranked.key, username_key_clash = CASE WHEN ranked.clashes THEN users.id ELSE 0 END
FROM ranked
WHERE users.id = ranked.id AND users.username_key IS NULL AND users.password_hash IS NOT NULL
"""
FILL_BATCH = 1000

SET_TOTP_SECRET = "UPDATE users SET totp_secret = %s WHERE id = %s AND NOT totp_enabled AND password_hash IS NOT NULL"

SELECT_TOTP = "SELECT totp_secret, totp_enabled, totp_last_step FROM users WHERE id = %s"

# What the page shows of an account: whether it has a password (TOTP guards password sign-ins only), its TOTP, and how
# the caller's session signed in (NULL for a credential of no session, or of another user's).
SELECT_ACCOUNT_SECURITY = """
SELECT users.password_hash IS NOT NULL, users.totp_enabled,
       (SELECT count(*) FROM recovery_codes WHERE recovery_codes.user_id = users.id AND recovery_codes.used_at IS NULL),
       (SELECT sessions.kind FROM sessions WHERE sessions.id = %(session_id)s AND sessions.user_id = users.id)
FROM users WHERE users.id = %(user_id)s
"""

# Only moves forward: of two racing uses of one code, one wins.
USE_TOTP_STEP = """
UPDATE users SET totp_enabled = true, totp_last_step = %(step)s
WHERE id = %(user_id)s AND totp_secret = %(secret)s AND (totp_last_step IS NULL OR totp_last_step < %(step)s)
"""

REPLACE_RECOVERY_CODES = """
WITH gone AS (DELETE FROM recovery_codes WHERE user_id = %(user_id)s)
INSERT INTO recovery_codes (user_id, code_hash) SELECT %(user_id)s, unnest(%(hashes)s::bytea[])
"""

USE_RECOVERY_CODE = """
UPDATE recovery_codes SET used_at = now() WHERE user_id = %s AND code_hash = %s AND used_at IS NULL RETURNING 1
"""

# Turning TOTP on is the first use of a code from the new secret; the notice goes only with the change itself.
ENABLE_TOTP = f"""
WITH enabled AS (
    UPDATE users SET totp_enabled = true, totp_last_step = %(step)s
    WHERE id = %(user_id)s AND totp_secret = %(secret)s AND NOT totp_enabled
      AND (totp_last_step IS NULL OR totp_last_step < %(step)s)
    RETURNING id
),
audit AS ({AUDIT_INSERT} SELECT id, 'totp_on', NULL, %(address)s, '{{}}' FROM enabled),
notice AS ({NOTICE_INSERT} AND EXISTS (SELECT 1 FROM enabled))
SELECT count(*) FROM enabled
"""

DISABLE_TOTP = f"""
WITH codes AS (DELETE FROM recovery_codes WHERE user_id = %(user_id)s),
cleared AS (DELETE FROM throttle WHERE key = %(throttle_key)s),
audit AS ({AUDIT_INSERT} VALUES (%(user_id)s, 'totp_off', NULL, %(address)s, '{{}}')),
notice AS ({NOTICE_INSERT})
UPDATE users SET totp_enabled = false, totp_secret = NULL, totp_last_step = NULL WHERE id = %(user_id)s
"""


async def sign_in_google_user(
    db: Database,
    *,
    sub: str,
    username: str,
    email: str | None,
    chatter_id_hash: bytes,
    lifetime: int,
    session: NewSession,
    policy: SessionPolicy,
    refresh: NewRefreshToken,
    address: str,
    rate_key: str,
    rate_limit: int,
    rate_window: int,
) -> User:
    """Find or create the user for a Google subject; open a session with a chatterID and a refresh token.

    RateLimited (with the seconds to wait) when `rate_key` is past `rate_limit` attempts in `rate_window` seconds;
    a limit of 0 counts nothing.
    """
    params = {
        "username": username,
        "sub": sub,
        "email": email,
        "id_hash": chatter_id_hash,
        "lifetime": lifetime,
        "refresh_hash": refresh.token_hash,
        "refresh_lifetime": refresh.lifetime,
        "address": address,
        "rate_key": rate_key,
        "limit": rate_limit,
        "window": rate_window,
        "detail": session_detail(session),
        "kind": session.kind,
        **session_params(session, policy),
    }
    # A first sign-in racing another for the same subject finds the row only on a second try.
    for _ in range(2):
        user_id, name, role, admitted, banned, window_age, allowed = await db.fetch_one(SIGN_IN_GOOGLE.call, params)
        if not allowed:
            raise RateLimited(rate_window - (window_age or 0.0))
        if user_id is not None:
            return _admitted(User(user_id, name, role), admitted, banned)
    raise RuntimeError(f"could not find or create the user for Google subject {sub!r}")


def _admitted(user: User, admitted: bool, banned: bool) -> User:
    """The user a sign-in opened a session for; NotAdmitted when it opened none (banned or deleted)."""
    if not admitted:
        raise NotAdmitted(banned=banned)
    return user


async def upsert_google_user(
    db: Database,
    *,
    sub: str,
    username: str,
    email: str | None,
    session: NewSession,
    policy: SessionPolicy,
    address: str,
) -> User:
    """Find or create the user for a Google subject (its name following Google's while it has no password) and open a
    session; NotAdmitted when the user is banned or deleted."""
    params = {
        "username": username,
        "sub": sub,
        "email": email,
        "address": address,
        "detail": session_detail(session),
        "kind": session.kind,
        **session_params(session, policy),
    }
    for _ in range(2):  # as for sign_in_google_user
        user_id, name, role, admitted, banned = await db.fetch_one(UPSERT_GOOGLE_USER, params)
        if user_id is not None:
            return _admitted(User(user_id, name, role), admitted, banned)
    raise RuntimeError(f"could not find or create the user for Google subject {sub!r}")


async def create_password_user(db: Database, username: str, password_hash: str) -> User:
    """Create a password account; UsernameTaken when a name with the same key (NFKC, case folded) is in use."""
    params = {"username": username, "key": username_key(username), "password_hash": password_hash, "email": None}
    row = await db.fetch_one(INSERT_PASSWORD_USER, params)
    if row is None:
        raise UsernameTaken(username)
    return User(row[0], username, "user")


async def account_for_login(db: Database, username: str) -> Account:
    """The password account `username` means (user None if there is none)."""
    row = await db.fetch_one(SELECT_ACCOUNT_FOR_LOGIN, {"key": username_key(username), "username": username})
    user = User(row[0], row[1], row[2]) if row[0] is not None else None
    return Account(user, row[3], row[4], bool(row[5]), row[6], bool(row[7]))


async def set_role(db: Database, username: str, role: str) -> int | None:
    """Give a password account a role; its id, or None when there is no such account."""
    row = await db.fetch_one(SET_ROLE, {"role": role, "key": username_key(username), "username": username})
    return row[0] if row else None


async def user_by_name(db: Database, username: str) -> User | None:
    """The password account `username` means, if any."""
    row = await db.fetch_one(SELECT_USER_BY_NAME, {"key": username_key(username), "username": username})
    return User(row[0], row[1], row[2]) if row else None


async def fill_username_keys(cur: Cursor) -> int:
    """Store the key of every password account that has none; the number of rows filled."""
    filled, after = 0, 0
    while True:
        await cur.execute(SELECT_KEYLESS_USERS, (after, FILL_BATCH))
        rows = await cur.fetchall()
        if not rows:
            return filled
        params = {"ids": [row[0] for row in rows], "keys": [username_key(row[1]) for row in rows]}
        # A registration running meanwhile may take a key between this statement's check and its write; the retry
        # sees that account and marks the row as a clash instead.
        for attempt in range(3):
            try:
                await cur.execute(FILL_USERNAME_KEYS, params)
                break
            except psycopg2.errors.UniqueViolation:
                if attempt == 2:
                    raise
        filled += cur.rowcount
        after = rows[-1][0]


async def set_totp_secret(db: Database, user_id: int, secret: str) -> bool:
    """Store a new TOTP secret, not yet enabled; False if TOTP is already on or the account has no password."""
    return await db.execute(SET_TOTP_SECRET, (secret, user_id)) > 0


async def totp_state(db: Database, user_id: int) -> tuple[str | None, bool, int | None]:
    """The user's TOTP secret, whether it is enabled, and the last time step used."""
    row = await db.fetch_one(SELECT_TOTP, (user_id,))
    return (row[0], bool(row[1]), row[2]) if row else (None, False, None)


async def account_security(db: Database, user_id: int, session_id: str | None) -> AccountSecurity | None:
    """The user's password and TOTP state and the kind of their session `session_id`; None when there is no user."""
    row = await db.fetch_one(SELECT_ACCOUNT_SECURITY, {"user_id": user_id, "session_id": session_id})
    if row is None:
        return None
    return AccountSecurity(has_password=row[0], totp_enabled=row[1], recovery_codes_left=row[2], session_kind=row[3])


async def use_totp_step(db: Database, user_id: int, secret: str, step: int) -> bool:
    """Record a code's time step as used (and TOTP as enabled); False if that step or a later one was used."""
    return await db.execute(USE_TOTP_STEP, {"user_id": user_id, "secret": secret, "step": step}) > 0


async def replace_recovery_codes(db: Database, user_id: int, code_hashes: list[bytes]) -> None:
    """Store a new set of recovery codes (hashed), dropping the old ones."""
    await db.execute(REPLACE_RECOVERY_CODES, {"user_id": user_id, "hashes": code_hashes})


async def use_recovery_code(db: Database, user_id: int, code_hash: bytes) -> bool:
    """Spend a recovery code; False when it is unknown or already used."""
    return await db.fetch_one(USE_RECOVERY_CODE, (user_id, code_hash)) is not None


async def enable_totp(db: Database, *, user_id: int, secret: str, step: int, address: str, notice: Letter) -> bool:
    """Turn TOTP on with a code's time step (audited, and the user told); False if it was on, or the step used."""
    params = {"user_id": user_id, "secret": secret, "step": step, "address": address, **letter_params(notice)}
    (enabled,) = await db.fetch_one(ENABLE_TOTP, params)
    return bool(enabled)


async def disable_totp(db: Database, user_id: int, address: str, throttle_key: str, notice: Letter) -> None:
    """Turn TOTP off, drop the recovery codes and clear the counter of attempts at them (audited, and the user
    told)."""
    params = {"user_id": user_id, "address": address, "throttle_key": throttle_key, **letter_params(notice)}
    await db.execute(DISABLE_TOTP, params)
