"""SQL pieces that several statements share, written once: the throttle window, the audit insert, the notice."""

from __future__ import annotations

from db.events import CHANNEL

# A throttle row `t` counts hits within a window of %(window)s seconds that starts at its first hit.
WINDOW_OVER = "t.window_start < now() - make_interval(secs => %(window)s)"
HITS_IN_WINDOW = f"CASE WHEN {WINDOW_OVER} THEN 1 ELSE t.hits + 1 END"
COUNT_IN_WINDOW = f"""hits = {HITS_IN_WINDOW},
    window_start = CASE WHEN {WINDOW_OVER} THEN now() ELSE t.window_start END"""

# The password proved right (a sign-in, a step-up, a password change): the account's failures are cleared, and the
# attempt, counted before it was evaluated, comes back to the address, whose counter keeps only failures. Two CTEs.
PASSWORD_PROVED = """cleared AS (DELETE FROM throttle WHERE key = %(throttle_key)s),
refunded AS (UPDATE throttle SET hits = greatest(hits - 1, 0) WHERE key = %(address_key)s)"""

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

# What a right password does, at step-up and at a password change (with %(new_hash)s None: the new password is set
# after): the counters settle (PASSWORD_PROVED), and the hash is renewed when its parameters changed. (A sign-in renews
# it only once the user is known to be admitted: models/sessions.py.)
PASSWORD_ACCEPTED = f"""{PASSWORD_PROVED},
rehashed AS (
    UPDATE users SET password_hash = %(new_hash)s WHERE id = %(user_id)s AND %(new_hash)s::text IS NOT NULL
)"""

# Every audit entry goes through these columns.
AUDIT_INSERT = "INSERT INTO auth_events (user_id, event, kind, address, detail)"

# Announce %(notice)s to every listening worker and server, in the transaction of the change it describes.
CHANNEL_LITERAL = f"'{CHANNEL}'"
NOTIFY = f"pg_notify({CHANNEL_LITERAL}, %(notice)s)"

# Timestamps as the contract writes them (ISO 8601, UTC, microseconds), formatted by Postgres.
ISO_UTC = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""

# A session `s` that still counts: not ended, within its absolute limit, and used within %(idle_timeout)s seconds.
LIVE_SESSION = (
    "s.ended_at IS NULL AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => %(idle_timeout)s)"
)

# Opening a session: the columns, and their values for a user id given as SQL (%(session_*)s from session_params()).
SESSION_COLUMNS = "id, user_id, kind, ip, user_agent, device, expires_at"
SESSION_INSERT = f"INSERT INTO sessions ({SESSION_COLUMNS})"
# An /adduser/ session also carries its chatterID: a hash, and when it expires (%(id_hash)s, %(lifetime)s).
SESSION_WITH_CHATTER_ID_INSERT = f"INSERT INTO sessions ({SESSION_COLUMNS}, chatter_id_hash, chatter_id_expires_at)"
CHATTER_ID_VALUES = "%(id_hash)s, now() + make_interval(secs => %(lifetime)s)"
SESSION_VALUES = (
    "%(session_id)s::uuid, {user_id}, %(session_kind)s, %(session_ip)s, %(session_user_agent)s, %(session_device)s,"
    " now() + make_interval(secs => %(session_max_age)s)"
)

