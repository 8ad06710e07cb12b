"""Throttle counters kept in Postgres, so every worker and server counts the same attempts."""

from __future__ import annotations

from db.pool import Database
from models.fragments import COUNT_IN_WINDOW, HITS_IN_WINDOW, PASSWORD_PROVED
from settings import THROTTLE_WINDOW_MAX

# Count an attempt against each key before the work it guards (the password hash, the one-time code), so a burst
# gets no more tries than the limit: the attempts past it are refused without being evaluated. A key reaching its
# limit is locked for `lockout` seconds (a lock is not extended by the attempts it refuses). Returns, per key, the
# seconds to wait when this attempt is past the limit. Stale counters of other keys are purged a few at a time: those
# untouched for longer than any window (not this attempt's window: a sign-up counter outlives a login's), passing over
# those another statement holds, since two purges locking the same rows in different orders would deadlock.
# The two CTEs are shared with statements that do their work in the same round trip (models/email.py).
CLAIM_CTES = f"""
counted AS (
    INSERT INTO throttle AS t (key, hits, max_hits, window_start, locked_until)
    SELECT key, 1, max_hits, now(), CASE WHEN max_hits <= 1 THEN now() + make_interval(secs => %(lockout)s) END
    FROM unnest(%(keys)s::text[], %(limits)s::int[]) AS limits (key, max_hits)
    ON CONFLICT (key) DO UPDATE SET
        {COUNT_IN_WINDOW},
        max_hits = EXCLUDED.max_hits,
        locked_until = CASE WHEN t.locked_until > now() THEN t.locked_until
                            WHEN {HITS_IN_WINDOW} >= EXCLUDED.max_hits THEN now() + make_interval(secs => %(lockout)s)
                            ELSE t.locked_until END
    RETURNING CASE WHEN hits > max_hits
                   THEN extract(epoch FROM coalesce(locked_until, now()) - now())::float8 END AS wait
),
purged AS (
    DELETE FROM throttle WHERE key IN (
        SELECT key FROM throttle AS t
        WHERE t.window_start < now() - make_interval(secs => {THROTTLE_WINDOW_MAX})
          AND coalesce(locked_until, now()) <= now() AND key <> ALL(%(keys)s)
        ORDER BY window_start LIMIT 50 FOR UPDATE SKIP LOCKED
    )
)"""
CLAIM_ATTEMPT = f"WITH {CLAIM_CTES}\nSELECT max(wait) FROM counted"

# Count one attempt (successful or not) against a rate key; the count in the current window and its age.
COUNT_ATTEMPT = f"""
INSERT INTO throttle AS t (key, hits, max_hits, window_start) VALUES (%(key)s, 1, 0, now())
ON CONFLICT (key) DO UPDATE SET {COUNT_IN_WINDOW}
RETURNING hits, extract(epoch FROM now() - window_start)::float8
"""


async def claim_attempt(db: Database, limits: dict[str, int], *, window: int, lockout: int) -> float | None:
    """Count one attempt against each key; the seconds to wait when it is past a key's limit, else None."""
    params = {"keys": list(limits), "limits": list(limits.values()), "window": window, "lockout": lockout}
    (wait,) = await db.fetch_one(CLAIM_ATTEMPT, params)
    return None if wait is None else max(float(wait), 1.0)


async def count_attempt(db: Database, key: str, *, window: int) -> tuple[int, float]:
    """Count one attempt against `key`; returns the attempts in this window and the window's age in seconds."""
    hits, age = await db.fetch_one(COUNT_ATTEMPT, {"key": key, "window": window})
    return int(hits), float(age)


# A right password that signs nobody in (the account is banned) settles the counters as a sign-in would: a ban must not
# leave the account locked out after it ends.
SETTLE_PASSWORD = f"WITH {PASSWORD_PROVED} SELECT 1"


async def settle_password(db: Database, *, throttle_key: str, address_key: str) -> None:
    """The right password was given: clear the account's failures and give the address its attempt back."""
    await db.execute(SETTLE_PASSWORD, {"throttle_key": throttle_key, "address_key": address_key})
