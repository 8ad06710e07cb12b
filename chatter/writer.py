"""Group commit for chatts: posts that arrive together are stored by one statement, one round trip, one commit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import models
from db.pool import Database

logger = logging.getLogger(__name__)

MAX_BATCH = 200
# Statements at once per worker; later posts gather into the next batch meanwhile. Two, measured (docs/performance.md):
# a fourth more posts a second than four, whose smaller batches each cost Postgres a plan and a commit of its own.
MAX_IN_FLIGHT = 2


@dataclass(slots=True)
class _Post:
    username: str | None  # None: take it from the chatterID's user
    message: str
    user_id: int | None
    chatter_id_hash: bytes | None
    done: asyncio.Future[bool]


class ChattWriter:
    """Stores chatts in batches; each post is acknowledged only after the statement that stored it committed.

    Posts share statements but not failures: a post the database refuses (a constraint) fails on its own while the
    others of its batch are stored, and a post whose user was deleted or banned meanwhile is refused on its own.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: list[_Post] = []
        self._in_flight = 0

    async def add(self, username: str, message: str, user_id: int | None = None) -> bool:
        """Store a chatt under `username` (signed in: under `user_id`'s current name); False when that user may no
        longer post. models.ChattRefused when the database refuses this chatt."""
        return await self._submit(_Post(username, message, user_id, None, asyncio.get_running_loop().create_future()))

    async def add_for_chatter_id(self, chatter_id_hash: bytes, message: str) -> bool:
        """Store a chatt under the chatterID's user; False when the chatterID is unknown or expired (or its user
        may no longer post). models.ChattRefused when the database refuses this chatt."""
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
        if named:
            await self._store(named, self._insert_named)
        if by_chatter_id:
            await self._store(by_chatter_id, self._insert_by_chatter_id)

    async def _store(self, posts: list[_Post], insert: Callable[[list[_Post]], Awaitable[set[int]]]) -> None:
        """Store `posts` with one statement; if the database refuses one of them, halve and try again, so that only
        the refused post fails (about 2 log2(n) statements for one bad post in n)."""
        try:
            stored = await insert(posts)
        except models.ChattRefused as exc:
            if len(posts) == 1:
                if isinstance(exc, models.PosterGone):  # deleted after the statement's snapshot: not stored
                    _settle(posts[0], False)
                    return
                logger.warning("a chatt was refused by the database: %s", exc)
                _settle(posts[0], exc)
                return
            half = len(posts) // 2
            await self._store(posts[:half], insert)  # in order: the first half's chatts come first
            await self._store(posts[half:], insert)
            return
        except Exception as exc:  # the database is unavailable, or a bug: every post of the statement gets it
            for post in posts:
                _settle(post, exc)
            return
        for index, post in enumerate(posts):
            _settle(post, index in stored)

    async def _insert_named(self, posts: list[_Post]) -> set[int]:
        return await models.add_chatts(self._db, [(post.username or "", post.message, post.user_id) for post in posts])

    async def _insert_by_chatter_id(self, posts: list[_Post]) -> set[int]:
        return await models.add_chatts_for_chatter_ids(
            self._db, [(post.chatter_id_hash or b"", post.message) for post in posts]
        )


def _settle(post: _Post, outcome: bool | BaseException) -> None:
    if post.done.done():
        return
    if isinstance(outcome, BaseException):
        post.done.set_exception(outcome)
    else:
        post.done.set_result(outcome)
