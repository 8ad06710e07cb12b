"""Identities: the ways a user signs in (a password, Google accounts, passkeys), listed, linked and unlinked.

Every change takes the users row first (FOR NO KEY UPDATE), as revocations do: two changes of one user's identities
take turns, so that counting the ways in and removing one are never split by another removal, and a deletion of the
user never meets a link half made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import psycopg2.errors

from db.pool import Cursor, Database
from mail.messages import Letter
from models.fragments import AUDIT_INSERT, ISO_UTC
from models.mail import letter_params
from models.passkeys import DELETE_PASSKEY, SELECT_PASSKEY_NAME
from models.records import (
    HasPassword,
    IdentityTaken,
    LastWayIn,
    NoSuchIdentity,
    TooManyIdentities,
    UnknownUser,
    UsernameTaken,
    WhichIdentity,
)

# The user's row, held until the change commits; then, in a statement of its own (whose snapshot is taken once the
# lock is held, and so sees what the change before committed), how many ways in the user has.
LOCK_USER = "SELECT id FROM users WHERE id = %(user_id)s AND deleted_at IS NULL FOR NO KEY UPDATE"
WAYS_IN = """
SELECT (password_hash IS NOT NULL)::int, (SELECT count(*) FROM google_identities WHERE user_id = users.id),
       (SELECT count(*) FROM passkeys WHERE user_id = users.id)
FROM users WHERE id = %(user_id)s
"""


def _iso(column: str) -> str:
    return f"to_char({column} AT TIME ZONE 'UTC', {ISO_UTC})"


# Each identity as GET /identities lists it: its kind first, then what tells it apart.
SELECT_IDENTITIES = f"""
SELECT 'password', NULL, username, NULL, NULL, NULL, NULL, NULL, 0 AS sort
FROM users WHERE id = %(user_id)s AND password_hash IS NOT NULL
UNION ALL
SELECT 'google', id::text, NULL, sub, email, NULL, {_iso("created_at")}, NULL, 1
FROM google_identities WHERE user_id = %(user_id)s
UNION ALL
SELECT 'passkey', id::text, NULL, NULL, NULL, name, {_iso("created_at")}, {_iso("last_used_at")}, 2
FROM passkeys WHERE user_id = %(user_id)s
ORDER BY sort, 7, 2
"""

LINK_GOOGLE = f"""
WITH linked AS (
    INSERT INTO google_identities (sub, user_id, email) VALUES (%(sub)s, %(user_id)s, %(email)s)
    ON CONFLICT (sub) DO NOTHING
    RETURNING id
),
audit AS (
    {AUDIT_INSERT}
    SELECT %(user_id)s, 'identity_linked', 'google', %(address)s, jsonb_build_object('identity', id) FROM linked
)
SELECT id::text FROM linked
"""
GOOGLE_OWNER = "SELECT user_id, id::text FROM google_identities WHERE sub = %(sub)s"

# A login name and its password; the unique index on the name's key refuses a name in use.
ADD_PASSWORD = f"""
WITH added AS (
    UPDATE users SET password_hash = %(password_hash)s, username = %(username)s, username_key = %(key)s,
                     username_key_clash = 0
    WHERE id = %(user_id)s
    RETURNING id
)
{AUDIT_INSERT} SELECT id, 'identity_linked', 'password', %(address)s, '{{}}' FROM added
"""

# Without its password an account has no login name, and no second factor of that password either.
REMOVE_PASSWORD = [
    """UPDATE users SET password_hash = NULL, username_key = NULL, username_key_clash = 0, totp_secret = NULL,
           totp_enabled = false, totp_last_step = NULL
       WHERE id = %(user_id)s""",
    "DELETE FROM recovery_codes WHERE user_id = %(user_id)s",
]
AUDIT_UNLINKED = f"{AUDIT_INSERT} VALUES (%(user_id)s, 'identity_unlinked', %(kind)s, %(address)s, %(detail)s::jsonb)"
# The kinds a user may have several of: the ids of theirs, and how one (%(id)s) goes.
IDS_OF = {
    "google": "SELECT id::text FROM google_identities WHERE user_id = %(user_id)s",
    "passkey": "SELECT id::text FROM passkeys WHERE user_id = %(user_id)s",
}
REMOVE_GOOGLE = [
    "DELETE FROM google_identities WHERE user_id = %(user_id)s AND id = %(id)s::uuid",
    AUDIT_UNLINKED,
]


def _identity(row: tuple[Any, ...]) -> dict[str, Any]:
    kind, identity_id, username, sub, email, name, created_at, last_used_at, _ = row
    if kind == "password":
        return {"kind": kind, "username": username}
    if kind == "google":
        return {"kind": kind, "id": identity_id, "sub": sub, "email": email, "created_at": created_at}
    return {"kind": kind, "id": identity_id, "name": name, "created_at": created_at, "last_used_at": last_used_at}


async def identities_in(cur: Cursor, user_id: int) -> list[dict[str, Any]]:
    """The user's identities (password first, then Google accounts, oldest first), on a cursor already open."""
    await cur.execute(SELECT_IDENTITIES, {"user_id": user_id})
    return [_identity(row) for row in await cur.fetchall()]


