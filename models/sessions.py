"""Sign-in sessions: chatterIDs, refresh-token families, completing a password sign-in, and revocations."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from db.pool import Database
from mail.messages import Letter
from models.fragments import AUDIT_INSERT, NOTIFY, PASSWORD_PROVED
from models.mail import NOTICE_INSERT, letter_params
from models.records import NewRefreshToken, Refreshed, Revocations, User

# Only the user's id: who they are now (name, role, ban) is the Directory's.
SELECT_CHATTER_ID_USER = """
SELECT user_id, extract(epoch FROM expires_at)::float8 FROM chatter_sessions WHERE id_hash = %s AND expires_at > now()
"""

# Everything a successful password sign-in writes, in one round trip.
COMPLETE_LOGIN = f"""
WITH {PASSWORD_PROVED},
rehashed AS (
    UPDATE users SET password_hash = %(new_hash)s WHERE id = %(user_id)s AND %(new_hash)s::text IS NOT NULL
),
refresh AS (
    INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)
    VALUES (%(refresh_hash)s, %(family_id)s, %(user_id)s, now() + make_interval(secs => %(refresh_lifetime)s))
),
audit AS ({AUDIT_INSERT} VALUES (%(user_id)s, 'sign_in', 'password', %(address)s, '{{}}'))
SELECT 1
"""

# Refreshes and revocations of one user meet at the users row, always taken first: a refresh holds it FOR SHARE
# (refreshes do not wait for each other), a revocation FOR NO KEY UPDATE. So a revocation waits for the refreshes in
# flight and then sees what they wrote, and a refresh that comes later waits for the revocation and then finds its
# token revoked. Whatever the timing, once a revocation has answered no refresh of what it revoked succeeds.
LOCK_USER_OF_REFRESH = """
SELECT id FROM users WHERE id = (SELECT user_id FROM refresh_tokens WHERE token_hash = %s) FOR SHARE
"""
LOCK_USER_FOR_REVOCATION = "SELECT id FROM users WHERE id = %(user_id)s FOR NO KEY UPDATE"

SELECT_REFRESH_FOR_UPDATE = """
SELECT tokens.family_id::text, tokens.user_id, users.username, users.role,
       tokens.expires_at > now() AND tokens.revoked_at IS NULL,
       extract(epoch FROM now() - tokens.rotated_at)::float8, tokens.rotated_by
FROM refresh_tokens AS tokens JOIN users ON users.id = tokens.user_id
WHERE tokens.token_hash = %s
FOR UPDATE OF tokens
"""

ROTATE_REFRESH = f"""
WITH rotated AS (
    UPDATE refresh_tokens SET rotated_at = now(), rotated_by = %(address)s WHERE token_hash = %(token_hash)s
),
audit AS ({AUDIT_INSERT} VALUES (%(user_id)s, 'refresh', NULL, %(address)s, '{{}}'))
INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)
VALUES (%(successor_hash)s, %(family_id)s::uuid, %(user_id)s, now() + make_interval(secs => %(lifetime)s))
"""

SUCCESSOR_IS_CURRENT = """
SELECT 1 FROM refresh_tokens
WHERE token_hash = %s AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > now()
"""

REVOKE_FAMILY = f"""
WITH revoked AS (
    UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = %(family_id)s::uuid AND revoked_at IS NULL
),
audit AS ({AUDIT_INSERT} VALUES (%(user_id)s, 'refresh_reuse', NULL, %(address)s, %(detail)s::jsonb)),
notice AS ({NOTICE_INSERT})
SELECT {NOTIFY}
"""

# The revocation is stored and announced to every listening worker in one transaction.
REVOKE_TOKEN = f"""
WITH revoked AS (
    INSERT INTO revoked_tokens (jti, expires_at) VALUES (%(jti)s, to_timestamp(%(expires_at)s))
    ON CONFLICT (jti) DO NOTHING
),
family AS (
    UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = %(family_id)s::uuid AND revoked_at IS NULL
),
audit AS ({AUDIT_INSERT} VALUES (%(user_id)s, 'logout', 'jwt', %(address)s, '{{}}')),
purged AS (
    DELETE FROM revoked_tokens WHERE jti IN (
        SELECT jti FROM revoked_tokens WHERE expires_at < now() ORDER BY expires_at LIMIT 50
    )
)
SELECT {NOTIFY}
"""

END_CHATTER_ID = f"""
WITH ended AS (DELETE FROM chatter_sessions WHERE id_hash = %(id_hash)s),
audit AS ({AUDIT_INSERT} VALUES (%(user_id)s, 'logout', 'chatterid', %(address)s, '{{}}'))
SELECT {NOTIFY}
"""

# The users row goes first and alone: its lock waits for any refresh rotating now (which holds the row FOR SHARE),
# and the statements after it see what that rotation wrote. Its trigger announces the change to every worker.
END_ALL_SESSIONS = [
    "UPDATE users SET tokens_valid_after = greatest(tokens_valid_after, %(cutoff)s) WHERE id = %(user_id)s",
    "DELETE FROM chatter_sessions WHERE user_id = %(user_id)s",
    "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = %(user_id)s AND revoked_at IS NULL",
    f"{AUDIT_INSERT} VALUES (%(user_id)s, 'logout_everywhere', NULL, %(address)s, %(detail)s::jsonb)",
]

SELECT_REVOKED_TOKENS = """
SELECT jti, extract(epoch FROM expires_at)::float8 FROM revoked_tokens WHERE expires_at > now()
"""

SELECT_REVOKED_FAMILIES = """
SELECT family_id::text, extract(epoch FROM max(revoked_at))::float8 FROM refresh_tokens
WHERE revoked_at > to_timestamp(%s) GROUP BY family_id
"""

# What a worker asks while it cannot follow revocations: this JWT logged out, or its refresh family revoked.
SELECT_TOKEN_REVOKED = """
SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = %(jti)s)
    OR EXISTS (SELECT 1 FROM refresh_tokens WHERE family_id = %(family_id)s::uuid AND revoked_at IS NOT NULL)
