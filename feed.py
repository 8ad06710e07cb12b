"""The newest chatts, kept in memory by each worker and dropped whenever any worker or server changes them."""

from __future__ import annotations

import asyncio

import orjson

import models
from db import Database
from events import Events

FEED_SIZE = 1000  # the largest `limit` the contract allows
NOTICE = models.CHATTS_CHANGED


class ChattFeed:
    """Answers GET /getchatts/ from memory while the events channel is live; the database stays the truth.

    A post or delete anywhere sends a notice that empties every worker's copy; the next read reloads it with one
    query, whatever the size of the table. While the channel is down every read goes to the database.
    """

    def __init__(self, db: Database, events: Events) -> None:
        self._db = db
        self._events = events
        self._rows: list[tuple[str, str, str, str]] | None = None
        self._positions: dict[str, int] = {}
        self._bodies: dict[int, bytes] = {}
        self._version = 0
        self._loading: asyncio.Task[list[tuple[str, str, str, str]]] | None = None

    def apply(self, notice: str) -> None:
        """Empty the copy when chatts changed."""
        if notice == NOTICE:
            self.invalidate()

    async def reload(self) -> None:
        """Notices may have been missed: start afresh."""
        self.invalidate()

    def tick(self, now: float) -> None:
        """Nothing to tidy."""

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
            self._positions = {row[2]: index for index, row in enumerate(rows)}
        return rows
