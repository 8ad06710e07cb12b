-- Passkeys (WebAuthn credentials) and the challenges of their ceremonies.

-- The user handle every passkey of a user carries (WebAuthn's user.id): random, never the account's id or name.
-- One per user, so an authenticator keeps one passkey per account, and a discoverable sign-in names its user.
ALTER TABLE users ADD COLUMN webauthn_handle bytea UNIQUE;

CREATE TABLE passkeys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id bytea NOT NULL UNIQUE,
    public_key    bytea NOT NULL,  -- the COSE key, as the authenticator gave it
    sign_count    bigint NOT NULL DEFAULT 0,
    name          text NOT NULL,
    transports    text[] NOT NULL DEFAULT '{}',
    backed_up     boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz
);
CREATE INDEX passkeys_user_id ON passkeys (user_id, created_at);

-- A challenge lives from its options until its ceremony takes it (a DELETE: so it is used once) or it expires.
-- Kept here, not in a worker, so that any worker of any server can finish the ceremony.
CREATE TABLE webauthn_challenges (
    challenge  bytea PRIMARY KEY,
    purpose    text NOT NULL CHECK (purpose IN ('register', 'authenticate')),
    user_id    bigint REFERENCES users (id) ON DELETE CASCADE,  -- whose ceremony it is, when that is known
    expires_at timestamptz NOT NULL
);
CREATE INDEX webauthn_challenges_expires_at ON webauthn_challenges (expires_at);
