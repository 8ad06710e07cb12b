"""The newest chatts, kept in memory by each worker and checked against the database's version on every read."""

from __future__ import annotations

import asyncio

import orjson

import models
from db.pool import Database
from models.chatts import ChattRow, ChattsVersion

FEED_SIZE = 1000  # the largest `limit` the contract allows


class VersionCheck:
    """Reads of the chatts version, shared: a caller waits for a read that starts after it asked.

    Every caller that asks while a read is in flight joins the next one, which starts when that one ends: one query
    serves every request that arrived during the previous one, and no request is answered from a read older than
    itself. Read-your-writes follows: a write answered before a request arrived is in the version that request sees.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._next: asyncio.Future[tuple[ChattsVersion, int]] | None = None
        self._running = False
        self._task: asyncio.Task[None] | None = None  # kept: the loop holds tasks only weakly
        self.started = 0  # reads started so far; read n started after every caller of reads < n had asked

    async def current(self) -> tuple[ChattsVersion, int]:
        """The version, as read by a query that started after this call, and that query's number."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if not self._running:
                self._running = True
                self._task = asyncio.create_task(self._run())
        return await asyncio.shield(self._next)

    async def _run(self) -> None:
        try:
            while self._next is not None:
                waiting, self._next = self._next, None
                self.started += 1
                number = self.started
                try:
                    waiting.set_result((await models.chatts_version(self._db), number))
                except Exception as exc:  # every waiter gets it (a DatabaseUnavailable becomes their 503)
                    waiting.set_exception(exc)
                    waiting.exception()  # retrieved here, so a waiter that gave up leaves no warning behind
        finally:
            self._running = False


class ChattFeed:
    """Answers GET /getchatts/ from memory when the database's version says the copy is current.

    A read costs one shared version check (see VersionCheck); the copy is reloaded, with one query whatever the
    size of the table, only when the version moved. Writes anywhere, by this server or not, move the version.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._check = VersionCheck(db)
        self._copy: tuple[ChattsVersion, int, list[ChattRow]] | None = None  # version, load number, rows
        self._positions: dict[str, int] = {}
        self._bodies: dict[int, bytes] = {}
        self._loading: tuple[int, asyncio.Future[list[ChattRow]]] | None = None

    async def newest_json(self, limit: int) -> bytes:
        """The newest `limit` chatts, oldest first, as the contract's JSON."""
        rows = await self._current_rows()
        if self._copy is not None and rows is self._copy[2]:
            body = self._bodies.get(limit)
            if body is None:
                body = self._bodies[limit] = orjson.dumps(rows[-limit:])
            return body
        return orjson.dumps(rows[-limit:])

    async def after_json(self, after: str, limit: int) -> bytes:
        """The newest `limit` chatts after `after`, oldest first; models.UnknownChatt if there is no such chatt."""
        rows = await self._current_rows()
        position = self._positions.get(after) if self._copy is not None and rows is self._copy[2] else None
        if position is not None:
            return orjson.dumps(rows[position + 1 :][-limit:])
        # Older than the copy (or not in it): ask the database.
        return orjson.dumps(await models.list_chatts(self._db, limit=limit, after=after))

    async def _current_rows(self) -> list[ChattRow]:
        version, number = await self._check.current()
        if self._copy is not None and self._copy[0] == version:
            return self._copy[2]
        # Any load that started after our check did is new enough; else start one.
        if self._loading is None or self._loading[0] < number:
            self._loading = (self._check.started, asyncio.ensure_future(self._load(self._check.started)))
        # shield: one caller giving up must not cancel the load the others are waiting for
        return await asyncio.shield(self._loading[1])

    async def _load(self, number: int) -> list[ChattRow]:
        try:
            version, rows = await models.list_newest_versioned(self._db, limit=FEED_SIZE)
        finally:
            if self._loading is not None and self._loading[0] == number:
                self._loading = None
        if self._copy is None or self._copy[1] <= number:
            self._copy = (version, number, rows)
            self._positions = {row[2]: index for index, row in enumerate(rows)}
            self._bodies = {}
        return rows
