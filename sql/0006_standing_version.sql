-- Every change to a user's standing (the columns sql/0004's trigger announces) draws a new standing_version. A JWT
-- minted from a standing carries its version, so a worker whose copy is older than a token it is shown knows its
-- copy is stale before the announcement reaches it, and reads the row again.
CREATE SEQUENCE users_standing_version_seq;
ALTER TABLE users ADD COLUMN standing_version bigint NOT NULL DEFAULT nextval('users_standing_version_seq');

-- BEFORE UPDATE, so the version is drawn once the row is locked: of two updates of one row, the later committed
-- draws the higher version.
CREATE FUNCTION users_standing_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.standing_version := nextval('users_standing_version_seq');
    RETURN NEW;
END
$$;
CREATE TRIGGER users_standing_moved BEFORE UPDATE ON users FOR EACH ROW
    WHEN (OLD.username IS DISTINCT FROM NEW.username OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.tokens_valid_after IS DISTINCT FROM NEW.tokens_valid_after
          OR OLD.banned_until IS DISTINCT FROM NEW.banned_until OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION users_standing_moved();

-- The announcement follows the version: what draws a new one is announced, one list of columns for both.
DROP TRIGGER users_changed ON users;
CREATE TRIGGER users_changed AFTER UPDATE ON users FOR EACH ROW
    WHEN (OLD.standing_version IS DISTINCT FROM NEW.standing_version)
    EXECUTE FUNCTION users_changed();
