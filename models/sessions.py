"""Sessions: opening one at sign-in, listing, last use, step-up time, and ending them with all their credentials.

Revocations of one user meet at the users row, taken first FOR NO KEY UPDATE, so two of them never lock the same
sessions in different orders; each then locks the session rows it ends. A refresh holds its session's row while it
rotates (models/refresh.py): an ending waits for the rotation in flight, then (in a statement of its own, which sees
what the rotation wrote) drops every credential of the session, the successor included; a refresh that comes later
waits for the ending and then finds its session ended. Whatever the timing, once an ending has answered, no refresh
of that session succeeds.
"""

from __future__ import annotations

import orjson

from db.pool import Cursor, Database
from models.fragments import (
    AUDIT_INSERT,
    CHANNEL_LITERAL,
    ISO_UTC,
    LIVE_SESSION,
    NOTIFY,
    PASSWORD_PROVED,
    PURGE_SESSIONS,
    SESSION_INSERT,
    SESSION_VALUES,
    SIGNED_IN_DEVICE,
    USER_IN_GOOD_STANDING,
)
from models.mail import NOTICE_INSERT, letter_params
from models.records import ChatterIdOwner, Ending, NewRefreshToken, NewSession, Revocations, SessionPolicy

# Whom a chatterID acts for: only ids and the expiry; who the user is now (name, role, ban) is the Directory's.
SELECT_CHATTER_ID_OWNER = """
SELECT s.user_id, s.id::text, extract(epoch FROM s.chatter_id_expires_at)::float8
FROM sessions AS s
WHERE s.chatter_id_hash = %s AND s.chatter_id_expires_at > now() AND s.ended_at IS NULL
"""

# Everything a successful password sign-in writes, in one round trip.
COMPLETE_LOGIN = f"""
WITH {PASSWORD_PROVED},
-- Held until commit: a ban or deletion waits for this sign-in (then ends its session), or this waits for it and
-- opens nothing.
admitted AS (SELECT id FROM users WHERE id = %(user_id)s AND {USER_IN_GOOD_STANDING} FOR SHARE),
rehashed AS (
    UPDATE users SET password_hash = %(new_hash)s FROM admitted
    WHERE users.id = admitted.id AND %(new_hash)s::text IS NOT NULL
),
opened AS ({SESSION_INSERT} SELECT {SESSION_VALUES.format(user_id="id")} FROM admitted RETURNING id, expires_at),
refresh AS (
    INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
    SELECT %(refresh_hash)s, id, least(expires_at, now() + make_interval(secs => %(refresh_lifetime)s)) FROM opened
),
audit AS ({AUDIT_INSERT} SELECT id, 'sign_in', 'password', %(address)s, %(detail)s::jsonb FROM admitted),
{SIGNED_IN_DEVICE.format(user_id="id", source="FROM admitted")},
{PURGE_SESSIONS}
SELECT EXISTS (SELECT 1 FROM admitted)
"""

LOCK_USER_FOR_REVOCATION = "SELECT id FROM users WHERE id = %(user_id)s FOR NO KEY UPDATE"

# The sessions one ending takes: its rows are locked (waiting for a refresh rotating now) and marked ended.
END_ONE = """
UPDATE sessions SET ended_at = now(), end_reason = %(reason)s
WHERE id = %(session_id)s::uuid AND user_id = %(user_id)s AND ended_at IS NULL
RETURNING id::text
"""
# Only live sessions can be named from outside (DELETE /sessions/{id}): an expired one is as good as unknown.
END_ONE_LIVE = f"""
UPDATE sessions AS s SET ended_at = now(), end_reason = %(reason)s
WHERE s.id = %(session_id)s::uuid AND s.user_id = %(user_id)s AND {LIVE_SESSION}
RETURNING s.id::text
"""
END_OTHERS = """
UPDATE sessions SET ended_at = now(), end_reason = %(reason)s
WHERE user_id = %(user_id)s AND ended_at IS NULL AND id IS DISTINCT FROM %(keep)s::uuid
RETURNING id::text
"""