# Sessions past their absolute limit, idle, or ended longer ago than any of their JWTs can live are deleted with
# their credentials, a bounded batch per sign-in, each found through its own index. The three sets are disjoint (one
# statement must not delete a row twice); SKIP LOCKED passes over a session being refreshed or ended right now.
PURGE_BATCH = 20
PURGE_SESSIONS = f"""
purged_expired AS (
    DELETE FROM sessions WHERE id IN (
        SELECT id FROM sessions WHERE ended_at IS NULL AND expires_at < now()
        ORDER BY expires_at LIMIT {PURGE_BATCH} FOR UPDATE SKIP LOCKED
    )
),
purged_idle AS (
    DELETE FROM sessions WHERE id IN (
        SELECT id FROM sessions
        WHERE ended_at IS NULL AND last_seen_at < now() - make_interval(secs => %(idle_timeout)s)
          AND expires_at >= now()
        ORDER BY last_seen_at LIMIT {PURGE_BATCH} FOR UPDATE SKIP LOCKED
    )
),
purged_ended AS (
    DELETE FROM sessions WHERE id IN (
        SELECT id FROM sessions WHERE ended_at < now() - make_interval(secs => %(keep_ended)s)
        ORDER BY ended_at LIMIT {PURGE_BATCH} FOR UPDATE SKIP LOCKED
    )
)"""

# A ban's end as the contract writes it: ISO 8601 UTC, "infinity" for a ban without end, null when not banned now.
BANNED_UNTIL = f"""CASE WHEN users.banned_until = 'infinity' THEN 'infinity'
    WHEN users.banned_until > now() THEN to_char(users.banned_until AT TIME ZONE 'UTC', {ISO_UTC}) END"""

# Every sign-in records its device for its user: the family and network auth/devices.py makes of its User-Agent and
# address (%(device_*)s from session_params()). A device never seen, or not within KNOWN_DEVICE_DAYS, gets the user the
# new-device notice at their verified address, unless they had no device recorded at all: their first sign-in (or
# their first since devices were recorded). `previous_seen_at` is the sign-in before, read from the locked row, so of
# two racing sign-ins from one new device only the first tells. Devices unseen that long are forgotten a bounded batch
# per sign-in, except each user's latest, so a user is never taken for new again; rows of the user signing in are
# left to the next sign-in (one statement must not change a row twice). Give it the user's id as SQL and the FROM
# clause it is read from.
# A device seen within DEVICE_SEEN_EVERY seconds is not written again: days are what the notices count, and a device
# signing in again and again (an app's every launch) would otherwise rewrite its row each time. Such a sign-in returns
# no row, so it tells nobody, as a device seen that recently never would.
KNOWN_DEVICE_DAYS = 180
DEVICE_SEEN_EVERY = 3600
SIGNED_IN_DEVICE = f"""
signed_in_device AS (
    INSERT INTO known_devices AS k (user_id, family, network)
    SELECT {{user_id}}, %(device_family)s, %(device_network)s {{source}}
    ON CONFLICT (user_id, family, network) DO UPDATE SET previous_seen_at = k.last_seen_at, last_seen_at = now()
    WHERE k.last_seen_at < now() - make_interval(secs => {DEVICE_SEEN_EVERY})
    RETURNING k.user_id, k.previous_seen_at
),
new_device_notice AS (
    INSERT INTO mail_outbox (user_id, recipient, kind, sealed)
    SELECT users.id, users.email, %(device_letter_kind)s, %(device_letter_sealed)s
    FROM signed_in_device AS device JOIN users ON users.id = device.user_id
    WHERE users.email_verified_at IS NOT NULL
      AND (device.previous_seen_at IS NULL
           OR device.previous_seen_at < now() - make_interval(days => {KNOWN_DEVICE_DAYS}))
      AND EXISTS (SELECT 1 FROM known_devices AS earlier WHERE earlier.user_id = device.user_id)
),
forgotten_devices AS (
    DELETE FROM known_devices WHERE (user_id, family, network) IN (
        SELECT old.user_id, old.family, old.network FROM known_devices AS old
        WHERE old.last_seen_at < now() - make_interval(days => {KNOWN_DEVICE_DAYS})
          AND old.user_id NOT IN (SELECT user_id FROM signed_in_device)
          AND EXISTS (SELECT 1 FROM known_devices AS newer
                      WHERE newer.user_id = old.user_id AND newer.last_seen_at > old.last_seen_at)
        ORDER BY old.last_seen_at LIMIT {PURGE_BATCH} FOR UPDATE OF old SKIP LOCKED
    )
)"""