"""


async def chatter_id_user(db: Database, chatter_id_hash: bytes) -> tuple[int, float] | None:
    """The id of the user a live chatterID belongs to and when it expires (epoch seconds), or None."""
    row = await db.fetch_one(SELECT_CHATTER_ID_USER, (chatter_id_hash,))
    return None if row is None else (int(row[0]), float(row[1]))


async def complete_login(
    db: Database,
    *,
    user_id: int,
    throttle_key: str,
    address_key: str,
    new_hash: str | None,
    refresh: NewRefreshToken,
    address: str,
) -> None:
    """Record a successful password sign-in: clear the account's failures, rehash, open a refresh family, audit."""
    await db.execute(
        COMPLETE_LOGIN,
        {
            "user_id": user_id,
            "throttle_key": throttle_key,
            "address_key": address_key,
            "new_hash": new_hash,
            "refresh_hash": refresh.token_hash,
            "family_id": refresh.family_id,
            "refresh_lifetime": refresh.lifetime,
            "address": address,
        },
    )


async def rotate_refresh_token(
    db: Database,
    *,
    token_hash: bytes,
    successor_hash: bytes,
    lifetime: int,
    grace: float,
    address: str,
    notice_for: Callable[[str], str],
    reuse_notice: Letter,
) -> Refreshed:
    """Rotate a refresh token to its successor; a token already rotated revokes its family (and `reuse_notice` goes
    to the user), but within `grace` seconds of the rotation and from the same address it yields the same successor
    again (racing refreshes)."""
    async with db.cursor() as cur:
        async with cur.transaction():
            await cur.execute(LOCK_USER_OF_REFRESH, (token_hash,))
            if await cur.fetchone() is None:
                return Refreshed(None, None)
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
    # Reuse: revoked in a transaction of its own, which takes the users row as every revocation does.
    params = {
        "family_id": family_id,
        "user_id": user_id,
        "address": address,
        "detail": orjson.dumps({"family": family_id}).decode(),
        "notice": notice_for(family_id),
        **letter_params(reuse_notice),
    }
    await _revoke(db, REVOKE_FAMILY, params)
    return Refreshed(None, family_id, reuse_detected=True)


async def _revoke(db: Database, statement: str, params: dict[str, object]) -> None:
    """Run a revocation after taking its user's row, in one transaction (see LOCK_USER_FOR_REVOCATION)."""
    async with db.cursor() as cur, cur.transaction():
        await cur.execute(LOCK_USER_FOR_REVOCATION, params)
        await cur.execute(statement, params)


async def token_revoked(db: Database, *, jti: str, family_id: str | None) -> bool:
    """True when this JWT was logged out or its refresh family revoked."""
    params = {"jti": jti, "family_id": family_id}
    (revoked,) = await db.fetch_one(SELECT_TOKEN_REVOKED, params)
    return bool(revoked)


async def revoke_token(
    db: Database, *, jti: str, expires_at: float, family_id: str | None, user_id: int, address: str, notice: str
) -> None:
    """Refuse a JWT (and the refresh-token family it came from) from now on, everywhere."""
    params = {
        "jti": jti,
        "expires_at": expires_at,
        "family_id": family_id,
        "user_id": user_id,
        "address": address,
        "notice": notice,
    }
    await _revoke(db, REVOKE_TOKEN, params)


async def end_chatter_id(db: Database, *, chatter_id_hash: bytes, user_id: int, address: str, notice: str) -> None:
    """Refuse a chatterID from now on, everywhere."""
    params = {"id_hash": chatter_id_hash, "user_id": user_id, "address": address, "notice": notice}
    await db.execute(END_CHATTER_ID, params)


async def end_all_sessions(db: Database, *, user_id: int, cutoff: float, address: str, reason: str) -> None:
    """Log a user out everywhere: chatterIDs, refresh tokens, and every JWT issued before `cutoff`."""
    params = {
        "user_id": user_id,
        "cutoff": cutoff,
        "address": address,
        "detail": orjson.dumps({"reason": reason}).decode(),
    }
    async with db.cursor() as cur, cur.transaction():
        for statement in END_ALL_SESSIONS:
            await cur.execute(statement, params)


async def load_revocations(db: Database, *, since: float) -> Revocations:
    """Revoked JWT ids (with their expiry), and refresh families revoked since `since`."""
    async with db.cursor() as cur:
        await cur.execute(SELECT_REVOKED_TOKENS)
        jtis = {jti: expires for jti, expires in await cur.fetchall()}
        await cur.execute(SELECT_REVOKED_FAMILIES, (since,))
        families = {family: at for family, at in await cur.fetchall()}
    return Revocations(jtis, families)