# Then, seeing whatever a rotation that held a session wrote: its credentials go, each ending is audited, and every
# worker and server hears of it in the same transaction.
DROP_SESSION_CREDENTIALS = f"""
WITH ended (id) AS (SELECT unnest(%(ids)s::uuid[])),
chatter_ids AS (
    UPDATE sessions SET chatter_id_hash = NULL, chatter_id_expires_at = NULL
    WHERE id IN (SELECT id FROM ended) AND chatter_id_hash IS NOT NULL
),
tokens AS (DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM ended)),
audit AS (
    {AUDIT_INSERT}
    SELECT %(user_id)s, %(event)s, %(kind)s, %(address)s, jsonb_build_object('session', id) || %(detail)s::jsonb
    FROM ended
)
SELECT pg_notify({CHANNEL_LITERAL}, notice) FROM unnest(%(notices)s::text[]) AS notice
"""
# Notices of many sessions go together, space-separated, this many to a NOTIFY (whose payload holds 8000 bytes).
NOTICES_PER_NOTIFY = 100

# Ending every session of a user also refuses every JWT issued up to the cut-off (those of no session included): the
# users row's trigger tells every worker's Directory, which drops its copy, and its store the user's chatterIDs.
CUT_OFF_TOKENS = "UPDATE users SET tokens_valid_after = greatest(tokens_valid_after, %(cutoff)s) WHERE id = %(user_id)s"

SELECT_SESSIONS = f"""
SELECT s.id::text, s.kind, to_char(s.created_at AT TIME ZONE 'UTC', {ISO_UTC}),
       to_char(s.last_seen_at AT TIME ZONE 'UTC', {ISO_UTC}), s.ip, s.user_agent, s.device
FROM sessions AS s
WHERE s.user_id = %(user_id)s AND {LIVE_SESSION}
ORDER BY s.created_at DESC, s.id
LIMIT %(limit)s
"""

# Last use, at most once per %(interval)s seconds per session whichever worker or server asks: the rows due are
# locked (a session being refreshed or ended right now is passed over: that writes it anyway), written, and every
# asked-for session's last-seen time comes back, so each worker knows when to ask again.
TOUCH_SESSIONS = """
WITH due AS (
    SELECT id FROM sessions
    WHERE id = ANY(%(ids)s::uuid[]) AND ended_at IS NULL
      AND last_seen_at <= now() - make_interval(secs => %(interval)s)
    FOR NO KEY UPDATE SKIP LOCKED
),
touched AS (UPDATE sessions SET last_seen_at = now() FROM due WHERE sessions.id = due.id RETURNING sessions.id)
SELECT id::text, extract(epoch FROM CASE WHEN id IN (SELECT id FROM touched) THEN now() ELSE last_seen_at END)::float8,
       id IN (SELECT id FROM touched)
FROM sessions WHERE id = ANY(%(ids)s::uuid[])
"""

SELECT_TIME_LEFT = f"""
SELECT extract(epoch FROM s.expires_at - now())::float8 FROM sessions AS s
WHERE s.id = %(session_id)s::uuid AND s.user_id = %(user_id)s AND {LIVE_SESSION}
"""

SELECT_AUTHENTICATED_AT = f"""
SELECT extract(epoch FROM s.authenticated_at)::float8 FROM sessions AS s
WHERE s.id = %(session_id)s::uuid AND {LIVE_SESSION}
"""
MARK_AUTHENTICATED = f"""
UPDATE sessions AS s SET authenticated_at = now()
WHERE s.id = %(session_id)s::uuid AND s.user_id = %(user_id)s AND {LIVE_SESSION}
"""

# A JWT without a session (minted before sessions existed) is logged out by its id alone.
REVOKE_TOKEN = f"""
WITH revoked AS (
    INSERT INTO revoked_tokens (jti, expires_at) VALUES (%(jti)s, to_timestamp(%(expires_at)s))
    ON CONFLICT (jti) DO NOTHING
),
audit AS ({AUDIT_INSERT} VALUES (%(user_id)s, 'logout', 'jwt', %(address)s, '{{}}')),
purged AS (
    DELETE FROM revoked_tokens WHERE jti IN (
        SELECT jti FROM revoked_tokens WHERE expires_at < now() ORDER BY expires_at LIMIT 50
    )
)
SELECT {NOTIFY}
"""

SELECT_REVOKED_TOKENS = """
SELECT jti, extract(epoch FROM expires_at)::float8 FROM revoked_tokens WHERE expires_at > now()
"""
SELECT_ENDED_SESSIONS = """
SELECT id::text, extract(epoch FROM ended_at)::float8 FROM sessions WHERE ended_at > to_timestamp(%s)
"""

# What a worker asks while it cannot follow revocations: this JWT logged out, or its session ended.
SELECT_TOKEN_REVOKED = """
SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = %(jti)s)
    OR EXISTS (SELECT 1 FROM sessions WHERE id = %(session_id)s::uuid AND ended_at IS NOT NULL)
"""


