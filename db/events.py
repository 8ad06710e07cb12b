"""One LISTEN connection per worker: notices from every worker and server, dispatched to what keeps state in memory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Protocol

from db.pool import Database, DatabaseUnavailable

logger = logging.getLogger(__name__)

CHANNEL = "chatterd_events"
QUIET_PING_SECONDS = 15.0


class Follower(Protocol):
    """Something that keeps in-memory state current from notices."""

    def apply(self, notice: str) -> None:
        """Apply one notice (ignore the kinds that are not yours)."""

    async def reload(self) -> None:
        """Take a fresh copy from the database (after (re)connecting, when notices may have been missed)."""

    def tick(self, now: float) -> None:
        """Housekeeping while the channel is quiet."""


class Events:
    """Follows the channel for the life of the app; `live` says whether notices are flowing right now."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.followers: list[Follower] = []
        self.live = False
        self.ready = asyncio.Event()

    async def follow(self) -> None:
        """LISTEN, reload every follower, then dispatch notices; reconnect after any loss. Runs until cancelled."""
        backoff = 0.1
        while True:
            try:
                async with self.db.listen(CHANNEL) as notifications:
                    # LISTEN first, then load: nothing that happens in between can be missed.
                    for follower in self.followers:
                        await follower.reload()
                    self.live = True
                    self.ready.set()
                    backoff = 0.1
                    logger.info("following %s", CHANNEL)
                    while True:
                        notice = await notifications.get(QUIET_PING_SECONDS)
                        if notice is None:
                            now = time.time()
                            for follower in self.followers:
                                follower.tick(now)
                        else:
                            for follower in self.followers:
                                follower.apply(notice)
            except DatabaseUnavailable as exc:
                if self.live:
                    logger.warning("lost the %s channel (%s); reconnecting", CHANNEL, exc)
                self.live = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)


@contextlib.asynccontextmanager
async def following(events: Events) -> AsyncIterator[None]:
    """Run `events.follow()` for the life of the block, which starts once the first load is done."""
    task = asyncio.create_task(events.follow(), name="events")
    try:
        async with asyncio.timeout(30):
            await events.ready.wait()
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
