-- Users (Google or password), chatterID sessions, chatts, and revoked JWTs.

CREATE TABLE users (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username           text NOT NULL CHECK (length(username) BETWEEN 1 AND 255),
    google_sub         text UNIQUE,
    email              text,
    password_hash      text,
    role               text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'moderator', 'admin')),
    totp_secret        text,
    totp_enabled       boolean NOT NULL DEFAULT false,
    totp_last_step     bigint,
    -- "Log out everywhere": JWTs issued before this instant (epoch seconds) are refused.
    tokens_valid_after double precision NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- A Google user has no password; a password user has no Google subject.
    CONSTRAINT users_one_kind CHECK ((google_sub IS NULL) <> (password_hash IS NULL))
);
-- Password usernames are unique without regard to case; Google display names need not be.
CREATE UNIQUE INDEX users_password_username ON users (lower(username)) WHERE google_sub IS NULL;

-- chatterIDs: only a SHA-256 of the credential is kept.
CREATE TABLE chatter_sessions (
    id_hash    bytea PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL
);
CREATE INDEX chatter_sessions_expires_at ON chatter_sessions (expires_at);
CREATE INDEX chatter_sessions_user_id ON chatter_sessions (user_id);

-- seq orders chatts stably under concurrent posts; id is what clients see.
CREATE TABLE chatts (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    username   text NOT NULL,
    message    text NOT NULL,
    user_id    bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- JWTs logged out before they expire; rows past expires_at are useless and purged.
CREATE TABLE revoked_tokens (
    jti        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