def session_params(session: NewSession, policy: SessionPolicy) -> dict[str, object]:
    """The %(session_*)s parameters of SESSION_VALUES and the %(device_*)s of SIGNED_IN_DEVICE, with the policy's."""
    return {
        "session_id": session.id,
        "session_kind": session.kind,
        "session_ip": session.ip,
        "session_user_agent": session.user_agent,
        "session_device": session.device,
        "device_family": session.family,
        "device_network": session.network,
        "device_letter_kind": session.new_device_notice.kind,
        "device_letter_sealed": session.new_device_notice.sealed,
        **policy.params(),
    }


def session_detail(session: NewSession) -> str:
    """The audit detail of a sign-in: the session it opened."""
    return orjson.dumps({"session": session.id}).decode()


async def chatter_id_owner(db: Database, chatter_id_hash: bytes) -> ChatterIdOwner | None:
    """The user and session a live chatterID belongs to, and when it expires; None when it is unknown or over."""
    row = await db.fetch_one(SELECT_CHATTER_ID_OWNER, (chatter_id_hash,))
    return None if row is None else ChatterIdOwner(int(row[0]), str(row[1]), float(row[2]))


async def complete_login(
    db: Database,
    *,
    user_id: int,
    throttle_key: str,
    address_key: str,
    new_hash: str | None,
    session: NewSession,
    policy: SessionPolicy,
    refresh: NewRefreshToken,
    address: str,
) -> bool:
    """Record a successful password sign-in: clear the account's failures, rehash, open a session, audit.

    False when the user was banned or deleted meanwhile: then no session was opened.
    """
    (admitted,) = await db.fetch_one(
        COMPLETE_LOGIN,
        {
            "user_id": user_id,
            "throttle_key": throttle_key,
            "address_key": address_key,
            "new_hash": new_hash,
            "refresh_hash": refresh.token_hash,
            "refresh_lifetime": refresh.lifetime,
            "address": address,
            "detail": session_detail(session),
            **session_params(session, policy),
        },
    )
    return bool(admitted)


async def list_sessions(db: Database, *, user_id: int, policy: SessionPolicy, limit: int) -> list[dict[str, str]]:
    """The user's live sessions, newest first, as the contract lists them (without `current`)."""
    rows = await db.fetch_all(SELECT_SESSIONS, {"user_id": user_id, "limit": limit, **policy.params()})
    keys = ("id", "kind", "created_at", "last_seen_at", "ip", "user_agent", "device")
    return [dict(zip(keys, row, strict=True)) for row in rows]


async def end_session(
    db: Database, *, user_id: int, session_id: str, ending: Ending, policy: SessionPolicy | None = None
) -> bool:
    """End one of the user's sessions and every credential of it, everywhere; False when it is not theirs or over.

    With `policy`, only a live session (not past its idle or absolute limit) counts.
    """
    params: dict[str, object] = {"user_id": user_id, "session_id": session_id, "reason": ending.reason}
    if policy is not None:
        params.update(policy.params())
    return bool(await _end(db, END_ONE if policy is None else END_ONE_LIVE, params, ending))


async def end_other_sessions(db: Database, *, user_id: int, keep_session_id: str | None, ending: Ending) -> list[str]:
    """End every session of the user but `keep_session_id` ("sign out everywhere else").

    Returns the ids ended; each is audited and announced to every worker and server.
    """
    params: dict[str, object] = {"user_id": user_id, "keep": keep_session_id, "reason": ending.reason}
    return await _end(db, END_OTHERS, params, ending)


async def _end(db: Database, statement: str, params: dict[str, object], ending: Ending) -> list[str]:
    """Lock the user's row, end the sessions `statement` names, then drop their credentials (see the module doc)."""
    async with db.cursor() as cur, cur.transaction():
        await cur.execute(LOCK_USER_FOR_REVOCATION, params)
        return await _end_in(cur, statement, params, ending)


async def _end_in(cur: Cursor, statement: str, params: dict[str, object], ending: Ending) -> list[str]:
    await cur.execute(statement, params)
    ended = [str(row[0]) for row in await cur.fetchall()]
    if ended:
        await cur.execute(
            DROP_SESSION_CREDENTIALS,
            {
                "ids": ended,
                "user_id": params["user_id"],
                "event": ending.event,
                "kind": ending.kind,
                "address": ending.address,
                "detail": orjson.dumps({"reason": ending.reason}).decode(),
                "notices": [
                    " ".join(map(ending.notice_for, ended[start : start + NOTICES_PER_NOTIFY]))
                    for start in range(0, len(ended), NOTICES_PER_NOTIFY)
                ],
            },
        )
        if ending.letter is not None:
            await cur.execute(NOTICE_INSERT, {"user_id": params["user_id"], **letter_params(ending.letter)})
    return ended


