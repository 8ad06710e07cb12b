-- Sessions: one per sign-in, owning every credential it returned. Its chatterID and refresh tokens point to it, its
-- access JWTs carry its id as `sid`; ending it ends them all. Refresh-token families become sessions.

CREATE TABLE sessions (
    -- Opaque and listed (GET /sessions): neither a credential nor a hash of one.
    id                   uuid PRIMARY KEY,
    user_id              bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind                 text NOT NULL CHECK (kind IN ('password', 'google', 'google_web', 'passkey')),
    created_at           timestamptz NOT NULL DEFAULT now(),
    -- Written at most once a minute (auth/activity.py), by a refresh, and at sign-in; the idle timeout counts from it.
    last_seen_at         timestamptz NOT NULL DEFAULT now(),
    -- When the user last proved who they are in this session (sign-in; step-up later).
    authenticated_at     timestamptz NOT NULL DEFAULT now(),
    -- The absolute limit: created_at + SESSION_MAX_AGE, fixed when the session opens.
    expires_at           timestamptz NOT NULL,
    ip                   text,
    user_agent           text,
    device               text,
    -- Refresh rotations counted in a window that starts at the first one (REFRESH_MAX_PER_SESSION).
    refreshes            integer NOT NULL DEFAULT 0,
    refresh_window_start timestamptz NOT NULL DEFAULT now(),
    ended_at             timestamptz,
    end_reason           text
);
CREATE INDEX sessions_user_id ON sessions (user_id);
-- What the purge looks for, a bounded batch at a time (models/sessions.py): past the absolute limit, idle, or ended
-- long enough ago that no JWT of theirs is left.
CREATE INDEX sessions_expires_at ON sessions (expires_at) WHERE ended_at IS NULL;
CREATE INDEX sessions_last_seen_at ON sessions (last_seen_at) WHERE ended_at IS NULL;
CREATE INDEX sessions_ended_at ON sessions (ended_at) WHERE ended_at IS NOT NULL;

-- Existing refresh families become sessions: a password user's from /login, a Google user's from /adduser/.
ALTER TABLE refresh_tokens RENAME COLUMN family_id TO session_id;
ALTER INDEX refresh_tokens_family_id RENAME TO refresh_tokens_session_id;
INSERT INTO sessions (id, user_id, kind, created_at, last_seen_at, authenticated_at, expires_at, ended_at, end_reason)
SELECT tokens.session_id, tokens.user_id,
       CASE WHEN users.google_sub IS NULL THEN 'password' ELSE 'google' END,
       min(tokens.issued_at), max(tokens.issued_at), min(tokens.issued_at), min(tokens.issued_at) + interval '90 days',
       CASE WHEN bool_and(tokens.revoked_at IS NOT NULL) THEN max(tokens.revoked_at) END,
       CASE WHEN bool_and(tokens.revoked_at IS NOT NULL) THEN 'revoked' END
FROM refresh_tokens AS tokens JOIN users ON users.id = tokens.user_id
GROUP BY tokens.session_id, tokens.user_id, users.google_sub;
-- A token of an ended session is refused whatever its row says: only live sessions keep theirs.
DELETE FROM refresh_tokens
WHERE revoked_at IS NOT NULL OR session_id IN (SELECT id FROM sessions WHERE ended_at IS NOT NULL);
DROP INDEX refresh_tokens_revoked_at;
ALTER TABLE refresh_tokens DROP COLUMN revoked_at, DROP COLUMN user_id,
    ADD FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE;

-- Each live chatterID becomes a session of its own (kind google: /adduser/ made it).
DELETE FROM chatter_sessions WHERE expires_at <= now();
ALTER TABLE chatter_sessions ADD COLUMN session_id uuid;
UPDATE chatter_sessions SET session_id = gen_random_uuid();
INSERT INTO sessions (id, user_id, kind, expires_at)
SELECT session_id, user_id, 'google', now() + interval '90 days' FROM chatter_sessions;
DROP INDEX chatter_sessions_user_id;
ALTER TABLE chatter_sessions DROP COLUMN user_id, ALTER COLUMN session_id SET NOT NULL,
    ADD FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE;
CREATE INDEX chatter_sessions_session_id ON chatter_sessions (session_id);
