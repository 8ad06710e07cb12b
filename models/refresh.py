"""Refresh tokens: rotation within its session, the racing-refresh grace, reuse detection and the per-session rate.

A rotation holds its session's row (FOR NO KEY UPDATE) from the first statement to the commit: rotations of one
session take turns, and an ending of the session (models/sessions.py) waits for the one in flight and then drops
what it wrote. Each statement after the lock sees the state as it is once the lock is held.

Rotated tokens are kept while reuse detection needs them: until they expire (an expired token is refused before
reuse is looked for) or their session ends (which deletes all its tokens). Each rotation prunes a few expired rows,
and REFRESH_MAX_PER_SESSION bounds how many rotations, and so rows, a session can make.
"""

from __future__ import annotations

from collections.abc import Callable

from db.pool import Database
from mail.messages import Letter
from models.fragments import AUDIT_INSERT, LIVE_SESSION
from models.records import Ending, Refreshed, SessionPolicy, User
from models.sessions import end_session

LOCK_SESSION_OF_REFRESH = """
SELECT id FROM sessions WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = %(token_hash)s)
FOR NO KEY UPDATE
"""

WINDOW_OVER = "s.refresh_window_start < now() - make_interval(secs => %(window)s)"

SELECT_REFRESH = f"""
SELECT s.id::text, s.user_id, users.username, users.role,
       t.expires_at > now() AND {LIVE_SESSION} AND users.deleted_at IS NULL,
       extract(epoch FROM now() - t.rotated_at)::float8, t.rotated_by,
       extract(epoch FROM s.expires_at - now())::float8,
       CASE WHEN {WINDOW_OVER} THEN 0 ELSE s.refreshes END,
       extract(epoch FROM now() - s.refresh_window_start)::float8,
       s.ip, coalesce(users.banned_until > now(), false)
FROM refresh_tokens AS t JOIN sessions AS s ON s.id = t.session_id JOIN users ON users.id = s.user_id
WHERE t.token_hash = %(token_hash)s
"""

# A refresh is a use of the session, from where the client is now; it is audited only from a new address (the
# session's last use and address already say when and where it was refreshed).
ROTATE_REFRESH = f"""
WITH rotated AS (
    UPDATE refresh_tokens SET rotated_at = now(), rotated_by = %(address)s WHERE token_hash = %(token_hash)s
),
counted AS (
    UPDATE sessions AS s SET last_seen_at = now(), ip = %(address)s,
        refreshes = CASE WHEN {WINDOW_OVER} THEN 1 ELSE s.refreshes + 1 END,
        refresh_window_start = CASE WHEN {WINDOW_OVER} THEN now() ELSE s.refresh_window_start END
    WHERE s.id = %(session_id)s::uuid
    RETURNING s.expires_at
),
audit AS (
    {AUDIT_INSERT}
    SELECT %(user_id)s, 'refresh', NULL, %(address)s,
           jsonb_build_object('session', %(session_id)s::text, 'previous_address', %(previous_address)s::text)
    WHERE %(previous_address)s::text IS DISTINCT FROM %(address)s::text
),
pruned AS (
    DELETE FROM refresh_tokens WHERE token_hash IN (
        SELECT token_hash FROM refresh_tokens WHERE expires_at < now()
        ORDER BY expires_at LIMIT 20 FOR UPDATE SKIP LOCKED
    )
)
INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
SELECT %(successor_hash)s, %(session_id)s::uuid, least(expires_at, now() + make_interval(secs => %(lifetime)s))
FROM counted
"""

SUCCESSOR_IS_CURRENT = """
SELECT 1 FROM refresh_tokens WHERE token_hash = %(successor_hash)s AND rotated_at IS NULL AND expires_at > now()
"""


async def rotate_refresh_token(
    db: Database,
    *,
    token_hash: bytes,
    successor_hash: bytes,
    lifetime: int,
    grace: float,
    max_per_window: int,
    window: int,
    policy: SessionPolicy,
    address: str,
    notice_for: Callable[[str], str],
    reuse_notice: Letter,
) -> Refreshed:
    """Rotate a refresh token to its successor within its session.

    A token already rotated ends its session (and `reuse_notice` goes to the user), except within `grace` seconds of
    the rotation and from the same address, where it yields the same successor again (racing refreshes). A session
    that rotated `max_per_window` times within `window` seconds is refused (`retry_after`) until the window is over.
    """
    params: dict[str, object] = {
        "token_hash": token_hash,
        "successor_hash": successor_hash,
        "lifetime": lifetime,
        "window": window,
        "address": address,
        **policy.params(),
    }
    async with db.cursor() as cur:
        async with cur.transaction():
            await cur.execute(LOCK_SESSION_OF_REFRESH, params)
            if await cur.fetchone() is None:
                return Refreshed(None, None)
            await cur.execute(SELECT_REFRESH, params)
            row = await cur.fetchone()
            if row is None:
                return Refreshed(None, None)
            session_id, user_id, username, role, usable, rotated_age, rotated_by, expires_in, count, age, ip = row[:11]
            banned = row[11]
            if not usable:
                return Refreshed(None, None)
            if banned:  # (banned in SQL or by manage.py: a ban through the API has ended the session already)
                return Refreshed(None, session_id, banned=True)
            user = User(user_id, username, role)
            if rotated_age is None:
                if count >= max_per_window:
                    return Refreshed(None, session_id, retry_after=max(window - age, 1.0))
                params.update(session_id=session_id, user_id=user_id, previous_address=ip)
                await cur.execute(ROTATE_REFRESH, params)
                return Refreshed(user, session_id, expires_in=expires_in)
            if rotated_age <= grace and rotated_by == address:
                await cur.execute(SUCCESSOR_IS_CURRENT, params)
                if await cur.fetchone() is not None:
                    return Refreshed(user, session_id, expires_in=expires_in)
    # Reuse: the session ends, in a transaction of its own that takes the users row as every ending does.
    ending = Ending("refresh_reuse", "refresh_reuse", address, notice_for, letter=reuse_notice)
    await end_session(db, user_id=user_id, session_id=session_id, ending=ending)
    return Refreshed(None, session_id, reuse_detected=True)
