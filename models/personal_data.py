"""Everything kept about a user: exported in one document, or deleted with the account.

A deletion removes the users row, and with it (ON DELETE CASCADE) every credential and record that is the user's:
sessions with their chatterIDs and refresh tokens, Google identities, recovery codes, and whatever later tables hang
off users the same way. Chatts stay, under DELETED_NAME and no longer linked; the audit log keeps its events under
the old id, stripped of addresses and other personal details, and records the deletion itself.
"""

from __future__ import annotations

from typing import Any

from db.pool import Database
from models.admin import keep_an_admin
from models.audit import EVENT_COLUMNS, event_record
from models.fragments import AUDIT_INSERT, BANNED_UNTIL, ISO_UTC
from models.identities import identities_in
from models.passkeys import SELECT_ENTRIES
from models.records import UnknownUser

# The name a deleted user's chatts are shown under.
DELETED_NAME = "[deleted]"
# Audit details that tell about a person rather than an event; dropped from a deleted user's events.
PERSONAL_DETAIL_KEYS = ("previous_address", "email", "username", "ip", "user_agent", "ban_reason")


def _iso(column: str) -> str:
    return f"to_char({column} AT TIME ZONE 'UTC', {ISO_UTC})"


# One snapshot for the whole document: nothing changes between its parts.
SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

EXPORT_PROFILE = f"""
SELECT id, username, email, email_verified_at IS NOT NULL, role, {_iso("created_at")}, password_hash IS NOT NULL,
       totp_enabled,
       {BANNED_UNTIL}, CASE WHEN banned_until > now() THEN ban_reason END,
       (SELECT count(*) FROM recovery_codes WHERE user_id = users.id AND used_at IS NULL)
FROM users WHERE id = %(user_id)s AND deleted_at IS NULL
"""
PROFILE_KEYS = (
    "id",
    "username",
    "email",
    "email_verified",
    "role",
    "created_at",
    "has_password",
    "totp_enabled",
    "banned_until",
    "ban_reason",
    "unused_recovery_codes",
)

EXPORT_SESSIONS = f"""
SELECT id::text, kind, {_iso("created_at")}, {_iso("last_seen_at")}, {_iso("authenticated_at")}, {_iso("expires_at")},
       {_iso("ended_at")}, end_reason, ip, user_agent, device
FROM sessions WHERE user_id = %(user_id)s ORDER BY created_at, id
"""
SESSION_KEYS = (
    "id",
    "kind",
    "created_at",
    "last_seen_at",
    "authenticated_at",
    "expires_at",
    "ended_at",
    "end_reason",
    "ip",
    "user_agent",
    "device",
)

EXPORT_CHATTS = f"""
SELECT id::text, username, message, {_iso("created_at")} FROM chatts WHERE user_id = %(user_id)s ORDER BY seq
"""
CHATT_KEYS = ("id", "username", "message", "created_at")

# The devices the user signed in from, as the new-device notices know them, and the messages mailed to them (what
# they said is not kept once sent).
EXPORT_DEVICES = f"""
SELECT family, network, {_iso("first_seen_at")}, {_iso("last_seen_at")} FROM known_devices
WHERE user_id = %(user_id)s ORDER BY first_seen_at
"""
DEVICE_KEYS = ("device", "network", "first_seen_at", "last_seen_at")
EXPORT_MESSAGES = f"""
SELECT kind, recipient, {_iso("created_at")}, {_iso("sent_at")} FROM mail_outbox WHERE user_id = %(user_id)s ORDER BY id
"""
MESSAGE_KEYS = ("kind", "recipient", "created_at", "sent_at")
PASSKEY_KEYS = ("id", "name", "created_at", "last_used_at")

EXPORT_EVENTS = f"SELECT {EVENT_COLUMNS} FROM auth_events WHERE user_id = %(user_id)s ORDER BY id"

# The account's row is taken FOR UPDATE, after the admins' lock (the last admin may not leave).
LOCK_FOR_DELETION = "SELECT username_key FROM users WHERE id = %(user_id)s FOR UPDATE"
DELETE_USER = [
    "UPDATE chatts SET username = %(deleted_name)s WHERE user_id = %(user_id)s",
    "UPDATE auth_events SET address = NULL, detail = detail - %(personal)s::text[] WHERE user_id = %(user_id)s",
    f"{AUDIT_INSERT} VALUES (%(user_id)s, 'account_deleted', NULL, NULL, '{{}}')",
    # The failed-login counter is kept under the login name.
    "DELETE FROM throttle WHERE key = 'login:user:' || %(key)s::text",
    # Messages to the user's address, sent or not (the outbox would keep the address past the user).
    "DELETE FROM mail_outbox WHERE user_id = %(user_id)s",
    "DELETE FROM users WHERE id = %(user_id)s",
]


async def export_user(db: Database, *, user_id: int) -> dict[str, Any]:
    """Everything kept about the user: profile, identities, sessions (ended ones too), passkeys, chatts, audit events,
    the devices they signed in from and the messages mailed to them.

    Secrets are not in it (password and TOTP hashes, credentials): only whether they exist. UnknownUser when the user
    is gone.
    """
    params = {"user_id": user_id}
    async with db.cursor() as cur, cur.transaction():
        await cur.execute(SNAPSHOT)
        await cur.execute(EXPORT_PROFILE, params)
        row = await cur.fetchone()
        if row is None:
            raise UnknownUser(user_id)
        profile = dict(zip(PROFILE_KEYS, row, strict=True))
        identities = await identities_in(cur, user_id)
        await cur.execute(EXPORT_SESSIONS, params)
        sessions = [dict(zip(SESSION_KEYS, row, strict=True)) for row in await cur.fetchall()]
        await cur.execute(EXPORT_CHATTS, params)
        chatts = [dict(zip(CHATT_KEYS, row, strict=True)) for row in await cur.fetchall()]
        await cur.execute(EXPORT_EVENTS, params)
        events = [event_record(row) for row in await cur.fetchall()]
        await cur.execute(SELECT_ENTRIES, (user_id,))
        passkeys = [dict(zip(PASSKEY_KEYS, row, strict=True)) for row in await cur.fetchall()]
        await cur.execute(EXPORT_DEVICES, params)
        devices = [dict(zip(DEVICE_KEYS, row, strict=True)) for row in await cur.fetchall()]
        await cur.execute(EXPORT_MESSAGES, params)
        messages = [dict(zip(MESSAGE_KEYS, row, strict=True)) for row in await cur.fetchall()]
    return {
        "profile": profile,
        "identities": identities,
        "sessions": sessions,
        "passkeys": passkeys,
        "chatts": chatts,
        "audit_events": events,
        "devices": devices,
        "messages": messages,
    }


async def delete_user(db: Database, *, user_id: int) -> None:
    """Delete the account and everything that is the user's (see the module doc), in one transaction.

    UnknownUser when it is gone already; LastAdmin when the user is the only admin who can act.
    """
    async with db.cursor() as cur, cur.transaction():
        await keep_an_admin(cur, user_id, still_admin=False)
        await cur.execute(LOCK_FOR_DELETION, {"user_id": user_id})
        (key,) = await cur.fetchone()
        params = {"user_id": user_id, "deleted_name": DELETED_NAME, "personal": list(PERSONAL_DETAIL_KEYS), "key": key}
        for statement in DELETE_USER:
            await cur.execute(statement, params)
