"""The throttle's counters under concurrency: attempts on many keys at once, each purging the stale counters of
others, never deadlock and never lose a count."""

from __future__ import annotations

import asyncio

from core.keys import db_key
from models import claim_attempt

KEYS = 48


async def test_attempts_on_stale_keys_at_once_purge_each_other_without_deadlock(client):
    db = client.app[db_key]
    keys = [f"login:user:racer-{n}" for n in range(KEYS)]
    for round_ in range(5):
        async with db.cursor() as cur:  # every key's window is over: each is stale to every other attempt
            await cur.execute(
                "INSERT INTO throttle (key, hits, max_hits, window_start)"
                " SELECT unnest(%s::text[]), 3, 5, now() - interval '1 day'"
                " ON CONFLICT (key) DO UPDATE SET hits = 3, window_start = EXCLUDED.window_start",
                (keys,),
            )
        waits = await asyncio.gather(*(claim_attempt(db, {key: 5}, window=60, lockout=60) for key in keys))
        assert waits == [None] * KEYS, f"round {round_}"
        async with db.cursor() as cur:  # each key counted its one attempt in a new window; none was purged under it
            await cur.execute("SELECT key, hits FROM throttle WHERE key = ANY(%s) ORDER BY key", (keys,))
            assert await cur.fetchall() == sorted((key, 1) for key in keys)
