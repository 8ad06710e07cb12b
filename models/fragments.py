"""SQL pieces that several statements share, written once: the throttle window, the audit insert, the notice."""

from __future__ import annotations

from db.events import CHANNEL

# A throttle row `t` counts hits within a window of %(window)s seconds that starts at its first hit.
WINDOW_OVER = "t.window_start < now() - make_interval(secs => %(window)s)"
HITS_IN_WINDOW = f"CASE WHEN {WINDOW_OVER} THEN 1 ELSE t.hits + 1 END"
COUNT_IN_WINDOW = f"""hits = {HITS_IN_WINDOW},
    window_start = CASE WHEN {WINDOW_OVER} THEN now() ELSE t.window_start END"""

# One attempt counted against %(rate_key)s in a window of %(window)s seconds (nothing counted when %(limit)s is 0), as
# two CTEs: `attempt` (the count and the window's age) and `allowed` (one row while within the limit). What a statement
# writes only FROM allowed is not written past the limit.
RATE_ATTEMPT = f"""attempt AS (
    INSERT INTO throttle AS t (key, hits, max_hits, window_start)
    SELECT %(rate_key)s, 1, 0, now() WHERE %(limit)s > 0
    ON CONFLICT (key) DO UPDATE SET {COUNT_IN_WINDOW}
    RETURNING hits, extract(epoch FROM now() - window_start)::float8 AS age
),
allowed AS (SELECT 1 WHERE %(limit)s = 0 OR (SELECT hits FROM attempt) <= %(limit)s)"""

# A user row `users` whose credentials may still act (not deleted, not banned): checked again where a write happens.
USER_IN_GOOD_STANDING = "users.deleted_at IS NULL AND (users.banned_until IS NULL OR users.banned_until <= now())"

# Every audit entry goes through these columns.
AUDIT_INSERT = "INSERT INTO auth_events (user_id, event, kind, address, detail)"

# Announce %(notice)s to every listening worker and server, in the transaction of the change it describes.
NOTIFY = f"pg_notify('{CHANNEL}', %(notice)s)"

# Timestamps as the contract writes them (ISO 8601, UTC, microseconds), formatted by Postgres.
ISO_UTC = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""
