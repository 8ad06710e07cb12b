-- A chatterID belongs to exactly one session (the /adduser/ sign-in that issued it), so it lives on that session's
-- row: a sign-in writes one row fewer (the chatterID's own row cost three index entries and a foreign-key check), and
-- a chatterID goes when its session is purged. Only a SHA-256 of the credential is kept, as before.
ALTER TABLE sessions ADD COLUMN chatter_id_hash bytea, ADD COLUMN chatter_id_expires_at timestamptz,
    ADD CONSTRAINT sessions_chatter_id_expiry CHECK ((chatter_id_hash IS NULL) = (chatter_id_expires_at IS NULL));

UPDATE sessions SET chatter_id_hash = c.id_hash, chatter_id_expires_at = c.expires_at
FROM chatter_sessions AS c
WHERE c.session_id = sessions.id AND c.expires_at > now() AND sessions.ended_at IS NULL;

CREATE UNIQUE INDEX sessions_chatter_id_hash ON sessions (chatter_id_hash) WHERE chatter_id_hash IS NOT NULL;

-- chatter_sessions stays until a later migration drops it: servers of the previous version, still running during a
-- rolling restart, read and write it (their chatterIDs live 5 minutes at most), and a logout or ban they handle deletes
-- from it. Nothing of this version reads it.
