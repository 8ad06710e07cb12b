"""Passkeys: users' registered WebAuthn credentials, their handles, and the single-use challenges of ceremonies."""

from __future__ import annotations

from dataclasses import dataclass

from db.pool import Database
from mail.messages import Letter
from models.accounts import ACCOUNT_NAMED
from models.fragments import (
    AUDIT_INSERT,
    ISO_UTC,
    PURGE_SESSIONS,
    RATE_ATTEMPT,
    SESSION_INSERT,
    SESSION_VALUES,
    SIGNED_IN_DEVICE,
    USER_IN_GOOD_STANDING,
)
from models.mail import NOTICE_INSERT, letter_params
from models.records import (
    NewRefreshToken,
    NewSession,
    NotAdmitted,
    PasskeyDescriptor,
    PasskeyEntry,
    PasskeyTaken,
    RateLimited,
    SessionPolicy,
    StoredPasskey,
    TooManyPasskeys,
    User,
)
from models.sessions import session_detail, session_params

# The challenge is written only within the address's rate; a few expired ones go at the same time, so abandoned
# ceremonies never pile up and no full-table DELETE is needed.
ISSUE_CHALLENGE = f"""
WITH {RATE_ATTEMPT},
issued AS (
    INSERT INTO webauthn_challenges (challenge, purpose, user_id, expires_at)
    SELECT %(challenge)s, %(purpose)s, %(user_id)s, now() + make_interval(secs => %(lifetime)s) FROM allowed
),
purged AS (
    DELETE FROM webauthn_challenges WHERE challenge IN (
        SELECT challenge FROM webauthn_challenges WHERE expires_at < now() ORDER BY expires_at LIMIT 50
    )
)
SELECT EXISTS (SELECT 1 FROM allowed), (SELECT age FROM attempt)
"""

# Taken, not read: of any number of ceremonies presenting one challenge at once, exactly one gets the row. An expired
# challenge is taken too, and refused.
TAKE_CHALLENGE = """
DELETE FROM webauthn_challenges WHERE challenge = %(challenge)s AND purpose = %(purpose)s
RETURNING user_id, expires_at > now()
"""

# A handle is given on the user's first registration and kept. Of two first registrations at once, the second's
# UPDATE finds the handle set and returns nothing; its caller reads the handle again.
ASSIGN_HANDLE = """
WITH assigned AS (
    UPDATE users SET webauthn_handle = %(handle)s WHERE id = %(user_id)s AND webauthn_handle IS NULL
    RETURNING webauthn_handle
)
SELECT coalesce((SELECT webauthn_handle FROM assigned), (SELECT webauthn_handle FROM users WHERE id = %(user_id)s))
"""

SELECT_DESCRIPTORS = """
SELECT credential_id, transports FROM passkeys WHERE user_id = %(user_id)s ORDER BY created_at, id
"""

SELECT_NAMED_DESCRIPTORS = f"""
SELECT user_id, credential_id, transports FROM passkeys WHERE user_id = ({ACCOUNT_NAMED}) ORDER BY created_at, id
"""

SELECT_BY_CREDENTIAL = """
SELECT passkeys.id::text, users.id, users.username, users.role, passkeys.public_key, passkeys.sign_count,
       users.webauthn_handle, users.totp_enabled, extract(epoch FROM users.banned_until)::float8
FROM passkeys JOIN users ON users.id = passkeys.user_id
WHERE passkeys.credential_id = %s AND users.deleted_at IS NULL
"""

# Registrations of one user wait for each other here, so that the count below is never passed by a race.
LOCK_USER = "SELECT id FROM users WHERE id = %(user_id)s FOR NO KEY UPDATE"
COUNT_PASSKEYS = "SELECT count(*) FROM passkeys WHERE user_id = %(user_id)s"

INSERT_PASSKEY = f"""
WITH added AS (
    INSERT INTO passkeys (user_id, credential_id, public_key, sign_count, name, transports, backed_up)
    VALUES (%(user_id)s, %(credential_id)s, %(public_key)s, %(sign_count)s, %(name)s, %(transports)s, %(backed_up)s)
    ON CONFLICT (credential_id) DO NOTHING
    RETURNING id, name, created_at
),
audit AS ({AUDIT_INSERT} SELECT %(user_id)s, 'passkey_added', NULL, %(address)s, '{{}}' FROM added),
notice AS ({NOTICE_INSERT} AND EXISTS (SELECT 1 FROM added))
SELECT id::text, name, to_char(created_at AT TIME ZONE 'UTC', {ISO_UTC}) FROM added
"""