async def end_other_sessions_in(cur: Cursor, *, user_id: int, keep_session_id: str | None, ending: Ending) -> list[str]:
    """`end_other_sessions` within the caller's transaction, which has taken the user's row first (FOR NO KEY UPDATE,
    as LOCK_USER_FOR_REVOCATION does): so a change and the endings it causes commit together."""
    params: dict[str, object] = {"user_id": user_id, "keep": keep_session_id, "reason": ending.reason}
    return await _end_in(cur, END_OTHERS, params, ending)


async def end_all_sessions_in(cur: Cursor, *, user_id: int, cutoff: float, ending: Ending) -> list[str]:
    """`end_all_sessions` within the caller's transaction, which has taken the user's row first."""
    await cur.execute(CUT_OFF_TOKENS, {"user_id": user_id, "cutoff": cutoff})
    return await end_other_sessions_in(cur, user_id=user_id, keep_session_id=None, ending=ending)


async def end_all_sessions(db: Database, *, user_id: int, cutoff: float, ending: Ending) -> list[str]:
    """Log a user out everywhere: every session ends as `end_session` ends one (a refresh rotating one right now
    included), and every JWT issued up to `cutoff` is refused. Returns the ids of the sessions ended."""
    async with db.cursor() as cur, cur.transaction():
        await cur.execute(LOCK_USER_FOR_REVOCATION, {"user_id": user_id})
        return await end_all_sessions_in(cur, user_id=user_id, cutoff=cutoff, ending=ending)


async def touch_sessions(db: Database, session_ids: list[str], *, interval: float) -> tuple[dict[str, float], int]:
    """Record use of these sessions where the last record is `interval` seconds old or more.

    Returns each session's last-seen time (epoch seconds) as it now stands, and how many rows were written.
    """
    rows = await db.fetch_all(TOUCH_SESSIONS, {"ids": session_ids, "interval": interval})
    return {str(row[0]): float(row[1]) for row in rows}, sum(1 for row in rows if row[2])


async def session_time_left(db: Database, *, session_id: str, user_id: int, policy: SessionPolicy) -> float | None:
    """Seconds until this live session of the user reaches its absolute limit; None when it is not live."""
    row = await db.fetch_one(SELECT_TIME_LEFT, {"session_id": session_id, "user_id": user_id, **policy.params()})
    return None if row is None else float(row[0])


async def session_authenticated_at(db: Database, *, session_id: str, policy: SessionPolicy) -> float | None:
    """When the user last proved who they are in this live session (epoch seconds); None when it is not live."""
    row = await db.fetch_one(SELECT_AUTHENTICATED_AT, {"session_id": session_id, **policy.params()})
    return None if row is None else float(row[0])


async def mark_authenticated(db: Database, *, session_id: str, user_id: int, policy: SessionPolicy) -> bool:
    """Record that the user proved who they are in this session just now (step-up); False when it is not live."""
    params = {"session_id": session_id, "user_id": user_id, **policy.params()}
    return await db.execute(MARK_AUTHENTICATED, params) > 0


async def token_revoked(db: Database, *, jti: str, session_id: str | None) -> bool:
    """True when this JWT was logged out or its session ended."""
    (revoked,) = await db.fetch_one(SELECT_TOKEN_REVOKED, {"jti": jti, "session_id": session_id})
    return bool(revoked)


async def revoke_token(db: Database, *, jti: str, expires_at: float, user_id: int, address: str, notice: str) -> None:
    """Refuse a JWT that belongs to no session from now on, everywhere."""
    params = {"jti": jti, "expires_at": expires_at, "user_id": user_id, "address": address, "notice": notice}
    await db.execute(REVOKE_TOKEN, params)


async def load_revocations(db: Database, *, since: float) -> Revocations:
    """Logged-out JWT ids (with their expiry), and the sessions ended since `since` (with when)."""
    async with db.cursor() as cur:
        await cur.execute(SELECT_REVOKED_TOKENS)
        jtis = {jti: expires for jti, expires in await cur.fetchall()}
        await cur.execute(SELECT_ENDED_SESSIONS, (since,))
        sessions = {session_id: at for session_id, at in await cur.fetchall()}
    return Revocations(jtis, sessions)
