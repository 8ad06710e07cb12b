"""SQL pieces that several statements share, written once: the throttle window, the audit insert, the notice."""

from __future__ import annotations

from db.events import CHANNEL

# A throttle row `t` counts hits within a window of %(window)s seconds that starts at its first hit.
WINDOW_OVER = "t.window_start < now() - make_interval(secs => %(window)s)"
HITS_IN_WINDOW = f"CASE WHEN {WINDOW_OVER} THEN 1 ELSE t.hits + 1 END"
COUNT_IN_WINDOW = f"""hits = {HITS_IN_WINDOW},
    window_start = CASE WHEN {WINDOW_OVER} THEN now() ELSE t.window_start END"""

# The password proved right (a sign-in, a password change): the account's failures are cleared, and the attempt,
# counted before it was evaluated, comes back to the address, whose counter keeps only failures. Two CTEs.
PASSWORD_PROVED = """cleared AS (DELETE FROM throttle WHERE key = %(throttle_key)s),
refunded AS (UPDATE throttle SET hits = greatest(hits - 1, 0) WHERE key = %(address_key)s)"""

# Every audit entry goes through these columns.
AUDIT_INSERT = "INSERT INTO auth_events (user_id, event, kind, address, detail)"

# Announce %(notice)s to every listening worker and server, in the transaction of the change it describes.
NOTIFY = f"pg_notify('{CHANNEL}', %(notice)s)"

# Timestamps as the contract writes them (ISO 8601, UTC, microseconds), formatted by Postgres.
ISO_UTC = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""
