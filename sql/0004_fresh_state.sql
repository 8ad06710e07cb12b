-- Fresh state: every reader can tell its copy of chatts or of a user's standing from the database's.

-- Bans and deletions are part of a user's standing, which every worker keeps in memory.
ALTER TABLE users ADD COLUMN banned_until timestamptz;
ALTER TABLE users ADD COLUMN deleted_at timestamptz;

-- One row whose `v` changes, in the same transaction, with every change to chatts: a reader that finds the `v`
-- its copy was loaded at knows the copy is current. The value comes from a sequence, which TRUNCATE leaves alone,
-- so a value is never reused.
CREATE SEQUENCE chatts_version_seq;
CREATE TABLE chatts_version (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    v  bigint NOT NULL
);
INSERT INTO chatts_version (v) VALUES (nextval('chatts_version_seq'));

CREATE FUNCTION chatts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chatts_version (v) VALUES (nextval('chatts_version_seq'))
    ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v;
    RETURN NULL;
END
$$;
CREATE TRIGGER chatts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON chatts
    FOR EACH STATEMENT EXECUTE FUNCTION chatts_changed();

-- Whoever changes a user's standing (this server, manage.py, an operator in psql), every worker hears of it.
CREATE FUNCTION users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('chatterd_events', 'users');
    ELSE
        PERFORM pg_notify('chatterd_events', 'user:' || OLD.id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_changed AFTER UPDATE ON users FOR EACH ROW
    WHEN (OLD.username IS DISTINCT FROM NEW.username OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.tokens_valid_after IS DISTINCT FROM NEW.tokens_valid_after
          OR OLD.banned_until IS DISTINCT FROM NEW.banned_until OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION users_changed();
CREATE TRIGGER users_deleted AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION users_changed();
CREATE TRIGGER users_truncated AFTER TRUNCATE ON users FOR EACH STATEMENT EXECUTE FUNCTION users_changed();
