-- Password usernames are compared by one key: NFKC, Unicode case folding, NFKC again (auth/usernames.py).
-- Postgres cannot compute that key (its lower() disagrees with Python's casefold on U+0130 İ, ß and others), so the
-- server stores it: new accounts get it on insert, and rows without one (the accounts made before this migration, or
-- rows an operator inserted by hand) are filled by the server at start, under the migration lock (db/migrations.py).
ALTER TABLE users ADD COLUMN username_key text;

-- Two accounts made before this migration may fold to the same key ("Straße" and "STRASSE" were distinct under
-- lower()). Both keep working rather than failing the migration: the account that gets the key first (the oldest)
-- owns it, with 0 here; each later one holds its own id here, which keeps it out of the owner's way in the unique
-- index, and a sign-in by its exact spelling still finds it. New accounts always get 0, so the index refuses any
-- new collision.
ALTER TABLE users ADD COLUMN username_key_clash bigint NOT NULL DEFAULT 0;

DROP INDEX users_password_username;
CREATE UNIQUE INDEX users_password_username_key ON users (username_key, username_key_clash) WHERE google_sub IS NULL;
-- What the fill at start looks for; empty once it has run.
CREATE INDEX users_username_key_missing ON users (id) WHERE username_key IS NULL AND google_sub IS NULL;
