"""Email addresses on accounts and the codes that verify them; each change is written with the mail it causes."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg2.errors

from auth.usernames import username_key
from db.pool import Cursor, Database
from mail.messages import CODE_MINUTES, Letter
from models.accounts import INSERT_PASSWORD_USER
from models.fragments import AUDIT_INSERT
from models.mail import letter_params
from models.records import EmailTaken, User, UsernameTaken

# Another account has verified this address (compared as the unique index compares them).
VERIFIED_ELSEWHERE = """
SELECT EXISTS (
    SELECT 1 FROM users WHERE lower(email) = lower(%(email)s) AND email_verified_at IS NOT NULL AND id <> %(user_id)s
)
"""

# One live code per user and purpose: a new one replaces the old one, its tries with it.
CODE_UPSERT = """
ON CONFLICT (user_id, purpose) DO UPDATE SET
    email = EXCLUDED.email, code_hash = EXCLUDED.code_hash, tries = 0, expires_at = EXCLUDED.expires_at, used_at = NULL
"""
CODE_EXPIRES = "now() + make_interval(mins => %(minutes)s)"
STORE_CODE = f"""
INSERT INTO email_codes (user_id, purpose, email, code_hash, expires_at)
VALUES (%(user_id)s, %(purpose)s, %(email)s, %(code_hash)s, {CODE_EXPIRES})
{CODE_UPSERT}
"""

# A letter to an address named here (a code to the address it verifies, a notice to the address being replaced).
LETTER_TO = """
INSERT INTO mail_outbox (user_id, recipient, kind, sealed)
VALUES (%(user_id)s, %(email)s, %(letter_kind)s, %(letter_sealed)s)
"""

# Every try is counted before it is compared, in the same statement: of N tries at once, at most `max_tries` are
# compared (the row lock makes them take turns, and each re-reads `tries` and `used_at` after its wait), and at most
# one succeeds. Nothing is returned when there is no live code (none, used, expired, or out of tries).
TRY_CODE = """
UPDATE email_codes SET tries = tries + 1, used_at = CASE WHEN code_hash = %(code_hash)s THEN now() END
WHERE user_id = %(user_id)s AND purpose = %(purpose)s
  AND used_at IS NULL AND expires_at > now() AND tries < %(max_tries)s