SELECT_ENTRIES = f"""
SELECT id::text, name, to_char(created_at AT TIME ZONE 'UTC', {ISO_UTC}),
       to_char(last_used_at AT TIME ZONE 'UTC', {ISO_UTC})
FROM passkeys WHERE user_id = %s ORDER BY created_at, id
"""

# The name first, for the notice (its row locked: of two deletions at once, the second finds nothing), then the rest;
# run by models.identities.unlink_identity, which first makes sure it is not the user's last way in.
SELECT_PASSKEY_NAME = "SELECT name FROM passkeys WHERE id = %(id)s::uuid AND user_id = %(user_id)s FOR UPDATE"
DELETE_PASSKEY = f"""
WITH deleted AS (DELETE FROM passkeys WHERE id = %(id)s::uuid AND user_id = %(user_id)s RETURNING id),
audit AS ({AUDIT_INSERT} SELECT %(user_id)s, 'passkey_removed', NULL, %(address)s, '{{}}' FROM deleted),
notice AS ({NOTICE_INSERT} AND EXISTS (SELECT 1 FROM deleted))
SELECT count(*) FROM deleted
"""

# The signature counter only moves forward: of two assertions carrying the same count (a cloned authenticator, or a
# race between two challenges), one is used. Authenticators that keep no counter always send 0.
USE_PASSKEY = """used AS (
    UPDATE passkeys SET sign_count = %(sign_count)s, backed_up = %(backed_up)s, last_used_at = now()
    WHERE id = %(passkey_id)s::uuid AND (sign_count < %(sign_count)s OR (sign_count = 0 AND %(sign_count)s = 0))
    RETURNING user_id
)"""

# A verified assertion opens the sign-in's session with its first refresh token, in one round trip; nothing is written
# when the counter was passed meanwhile.
COMPLETE_SIGN_IN = f"""
WITH admitted AS (
    -- Held until commit, as every sign-in holds its user (models/accounts.py): a ban or deletion waits for this one
    -- and ends its session, or this one waits for it and opens none.
    SELECT users.id FROM passkeys JOIN users ON users.id = passkeys.user_id
    WHERE passkeys.id = %(passkey_id)s::uuid AND {USER_IN_GOOD_STANDING}
    FOR SHARE OF users
),
{USE_PASSKEY},
signed_in AS (SELECT used.user_id FROM used JOIN admitted ON admitted.id = used.user_id),
opened AS (
    {SESSION_INSERT} SELECT {SESSION_VALUES.format(user_id="user_id")} FROM signed_in RETURNING id, expires_at
),
refresh AS (
    INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
    SELECT %(refresh_hash)s, id, least(expires_at, now() + make_interval(secs => %(refresh_lifetime)s)) FROM opened
),
audit AS ({AUDIT_INSERT} SELECT user_id, 'sign_in', 'passkey', %(address)s, %(detail)s::jsonb FROM signed_in),
{SIGNED_IN_DEVICE.format(user_id="user_id", source="FROM signed_in")},
{PURGE_SESSIONS}
SELECT EXISTS (SELECT 1 FROM used), EXISTS (SELECT 1 FROM admitted)
"""


@dataclass(frozen=True, slots=True)
class TakenChallenge:
    """A challenge a ceremony took: for whom it was issued (None: anyone's passkey may answer it)."""

    user_id: int | None


async def issue_challenge(
    db: Database,
    *,
    challenge: bytes,
    purpose: str,
    user_id: int | None,
    lifetime: int,
    rate_key: str,
    rate_limit: int,
    rate_window: int,
) -> None:
    """Keep a new challenge for `lifetime` seconds; RateLimited past `rate_limit` per `rate_window` (0: no limit)."""
    params = {
        "challenge": challenge,
        "purpose": purpose,
        "user_id": user_id,
        "lifetime": lifetime,
        "rate_key": rate_key,
        "limit": rate_limit,
        "window": rate_window,
    }
    allowed, window_age = await db.fetch_one(ISSUE_CHALLENGE, params)
    if not allowed:
        raise RateLimited(rate_window - (window_age or 0.0))


async def take_challenge(db: Database, challenge: bytes, purpose: str) -> TakenChallenge | None:
    """Use up a challenge issued for `purpose`; None when it is unknown, already used or expired."""
    row = await db.fetch_one(TAKE_CHALLENGE, {"challenge": challenge, "purpose": purpose})
    if row is None or not row[1]:
        return None
    return TakenChallenge(row[0])


async def user_handle(db: Database, user_id: int, new_handle: bytes) -> bytes:
    """The user's WebAuthn handle, which becomes `new_handle` if the user has none yet."""
    for _ in range(2):
        (handle,) = await db.fetch_one(ASSIGN_HANDLE, {"user_id": user_id, "handle": new_handle})
        if handle is not None:
            return bytes(handle)
    raise RuntimeError(f"could not give user {user_id} a WebAuthn handle")


