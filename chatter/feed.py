"""The newest chatts, kept in memory by each worker and dropped whenever any worker or server changes them."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

import models
from db.events import Events
from db.pool import Database, DatabaseUnavailable
from models.chatts import CHATTS_CHANGED

FEED_SIZE = 1000  # the largest `limit` the contract allows
NOTICE = CHATTS_CHANGED
# A burst of posts on one worker becomes one notice; other workers see a new chatt this much later at most.
ANNOUNCE_DELAY = 0.05
# A safety net: even if a notice were lost, no copy is served for longer than this.
MAX_AGE = 2.0

logger = logging.getLogger(__name__)


class ChattFeed:
    """Answers GET /getchatts/ from memory while the events channel is live; the database stays the truth.

    A post or delete anywhere sends a notice that empties every worker's copy; the next read reloads it with one
    query, whatever the size of the table. While the channel is down every read goes to the database.
    The worker that made the change drops its own copy at once, so its clients read their own writes.
    """

    def __init__(self, db: Database, events: Events) -> None:
        self._db = db
        self._events = events
        self._rows: list[tuple[str, str, str, str]] | None = None
        self._positions: dict[str, int] = {}
        self._bodies: dict[int, bytes] = {}
        self._version = 0
        self._loading: asyncio.Task[list[tuple[str, str, str, str]]] | None = None
        self._loaded_at = 0.0
        self._announcing: asyncio.Task[None] | None = None

    def apply(self, notice: str) -> None:
        """Empty the copy when chatts changed."""
        if notice == NOTICE:
            self.invalidate()

    async def reload(self) -> None:
        """Notices may have been missed: start afresh."""
        self.invalidate()

    def tick(self, now: float) -> None:
        """Nothing to tidy."""

    def changed_here(self) -> None:
        """This worker posted or deleted a chatt: drop the copy now and tell the others shortly."""
        self.invalidate()
        if self._announcing is None:
            self._announcing = asyncio.create_task(self._announce_soon())

    async def _announce_soon(self) -> None:
        await asyncio.sleep(ANNOUNCE_DELAY)
        self._announcing = None  # changes from now on schedule another notice
        try:
            await models.announce_chatts_changed(self._db)
        except DatabaseUnavailable as exc:
            logger.warning("could not announce new chatts (%s); other workers catch up within %s s", exc, MAX_AGE)

    async def close(self) -> None:
        """Send a pending notice before the worker stops."""
        if self._announcing is not None:
            await self._announcing

    def invalidate(self) -> None:
        """Forget the copy (and any load in flight, whose result may predate the change)."""
        self._version += 1
        self._rows = None
        self._positions = {}
        self._bodies = {}
        self._loading = None

    async def newest_json(self, limit: int) -> bytes:
        """The newest `limit` chatts, oldest first, as the contract's JSON."""
        if not self._events.live:
            return orjson.dumps(await models.list_chatts(self._db, limit=limit))
        body = self._bodies.get(limit)
        if body is None:
            rows = await self._current_rows()
            body = orjson.dumps(rows[-limit:])
            if self._rows is rows:
                self._bodies[limit] = body
        return body

    async def after_json(self, after: str, limit: int) -> bytes:
        """The newest `limit` chatts after `after`, oldest first; models.UnknownChatt if there is no such chatt."""
        if self._events.live:
            rows = await self._current_rows()
            position = self._positions.get(after) if self._rows is rows else None
            if position is not None:
                return orjson.dumps(rows[position + 1 :][-limit:])
        # Older than the copy (or no copy to trust): ask the database.
        return orjson.dumps(await models.list_chatts(self._db, limit=limit, after=after))

    async def _current_rows(self) -> list[tuple[str, str, str, str]]:
        if self._rows is not None and time.monotonic() - self._loaded_at > MAX_AGE:
            self.invalidate()
        if self._rows is not None:
            return self._rows
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load(self._version))
        loading = self._loading
        # shield: one caller giving up must not cancel the load the others are waiting for
        return await asyncio.shield(loading)

    async def _load(self, version: int) -> list[tuple[str, str, str, str]]:
        try:
            rows = await models.list_chatts(self._db, limit=FEED_SIZE)
        finally:
            if self._version == version:
                self._loading = None
        if self._version == version:
            self._rows = rows
            self._loaded_at = time.monotonic()
            self._positions = {row[2]: index for index, row in enumerate(rows)}
        return rows
