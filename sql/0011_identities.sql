-- Identities: a user may have a password, any number of Google accounts and passkeys, rather than exactly one kind.
-- Bans carry a reason; an account can be deleted while its audit history (without personal data) stays.

-- One row per linked Google account (its `sub`); a Google account is one user's at most.
CREATE TABLE google_identities (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sub        text NOT NULL UNIQUE,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      text,  -- the Google account's address as its last ID token said (shown in the identity list)
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX google_identities_user_id ON google_identities (user_id);

INSERT INTO google_identities (sub, user_id, email, created_at)
SELECT google_sub, id, email, created_at FROM users WHERE google_sub IS NOT NULL;

-- Having a password is what makes a login name: its key is unique among the accounts that have one.
ALTER TABLE users DROP CONSTRAINT users_one_kind;
DROP INDEX users_password_username_key;
DROP INDEX users_username_key_missing;
ALTER TABLE users DROP COLUMN google_sub;
CREATE UNIQUE INDEX users_password_username_key ON users (username_key, username_key_clash)
    WHERE password_hash IS NOT NULL;
CREATE INDEX users_username_key_missing ON users (id) WHERE username_key IS NULL AND password_hash IS NOT NULL;

-- Why an admin banned the user (shown to admins; gone with the ban).
ALTER TABLE users ADD COLUMN ban_reason text;

-- A user's chatts are found for the export and for renaming them "[deleted]" when the account goes.
CREATE INDEX chatts_user_id ON chatts (user_id) WHERE user_id IS NOT NULL;

-- The audit log outlives the accounts it tells of: a deleted user's events keep the id (nothing else, see
-- models/personal_data.py), so the history of an account, its deletion included, can still be read.
ALTER TABLE auth_events DROP CONSTRAINT auth_events_user_id_fkey;

-- A user's messages are found for the export and deleted with the account (the outbox would keep their address).
CREATE INDEX mail_outbox_user_id ON mail_outbox (user_id) WHERE user_id IS NOT NULL;