def _descriptor(credential_id: bytes, transports: list[str] | None) -> PasskeyDescriptor:
    return PasskeyDescriptor(bytes(credential_id), tuple(transports or ()))


async def descriptors_of(db: Database, user_id: int) -> list[PasskeyDescriptor]:
    """The user's registered credentials, oldest first."""
    rows = await db.fetch_all(SELECT_DESCRIPTORS, {"user_id": user_id})
    return [_descriptor(credential_id, transports) for credential_id, transports in rows]


async def descriptors_named(db: Database, username: str, key: str) -> tuple[int | None, list[PasskeyDescriptor]]:
    """The password account `username` (whose key is `key`) means and its credentials; (None, []) without any."""
    rows = await db.fetch_all(SELECT_NAMED_DESCRIPTORS, {"key": key, "username": username})
    user_id = rows[0][0] if rows else None
    return user_id, [_descriptor(credential_id, transports) for _, credential_id, transports in rows]


async def passkey_by_credential(db: Database, credential_id: bytes) -> StoredPasskey | None:
    """The registered passkey with this credential id, of a user not deleted; None when there is none."""
    row = await db.fetch_one(SELECT_BY_CREDENTIAL, (credential_id,))
    if row is None:
        return None
    passkey_id, user_id, username, role, public_key, sign_count, handle, totp_enabled, banned_until = row
    return StoredPasskey(
        id=passkey_id,
        user=User(user_id, username, role),
        public_key=bytes(public_key),
        sign_count=int(sign_count),
        user_handle=bytes(handle) if handle is not None else None,
        totp_enabled=bool(totp_enabled),
        banned_until=banned_until,
    )


async def add_passkey(
    db: Database,
    *,
    user_id: int,
    credential_id: bytes,
    public_key: bytes,
    sign_count: int,
    name: str,
    transports: list[str],
    backed_up: bool,
    max_count: int,
    address: str,
    notice: Letter,
) -> PasskeyEntry:
    """Register a credential for the user (audited, and the user told); TooManyPasskeys at `max_count`, PasskeyTaken
    if it is registered."""
    params = {
        "user_id": user_id,
        "credential_id": credential_id,
        "public_key": public_key,
        "sign_count": sign_count,
        "name": name,
        "transports": transports,
        "backed_up": backed_up,
        "address": address,
        **letter_params(notice),
    }
    async with db.cursor() as cur, cur.transaction():
        await cur.execute(LOCK_USER, params)
        await cur.execute(COUNT_PASSKEYS, params)
        (count,) = await cur.fetchone()
        if count >= max_count:
            raise TooManyPasskeys(user_id)
        await cur.execute(INSERT_PASSKEY, params)
        row = await cur.fetchone()
    if row is None:
        raise PasskeyTaken(user_id)
    return PasskeyEntry(row[0], row[1], row[2], None)


async def list_passkeys(db: Database, user_id: int) -> list[PasskeyEntry]:
    """The user's passkeys, oldest first."""
    rows = await db.fetch_all(SELECT_ENTRIES, (user_id,))
    return [PasskeyEntry(*row) for row in rows]


PASSKEY_OWNER_BANNED = """
SELECT coalesce(users.banned_until > now(), false) FROM passkeys JOIN users ON users.id = passkeys.user_id
WHERE passkeys.id = %(passkey_id)s::uuid
"""


async def complete_passkey_sign_in(
    db: Database,
    *,
    passkey_id: str,
    sign_count: int,
    backed_up: bool,
    session: NewSession,
    policy: SessionPolicy,
    refresh: NewRefreshToken,
    address: str,
) -> bool:
    """Record a verified assertion (its counter, when) and open the sign-in's session with its refresh token; False
    when the counter was passed meanwhile (then nothing is written). NotAdmitted when the user was banned or deleted
    meanwhile (then no session is opened)."""
    params = {
        "passkey_id": passkey_id,
        "sign_count": sign_count,
        "backed_up": backed_up,
        "refresh_hash": refresh.token_hash,
        "refresh_lifetime": refresh.lifetime,
        "address": address,
        "detail": session_detail(session),
        **session_params(session, policy),
    }
    used, admitted = await db.fetch_one(COMPLETE_SIGN_IN, params)
    if not admitted:
        raise NotAdmitted(banned=await _banned(db, passkey_id))
    return bool(used)


async def _banned(db: Database, passkey_id: str) -> bool:
    """Whether the owner of this passkey is banned now (else they are gone or deleted)."""
    row = await db.fetch_one(PASSKEY_OWNER_BANNED, {"passkey_id": passkey_id})
    return bool(row and row[0])
