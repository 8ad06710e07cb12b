"""Throttle counters kept in Postgres, so every worker and server counts the same attempts."""

from __future__ import annotations

import orjson

from db.pool import Database
from models.fragments import AUDIT_INSERT, COUNT_IN_WINDOW, HITS_IN_WINDOW, WINDOW_OVER

# Count a failure against each key; a key reaching its limit within the window is locked for `lockout` seconds.
# Stale counters of other keys are purged a few at a time on the way.
RECORD_FAILURE = f"""
WITH counted AS (
    INSERT INTO throttle AS t (key, hits, max_hits, window_start, locked_until)
    SELECT key, 1, max_hits, now(), CASE WHEN max_hits <= 1 THEN now() + make_interval(secs => %(lockout)s) END
    FROM unnest(%(keys)s::text[], %(limits)s::int[]) AS limits (key, max_hits)
    ON CONFLICT (key) DO UPDATE SET
        {COUNT_IN_WINDOW},
        max_hits = EXCLUDED.max_hits,
        locked_until = CASE WHEN {HITS_IN_WINDOW} >= EXCLUDED.max_hits
                            THEN now() + make_interval(secs => %(lockout)s) ELSE t.locked_until END
    RETURNING key
),
purged AS (
    DELETE FROM throttle WHERE key IN (
        SELECT key FROM throttle AS t
        WHERE {WINDOW_OVER} AND coalesce(locked_until, now()) <= now() AND key <> ALL(%(keys)s)
        ORDER BY window_start LIMIT 50
    )
),
audit AS (
    {AUDIT_INSERT} VALUES (%(user_id)s, 'sign_in_failed', 'password', %(address)s, %(detail)s::jsonb)
)
SELECT count(*) FROM counted
"""

# Count one attempt (successful or not) against a rate key; the count in the current window and its age.
COUNT_ATTEMPT = f"""
INSERT INTO throttle AS t (key, hits, max_hits, window_start) VALUES (%(key)s, 1, 0, now())
ON CONFLICT (key) DO UPDATE SET {COUNT_IN_WINDOW}
RETURNING hits, extract(epoch FROM now() - window_start)::float8
"""


async def record_failures(
    db: Database,
    limits: dict[str, int],
    *,
    window: int,
    lockout: int,
    user_id: int | None,
    address: str,
    reason: str,
) -> None:
    """Count a failed password sign-in against each key (keys reaching their limit get locked) and audit it."""
    await db.execute(
        RECORD_FAILURE,
        {
            "keys": list(limits),
            "limits": list(limits.values()),
            "window": window,
            "lockout": lockout,
            "user_id": user_id,
            "address": address,
            "detail": orjson.dumps({"reason": reason}).decode(),
        },
    )


async def count_attempt(db: Database, key: str, *, window: int) -> tuple[int, float]:
    """Count one attempt against `key`; returns the attempts in this window and the window's age in seconds."""
    hits, age = await db.fetch_one(COUNT_ATTEMPT, {"key": key, "window": window})
    return int(hits), float(age)
