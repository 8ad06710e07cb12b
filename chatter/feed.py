"""The newest chatts, kept in memory by each worker and checked against the database's version on every read."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from enum import Enum

import orjson

import models
from core.shapes import Chatt
from db.pool import Database
from models.chatts import ChattRow, ChattsVersion, FeedRow

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


class Form(Enum):
    """How a read lists chatts."""

    ARRAYS = "arrays"  # GET /getchatts/: the contract's [username, message, id, timestamp], as the course apps parse
    OBJECTS = "objects"  # GET /chatts: {"chatts": [{"id", "username", "message", "timestamp", "signed"}]}


def chatts_json(rows: Sequence[ChattRow], signed: Sequence[bool], form: Form) -> bytes:
    """Chatts (and whether each was posted signed in) as a read of `form` answers them."""
    if form is Form.ARRAYS:
        return orjson.dumps(rows)
    return orjson.dumps(
        {"chatts": [Chatt(row[2], row[0], row[1], row[3], flag) for row, flag in zip(rows, signed, strict=True)]}
    )


class Snapshot:
    """One read of the newest chatts, oldest first, and the answers made from it (kept while it is the current one)."""

    __slots__ = ("bodies", "number", "positions", "rows", "signed", "version")

    def __init__(self, version: ChattsVersion, number: int, rows: Sequence[FeedRow]) -> None:
        self.version, self.number = version, number
        self.rows: list[ChattRow] = [row[:4] for row in rows]
        self.signed = [row[4] for row in rows]
        self.positions = {row[2]: index for index, row in enumerate(rows)}
        self.bodies: dict[tuple[Form, int], bytes] = {}

    def newest(self, limit: int, form: Form) -> bytes:
        """The newest `limit` chatts."""
        body = self.bodies.get((form, limit))
        if body is None:
            body = self.bodies[form, limit] = self._json(len(self.rows) - limit, form)
        return body

    def after(self, after: str, limit: int, form: Form) -> bytes | None:
        """The newest `limit` chatts after `after`; None when `after` is not in this read."""
        position = self.positions.get(after)
        if position is None:
            return None
        return self._json(max(position + 1, len(self.rows) - limit), form)

    def _json(self, start: int, form: Form) -> bytes:
        start = max(start, 0)
        return chatts_json(self.rows[start:], self.signed[start:], form)


class ChattFeed:
    """Answers GET /getchatts/ and GET /chatts from memory when the database's version says the copy is current.

    A read costs one shared version check (see VersionCheck); the copy is reloaded, with one query whatever the
    size of the table, only when the version moved. Writes anywhere, by this server or not, move the version.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._check = VersionCheck(db)
        self._copy: Snapshot | None = None
        self._loading: tuple[int, asyncio.Future[Snapshot]] | None = None

    async def newest_json(self, limit: int, form: Form = Form.ARRAYS) -> bytes:
        """The newest `limit` chatts, oldest first."""
        return (await self._current()).newest(limit, form)

    async def after_json(self, after: str, limit: int, form: Form = Form.ARRAYS) -> bytes:
        """The newest `limit` chatts after `after`, oldest first; models.UnknownChatt if there is no such chatt."""
        body = (await self._current()).after(after, limit, form)
        if body is not None:
            return body
        # Older than the copy (or not in it): ask the database.
        rows = await models.list_chatts(self._db, limit=limit, after=after)
        return chatts_json([row[:4] for row in rows], [row[4] for row in rows], form)

    async def _current(self) -> Snapshot:
        version, number = await self._check.current()
        if self._copy is not None and self._copy.version == version:
            return self._copy
        # Any load that started after our check did is new enough; else start one.
        if self._loading is None or self._loading[0] < number:
            self._loading = (self._check.started, asyncio.ensure_future(self._load(self._check.started)))
        # shield: one caller giving up must not cancel the load the others are waiting for
        return await asyncio.shield(self._loading[1])

    async def _load(self, number: int) -> Snapshot:
        try:
            version, rows = await models.list_newest_versioned(self._db, limit=FEED_SIZE)
        finally:
            if self._loading is not None and self._loading[0] == number:
                self._loading = None
        snapshot = Snapshot(version, number, rows)
        if self._copy is None or self._copy.number <= number:
            self._copy = snapshot
        return snapshot
