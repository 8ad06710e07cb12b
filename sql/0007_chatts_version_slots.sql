-- The chatts version as 16 slots instead of one row. With one row, every write transaction locked that row until it
-- committed, so concurrent writers waited for each other's commits (about 700 INSERT statements/s at any number of
-- writers, against 2,000-2,200 with slots at 8-16 writers: `python -m bench.contention`). A write now draws its
-- value into the slot of its Postgres backend; writers on different backends no longer wait for each other.
--
-- Why readers still see every write: each write sets its slot to a value drawn from the sequence, which no other
-- write ever gets. A copy of the chatts is kept with the slots read in the same snapshot as its rows; a later read
-- of the slots that finds them all equal to the copy's has seen no write commit since (one that had would have left
-- a value in its slot that the copy cannot hold), so the copy is current.
DROP TABLE chatts_version;
CREATE TABLE chatts_version (
    slot smallint PRIMARY KEY CHECK (slot BETWEEN 0 AND 15),
    v    bigint NOT NULL
);
INSERT INTO chatts_version (slot, v) SELECT slot, nextval('chatts_version_seq') FROM generate_series(0, 15) AS slot;

-- The trigger (sql/0004) keeps calling this function by name.
CREATE OR REPLACE FUNCTION chatts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chatts_version (slot, v) VALUES (pg_backend_pid() % 16, nextval('chatts_version_seq'))
    ON CONFLICT (slot) DO UPDATE SET v = EXCLUDED.v;
    RETURN NULL;
END
$$;