async def list_identities(db: Database, user_id: int) -> list[dict[str, Any]]:
    """The user's identities as GET /identities lists them."""
    async with db.cursor() as cur:
        return await identities_in(cur, user_id)


async def _lock_ways_in(cur: Cursor, user_id: int) -> tuple[int, int, int]:
    """Hold the user's row until commit; how many ways in they have: (1 with a password else 0, Google accounts,
    passkeys)."""
    await cur.execute(LOCK_USER, {"user_id": user_id})
    if await cur.fetchone() is None:
        raise UnknownUser(user_id)
    await cur.execute(WAYS_IN, {"user_id": user_id})
    password, google, passkeys = await cur.fetchone()
    return int(password), int(google), int(passkeys)


async def link_google(
    db: Database, *, user_id: int, sub: str, email: str | None, address: str, most: int
) -> tuple[str, bool]:
    """Link a Google account (its `sub`) to the user; its identity id, and whether it is new (False: it already was
    theirs). IdentityTaken when it is another user's; TooManyIdentities past `most` Google accounts."""
    params = {"user_id": user_id, "sub": sub, "email": email, "address": address}
    async with db.cursor() as cur, cur.transaction():
        _, google, _ = await _lock_ways_in(cur, user_id)
        await cur.execute(GOOGLE_OWNER, params)
        owner = await cur.fetchone()
        if owner is None:
            if google >= most:
                raise TooManyIdentities(user_id)
            await cur.execute(LINK_GOOGLE, params)
            linked = await cur.fetchone()
            if linked is not None:
                return str(linked[0]), True
            # Taken meanwhile (by a first sign-in or another link, committed since): whose it is now decides.
            await cur.execute(GOOGLE_OWNER, params)
            owner = await cur.fetchone()
        if owner is None or owner[0] != user_id:
            raise IdentityTaken(sub)
        return str(owner[1]), False


async def add_password(
    db: Database, *, user_id: int, username: str, key: str, password_hash: str, address: str
) -> None:
    """Give a user without a password a login name and password; HasPassword, or UsernameTaken for a name in use."""
    params = {
        "user_id": user_id,
        "username": username,
        "key": key,
        "password_hash": password_hash,
        "address": address,
    }
    async with db.cursor() as cur, cur.transaction():
        password, _, _ = await _lock_ways_in(cur, user_id)
        if password:
            raise HasPassword(user_id)
        try:
            await cur.execute(ADD_PASSWORD, params)
        except psycopg2.errors.UniqueViolation:
            raise UsernameTaken(username) from None


async def unlink_identity(
    db: Database,
    *,
    user_id: int,
    kind: str,
    identity_id: str | None,
    address: str,
    passkey_notice: Callable[[str], Letter] | None = None,
) -> None:
    """Remove one way in: the password, a Google account or a passkey (`identity_id`, needed when there are several).
    A passkey's removal is audited and told as the passkeys' own is: `passkey_notice` writes the letter for its name.

    NoSuchIdentity when there is none such, WhichIdentity when several could be meant, LastWayIn when it is the only
    way left to sign in.
    """
    params: dict[str, Any] = {"user_id": user_id, "kind": kind, "address": address, "detail": "{}"}
    async with db.cursor() as cur, cur.transaction():
        ways = await _lock_ways_in(cur, user_id)
        if kind == "password":
            if not ways[0]:
                raise NoSuchIdentity(kind)
            statements = [*REMOVE_PASSWORD, AUDIT_UNLINKED]
        elif kind in IDS_OF:
            await cur.execute(IDS_OF[kind], params)
            ids = [row[0] for row in await cur.fetchall()]
            if identity_id is None and len(ids) > 1:
                raise WhichIdentity(kind)
            identity_id = identity_id if identity_id is not None else next(iter(ids), None)
            if identity_id not in ids:
                raise NoSuchIdentity(kind)
            params.update(id=identity_id, detail=orjson.dumps({"identity": identity_id}).decode())
            statements = REMOVE_GOOGLE if kind == "google" else [DELETE_PASSKEY]
        else:
            raise NoSuchIdentity(kind)
        if sum(ways) <= 1:
            raise LastWayIn(kind)
        if kind == "passkey":
            if passkey_notice is None:
                raise ValueError("a passkey's removal is told to its user: give passkey_notice")
            await cur.execute(SELECT_PASSKEY_NAME, params)
            (name,) = await cur.fetchone()
            params.update(letter_params(passkey_notice(str(name))))
        for statement in statements:
            await cur.execute(statement, params)
