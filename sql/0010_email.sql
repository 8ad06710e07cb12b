-- Email addresses on accounts, the codes mailed to them, and the outbox that delivers every message.

-- users.email is the account's address as typed; it counts once verified. Addresses are ASCII (the server refuses
-- others), so lower() compares them alike in every database, and an address is verified by one account at most.
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;
CREATE UNIQUE INDEX users_verified_email ON users (lower(email)) WHERE email_verified_at IS NOT NULL;

-- The address and whether it is verified are shown from every worker's copy of the user's standing: a change draws
-- a new standing version (sql/0006), which is announced and drops every copy.
DROP TRIGGER users_standing_moved ON users;
CREATE TRIGGER users_standing_moved BEFORE UPDATE ON users FOR EACH ROW
    WHEN (OLD.username IS DISTINCT FROM NEW.username OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.tokens_valid_after IS DISTINCT FROM NEW.tokens_valid_after
          OR OLD.banned_until IS DISTINCT FROM NEW.banned_until OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at
          OR OLD.email IS DISTINCT FROM NEW.email OR OLD.email_verified_at IS DISTINCT FROM NEW.email_verified_at)
    EXECUTE FUNCTION users_standing_moved();

-- One live code per user and purpose, kept as an HMAC (under SECRET_KEY) of the code with its user and purpose.
-- Every try is counted before it is compared; a code is dead after `tries` reaches the limit, its use, or expiry.
CREATE TABLE email_codes (
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('verify', 'reset')),
    email      text NOT NULL,  -- the address it was sent to: a verification code verifies that address only
    code_hash  bytea NOT NULL,
    tries      integer NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (user_id, purpose)
);

-- Messages wait here until the relay takes them. They are written in the transaction of the change that causes
-- them, so a change is never without its message nor a message without its change. `sealed` holds what the message
-- says, encrypted under SECRET_KEY (codes among it), and is dropped once the message is sent or given up on.
CREATE TABLE mail_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    user_id         bigint REFERENCES users (id) ON DELETE SET NULL,
    recipient       text NOT NULL,
    kind            text NOT NULL,
    sealed          bytea,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    failed_at       timestamptz,
    last_error      text
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX mail_outbox_done ON mail_outbox (created_at) WHERE sent_at IS NOT NULL OR failed_at IS NOT NULL;

-- Whoever writes a message (the server, manage.py, an operator), every worker's sender wakes at once.
CREATE FUNCTION mail_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chatterd_events', 'mail');
    RETURN NULL;
END
$$;
-- For each row, not each statement: a sign-in's statement may write a notice or none, and only one written wakes
-- the senders (the notices of one transaction, all alike, are delivered once).
CREATE TRIGGER mail_queued AFTER INSERT ON mail_outbox FOR EACH ROW EXECUTE FUNCTION mail_queued();

-- The devices each user signed in from, as new-device notices compare them (auth/devices.py): the User-Agent's family
-- without versions, and the address's network. Written by every sign-in (models/fragments.py, SIGNED_IN_DEVICE).
CREATE TABLE known_devices (
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family           text NOT NULL,
    network          text NOT NULL,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    previous_seen_at timestamptz,  -- the sign-in before the last one from it
    PRIMARY KEY (user_id, family, network)
);
CREATE INDEX known_devices_last_seen_at ON known_devices (last_seen_at);
