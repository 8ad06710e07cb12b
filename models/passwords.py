"""Password recovery by emailed code, and password changes; each written with the notice it causes."""

from __future__ import annotations

from auth.usernames import username_key
from db.pool import Database
from mail.messages import CODE_MINUTES, Letter
from models.accounts import ACCOUNT_NAMED
from models.email import CODE_EXPIRES, CODE_UPSERT, audit, try_code
from models.fragments import PASSWORD_ACCEPTED
from models.mail import NOTICE_INSERT, letter_params
from models.records import Ending
from models.sessions import LOCK_USER_FOR_REVOCATION, end_all_sessions_in, end_other_sessions_in
from models.throttle import CLAIM_CTES

# Password accounts only (a Google user has no password to reset), found by their verified address or their name.
BY_EMAIL = "lower(email) = lower(%(email)s) AND email_verified_at IS NOT NULL AND password_hash IS NOT NULL"
BY_USERNAME = f"id = ({ACCOUNT_NAMED}) AND password_hash IS NOT NULL"

# /password/forgot in one round trip, the same statement whether or not the account exists: the attempt is counted,
# and only when it is within the limits and the account has a verified address are its code and letter written.
FORGOT = """
WITH {claim},
account AS (
    SELECT id, email FROM users
    WHERE {account} AND email_verified_at IS NOT NULL AND (SELECT max(wait) FROM counted) IS NULL
),
code AS (
    INSERT INTO email_codes (user_id, purpose, email, code_hash, expires_at)
    SELECT id, 'reset', email, %(code_hash)s, {expires} FROM account
    {upsert}
),
letter AS (
    INSERT INTO mail_outbox (user_id, recipient, kind, sealed)
    SELECT id, email, %(letter_kind)s, %(letter_sealed)s FROM account
)
SELECT max(wait) FROM counted
"""
FORGOT_BY_EMAIL = FORGOT.format(claim=CLAIM_CTES, account=BY_EMAIL, expires=CODE_EXPIRES, upsert=CODE_UPSERT)
FORGOT_BY_USERNAME = FORGOT.format(claim=CLAIM_CTES, account=BY_USERNAME, expires=CODE_EXPIRES, upsert=CODE_UPSERT)

# The account a reset names, its row locked first (as every ending of sessions takes it: see models/sessions.py).
LOCK_BY_EMAIL = f"SELECT id FROM users WHERE {BY_EMAIL} FOR NO KEY UPDATE"
LOCK_BY_USERNAME = f"SELECT id FROM users WHERE {BY_USERNAME} FOR NO KEY UPDATE"

SET_PASSWORD = "UPDATE users SET password_hash = %(password_hash)s WHERE id = %(user_id)s"
CHANGE_PASSWORD = f"WITH {PASSWORD_ACCEPTED} {SET_PASSWORD}"
CLEAR_THROTTLE = "DELETE FROM throttle WHERE key = %(throttle_key)s"
SELECT_PASSWORD_HASH = "SELECT password_hash FROM users WHERE id = %s"


def _lookup(email: str | None, username: str | None) -> dict[str, str | None]:
    """The parameters BY_EMAIL or BY_USERNAME take."""
    key = username_key(username) if username is not None else None
    return {"email": email, "username": username, "key": key}


async def request_password_reset(
    db: Database,
    *,
    email: str | None,
    username: str | None,
    code_hash: bytes,
    letter: Letter,
    limits: dict[str, int],
    window: int,
) -> float | None:
    """Count a /password/forgot attempt against `limits` and, within them, mail a reset code to the verified address
    of the account named (by `email` or else `username`), if there is one. The seconds to wait when past a limit."""
    params = {
        **_lookup(email, username),
        "keys": list(limits),
        "limits": list(limits.values()),
        "window": window,
        "lockout": window,
        "code_hash": code_hash,
        "minutes": CODE_MINUTES,
        **letter_params(letter),
    }
    (wait,) = await db.fetch_one(FORGOT_BY_EMAIL if email is not None else FORGOT_BY_USERNAME, params)
    return None if wait is None else max(float(wait), 1.0)


async def reset_password(
    db: Database,
    *,
    email: str | None,
    username: str | None,
    code_hash: bytes,
    max_tries: int,
    password_hash: str,
    cutoff: float,
    ending: Ending,
    notice: Letter,
    address: str,
    throttle_key: str,
) -> tuple[int, list[str]] | None:
    """Spend a try of the reset code of the account named; when it matches, set the password, end every session of
    the user (and every JWT issued up to `cutoff`) as `ending` says, clear its recovery throttle and write the notice,
    all in one transaction. The user's id and the sessions ended, or None when the account or its live code is not
    there or the code is wrong."""
    async with db.cursor() as cur, cur.transaction():
        await cur.execute(LOCK_BY_EMAIL if email is not None else LOCK_BY_USERNAME, _lookup(email, username))
        row = await cur.fetchone()
        if row is None:
            return None
        user_id = int(row[0])
        if await try_code(cur, user_id=user_id, purpose="reset", code_hash=code_hash, max_tries=max_tries) is None:
            return None
        params = {
            "user_id": user_id,
            "password_hash": password_hash,
            "throttle_key": throttle_key,
            **letter_params(notice),
        }
        await cur.execute(SET_PASSWORD, params)
        ended = await end_all_sessions_in(cur, user_id=user_id, cutoff=cutoff, ending=ending)
        await cur.execute(CLEAR_THROTTLE, params)
        await cur.execute(NOTICE_INSERT, params)
        await audit(cur, user_id=user_id, event="password_reset", address=address)
    return user_id, ended


async def change_password(
    db: Database,
    *,
    user_id: int,
    password_hash: str,
    keep_session_id: str | None,
    ending: Ending,
    notice: Letter,
    address: str,
    throttle_key: str,
    address_key: str,
) -> list[str]:
    """Set a new password (the current one proved right: its sign-in throttle is settled), end every session of the
    user but `keep_session_id` as `ending` says, and write the notice, in one transaction; the sessions ended."""
    params = {
        "user_id": user_id,
        "password_hash": password_hash,
        "address": address,
        "throttle_key": throttle_key,
        "address_key": address_key,
        "new_hash": None,  # the password is set after, not rehashed
        **letter_params(notice),
    }
    async with db.cursor() as cur, cur.transaction():
        await cur.execute(LOCK_USER_FOR_REVOCATION, params)
        await cur.execute(CHANGE_PASSWORD, params)
        ended = await end_other_sessions_in(cur, user_id=user_id, keep_session_id=keep_session_id, ending=ending)
        await cur.execute(NOTICE_INSERT, params)
        await audit(cur, user_id=user_id, event="password_changed", address=address)
    return ended


async def password_hash_of(db: Database, user_id: int) -> str | None:
    """The user's password hash (None for a Google user, or no such user)."""
    row = await db.fetch_one(SELECT_PASSWORD_HASH, (user_id,))
    return None if row is None else row[0]
