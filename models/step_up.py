"""Step-up: recording that a session's user proved who they are again, with their password or a passkey."""

from __future__ import annotations

from db.pool import Database
from models.fragments import AUDIT_INSERT, LIVE_SESSION, PASSWORD_ACCEPTED
from models.passkeys import USE_PASSKEY
from models.records import SessionPolicy


def _marked(only_with: str = "") -> str:
    """The CTE `marked`: the caller's session, if it is still live, marked as authenticated now; with `only_with`,
    only when that CTE has a row."""
    source = f"FROM {only_with}" if only_with else ""
    return f"""marked AS (
    UPDATE sessions AS s SET authenticated_at = now() {source}
    WHERE s.id = %(session_id)s::uuid AND s.user_id = %(user_id)s AND {LIVE_SESSION}
    RETURNING s.id
)"""


SELECT_HAS_PASSWORD = "SELECT password_hash IS NOT NULL FROM users WHERE id = %s"

REAUTHENTICATED_BY_PASSWORD = f"""
WITH {_marked()},
{PASSWORD_ACCEPTED},
audit AS (
    {AUDIT_INSERT} SELECT %(user_id)s, 'reauthenticate', 'password', %(address)s, jsonb_build_object('session', id)
    FROM marked
)
SELECT EXISTS (SELECT 1 FROM marked)
"""

# The assertion's counter is taken as at a sign-in; the session is marked only when it was.
REAUTHENTICATED_BY_PASSKEY = f"""
WITH {USE_PASSKEY},
{_marked(only_with="used")},
audit AS (
    {AUDIT_INSERT} SELECT %(user_id)s, 'reauthenticate', 'passkey', %(address)s, jsonb_build_object('session', id)
    FROM marked
)
SELECT EXISTS (SELECT 1 FROM used), EXISTS (SELECT 1 FROM marked)
"""


async def has_password(db: Database, user_id: int) -> bool:
    """Whether the user can sign in with a password."""
    row = await db.fetch_one(SELECT_HAS_PASSWORD, (user_id,))
    return bool(row and row[0])


async def reauthenticated_by_password(
    db: Database,
    *,
    user_id: int,
    session_id: str,
    policy: SessionPolicy,
    throttle_key: str,
    address_key: str,
    new_hash: str | None,
    address: str,
) -> bool:
    """Record a right password (and code) given in this session; False when the session is no longer live."""
    params = {
        "user_id": user_id,
        "session_id": session_id,
        "throttle_key": throttle_key,
        "address_key": address_key,
        "new_hash": new_hash,
        "address": address,
        **policy.params(),
    }
    (marked,) = await db.fetch_one(REAUTHENTICATED_BY_PASSWORD, params)
    return bool(marked)


async def reauthenticated_by_passkey(
    db: Database,
    *,
    user_id: int,
    session_id: str,
    policy: SessionPolicy,
    passkey_id: str,
    sign_count: int,
    backed_up: bool,
    address: str,
) -> tuple[bool, bool]:
    """Record a verified assertion given in this session: whether its counter moved forward (else nothing is
    written), and whether the session was live to be marked."""
    params = {
        "user_id": user_id,
        "session_id": session_id,
        "passkey_id": passkey_id,
        "sign_count": sign_count,
        "backed_up": backed_up,
        "address": address,
        **policy.params(),
    }
    used, marked = await db.fetch_one(REAUTHENTICATED_BY_PASSKEY, params)
    return bool(used), bool(marked)