RETURNING used_at IS NOT NULL, email
"""

# A user's row first, in every transaction here: so they never wait on each other in opposite orders.
LOCK_USER = "SELECT email, email_verified_at IS NOT NULL FROM users WHERE id = %(user_id)s FOR NO KEY UPDATE"
SET_EMAIL = "UPDATE users SET email = %(email)s, email_verified_at = NULL WHERE id = %(user_id)s"
DROP_CODES = "DELETE FROM email_codes WHERE user_id = %(user_id)s"
MARK_VERIFIED = "UPDATE users SET email_verified_at = now() WHERE id = %(user_id)s AND lower(email) = lower(%(email)s)"
AUDIT = f"{AUDIT_INSERT} VALUES (%(user_id)s, %(event)s, NULL, %(address)s, %(detail)s::jsonb)"


async def store_code(cur: Cursor, *, user_id: int, purpose: str, email: str, code_hash: bytes, letter: Letter) -> None:
    """Keep a new code (replacing the user's live one for `purpose`) and write the letter that carries it."""
    params = {"user_id": user_id, "purpose": purpose, "email": email, "code_hash": code_hash, "minutes": CODE_MINUTES}
    await cur.execute(STORE_CODE, params)
    await cur.execute(LETTER_TO, {**params, **letter_params(letter)})


async def try_code(cur: Cursor, *, user_id: int, purpose: str, code_hash: bytes, max_tries: int) -> str | None:
    """Spend one try of the user's live code; the address it was sent to when it matched, else None."""
    params = {"user_id": user_id, "purpose": purpose, "code_hash": code_hash, "max_tries": max_tries}
    await cur.execute(TRY_CODE, params)
    row = await cur.fetchone()
    return row[1] if row is not None and row[0] else None


async def audit(cur: Cursor, *, user_id: int, event: str, address: str, detail: dict[str, Any] | None = None) -> None:
    """An audit entry in the transaction of the change it records."""
    params = {"user_id": user_id, "event": event, "address": address, "detail": orjson.dumps(detail or {}).decode()}
    await cur.execute(AUDIT, params)


async def _verified_elsewhere(cur: Cursor, email: str, user_id: int) -> bool:
    await cur.execute(VERIFIED_ELSEWHERE, {"email": email, "user_id": user_id})
    (taken,) = await cur.fetchone()
    return bool(taken)


async def register_with_email(
    db: Database, *, username: str, password_hash: str, email: str, code_hash: bytes, letter: Letter, address: str
) -> User:
    """Create a password account with an (unverified) address and mail it a code.

    UsernameTaken for a name in use, EmailTaken for an address another account has verified.
    """
    async with db.cursor() as cur, cur.transaction():
        if await _verified_elsewhere(cur, email, 0):
            raise EmailTaken(email)
        params = {"username": username, "key": username_key(username), "password_hash": password_hash, "email": email}
        await cur.execute(INSERT_PASSWORD_USER, params)
        row = await cur.fetchone()
        if row is None:
            raise UsernameTaken(username)
        user_id = int(row[0])
        await store_code(cur, user_id=user_id, purpose="verify", email=email, code_hash=code_hash, letter=letter)
        await audit(cur, user_id=user_id, event="email_set", address=address)
    return User(user_id, username, "user", email, False)


async def set_email(
    db: Database, *, user_id: int, email: str, code_hash: bytes, code_letter: Letter, changed: Letter, address: str
) -> bool:
    """Give the user a new, unverified address and mail it a code; the old verified address, if any, gets `changed`.

    False (nothing done) when it is already the user's verified address; EmailTaken when another account verified it.
    Every code the user had dies: a reset code sent to the old address must not outlive it.
    """
    async with db.cursor() as cur, cur.transaction():
        await cur.execute(LOCK_USER, {"user_id": user_id})
        row = await cur.fetchone()
        if row is None:
            return False
        old_email, old_verified = row
        if old_verified and old_email.lower() == email.lower():
            return False
        if await _verified_elsewhere(cur, email, user_id):
            raise EmailTaken(email)
        await cur.execute(SET_EMAIL, {"user_id": user_id, "email": email})
        await cur.execute(DROP_CODES, {"user_id": user_id})
        await store_code(cur, user_id=user_id, purpose="verify", email=email, code_hash=code_hash, letter=code_letter)
        if old_verified:
            await cur.execute(LETTER_TO, {"user_id": user_id, "email": old_email, **letter_params(changed)})
        detail = {"replaced_verified": old_verified}
        await audit(cur, user_id=user_id, event="email_set", address=address, detail=detail)
    return True


async def verify_email(db: Database, *, user_id: int, code_hash: bytes, max_tries: int, address: str) -> bool:
    """Spend a try of the user's verification code; True when it matched and the address is now verified.

    EmailTaken when another account verified the address first (the code is then left unspent).
    """
    try:
        async with db.cursor() as cur, cur.transaction():
            await cur.execute(LOCK_USER, {"user_id": user_id})
            if await cur.fetchone() is None:
                return False
            email = await try_code(cur, user_id=user_id, purpose="verify", code_hash=code_hash, max_tries=max_tries)
            if email is None:
                return False
            await cur.execute(MARK_VERIFIED, {"user_id": user_id, "email": email})
            if cur.rowcount == 0:
                return False  # the address changed since; its new code is the one that counts
            await audit(cur, user_id=user_id, event="email_verified", address=address)
    except psycopg2.errors.UniqueViolation:
        raise EmailTaken("verified by another account") from None
    return True
