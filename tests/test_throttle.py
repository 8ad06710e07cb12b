"""The throttle's counters under concurrency: attempts on many keys at once, each purging the stale counters of
others, never deadlock and never lose a count."""

from __future__ import annotations

import asyncio

import pytest

from core.keys import db_key
from models import claim_attempt, count_attempt
from settings import THROTTLE_WINDOW_MAX, ConfigError, Settings

KEYS = 48


async def test_attempts_on_stale_keys_at_once_purge_each_other_without_deadlock(client):
    db = client.app[db_key]
    keys = [f"login:user:racer-{n}" for n in range(KEYS)]
    for round_ in range(5):
        async with db.cursor() as cur:  # every key's window is over: each is stale to every other attempt
            await cur.execute(
                "INSERT INTO throttle (key, hits, max_hits, window_start)"
                " SELECT unnest(%s::text[]), 3, 5, now() - interval '2 days'"
                " ON CONFLICT (key) DO UPDATE SET hits = 3, window_start = EXCLUDED.window_start",
                (keys,),
            )
        waits = await asyncio.gather(*(claim_attempt(db, {key: 5}, window=60, lockout=60) for key in keys))
        assert waits == [None] * KEYS, f"round {round_}"
        async with db.cursor() as cur:  # each key counted its one attempt in a new window; none was purged under it
            await cur.execute("SELECT key, hits FROM throttle WHERE key = ANY(%s) ORDER BY key", (keys,))
            assert await cur.fetchall() == sorted((key, 1) for key in keys)


async def test_a_purge_leaves_counters_whose_own_window_is_longer_than_the_attempts(client):
    """A login's attempt (its window 5 minutes) purges only counters older than any window: a sign-up counter of 10
    minutes ago (window 1 hour) keeps counting."""
    db = client.app[db_key]
    assert await count_attempt(db, "signup:addr:192.0.2.1", window=3600) == (1, pytest.approx(0, abs=5))
    async with db.cursor() as cur:
        await cur.execute(
            "INSERT INTO throttle (key, hits, max_hits, window_start)"
            " VALUES ('old:key', 1, 0, now() - %s * interval '1s')",
            (THROTTLE_WINDOW_MAX + 60,),
        )
        await cur.execute(
            "UPDATE throttle SET window_start = now() - interval '10 minutes' WHERE key = 'signup:addr:192.0.2.1'"
        )
    assert await claim_attempt(db, {"login:addr:192.0.2.9": 20}, window=300, lockout=300) is None
    hits, _ = await count_attempt(db, "signup:addr:192.0.2.1", window=3600)
    assert hits == 2  # still in its window, not purged and restarted
    async with db.cursor() as cur:
        await cur.execute("SELECT count(*) FROM throttle WHERE key = 'old:key'")
        assert await cur.fetchone() == (0,)


@pytest.mark.parametrize(
    "name",
    [
        "LOGIN_LOCKOUT_SECONDS",
        "ADDUSER_WINDOW_SECONDS",
        "SIGNUP_WINDOW_SECONDS",
        "RECOVERY_WINDOW_SECONDS",
        "PASSKEY_OPTIONS_WINDOW_SECONDS",
    ],
)
def test_no_throttle_window_outlasts_the_purges_horizon(name):
    with pytest.raises(ConfigError, match="at most"):
        Settings.from_env({name: str(THROTTLE_WINDOW_MAX + 1)})
    assert Settings.from_env({name: str(THROTTLE_WINDOW_MAX)})
