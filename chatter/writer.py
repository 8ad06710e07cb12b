"""Group commit for chatts: posts that arrive together are stored by one statement, one round trip, one commit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import models
from db.pool import Database

MAX_BATCH = 200
MAX_IN_FLIGHT = 4  # statements at once per worker; later posts gather into the next batch meanwhile


@dataclass(slots=True)
class _Post:
    username: str | None  # None: take it from the chatterID's user
    message: str
    user_id: int | None
    chatter_id_hash: bytes | None
    done: asyncio.Future[bool]


class ChattWriter:
    """Stores chatts in batches; each post is acknowledged only after the statement that stored it committed."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: list[_Post] = []
        self._in_flight = 0

    async def add(self, username: str, message: str, user_id: int | None = None) -> None:
        """Store a chatt under `username`."""
        await self._submit(_Post(username, message, user_id, None, asyncio.get_running_loop().create_future()))

    async def add_for_chatter_id(self, chatter_id_hash: bytes, message: str) -> bool:
        """Store a chatt under the chatterID's user; False when the chatterID is unknown or expired."""
        post = _Post(None, message, None, chatter_id_hash, asyncio.get_running_loop().create_future())
        return await self._submit(post)

    async def _submit(self, post: _Post) -> bool:
        self._pending.append(post)
        if self._in_flight < MAX_IN_FLIGHT:
            self._start_flush()
        # shield: a client that goes away must not cancel a statement other posts share
        return await asyncio.shield(post.done)

    def _start_flush(self) -> None:
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        if not batch:
            return
        self._in_flight += 1
        task = asyncio.ensure_future(self._flush(batch))
        task.add_done_callback(self._flushed)

    def _flushed(self, _: asyncio.Future[None]) -> None:
        self._in_flight -= 1
        if self._pending and self._in_flight < MAX_IN_FLIGHT:
            self._start_flush()

    async def _flush(self, batch: list[_Post]) -> None:
        named = [post for post in batch if post.chatter_id_hash is None]
        by_chatter_id = [post for post in batch if post.chatter_id_hash is not None]
        try:
            if named:
                await models.add_chatts(self._db, [(post.username or "", post.message, post.user_id) for post in named])
            stored: set[int] = set()
            if by_chatter_id:
                stored = await models.add_chatts_for_chatter_ids(
                    self._db, [(post.chatter_id_hash or b"", post.message) for post in by_chatter_id]
                )
        except Exception as exc:
            for post in batch:
                if not post.done.done():
                    post.done.set_exception(exc)
            return
        for post in named:
            if not post.done.done():
                post.done.set_result(True)
        for index, post in enumerate(by_chatter_id):
            if not post.done.done():
                post.done.set_result(index in stored)
