"""Each worker's directory of users' standing, kept current by the events channel, so a JWT costs no query."""

from __future__ import annotations

import logging

import models
from db.events import Events
from models.records import Standing

logger = logging.getLogger(__name__)

# How many users' standing a worker keeps; past it, the least recently loaded are dropped (and read again on use).
DIRECTORY_LIMIT = 100_000


class Directory:
    """Users' standing by id: loaded at start, dropped entry by entry as the database announces changes.

    The users table announces every change that matters (sql/0004's trigger), whoever makes it. While notices are
    not flowing, nothing here is trusted: every look-up goes to Postgres.
    """

    def __init__(self, events: Events, limit: int = DIRECTORY_LIMIT) -> None:
        self._events = events
        self._limit = limit
        self._standings: dict[int, Standing] = {}
        # Bumped by every notice and reload: a read that started before a bump may be older than the notice.
        self._generation = 0

    async def standing(self, user_id: int, *, at_least: int | None = None) -> Standing | None:
        """The user's current standing, or None when no such user exists.

        `at_least`: a version of the standing known to exist (a JWT minted from it), so a copy older than it is
        stale even before the announcement of the change reaches this worker.
        """
        live = self._events.live
        if live:
            found = self._standings.get(user_id)
            if found is not None and (at_least is None or found.version >= at_least):
                return found
        generation = self._generation
        found = await models.user_standing(self._events.db, user_id)
        # Kept only if no notice came while reading: else the row read may predate the change announced.
        if found is not None and live and self._events.live and generation == self._generation:
            if len(self._standings) >= self._limit:
                del self._standings[next(iter(self._standings))]
            self._standings[user_id] = found
        return found

    def forget(self, user_id: int) -> None:
        """Drop one user's entry (this worker changed it; the notice will reach the others)."""
        self._generation += 1
        self._standings.pop(user_id, None)

    def apply(self, notice: str) -> None:
        """`user:<id>` drops that user's entry; `users` (a TRUNCATE) drops all."""
        kind, _, rest = notice.partition(":")
        if kind == "user":
            try:
                self.forget(int(rest))
            except ValueError:
                logger.warning("ignoring malformed user notice %r", notice[:80])
        elif kind == "users" and not rest:
            self._generation += 1
            self._standings.clear()

    async def reload(self) -> None:
        """Start afresh from the database (notices may have been missed)."""
        self._generation += 1
        self._standings = {}
        generation = self._generation
        standings = await models.recent_standings(self._events.db, limit=self._limit)
        if generation == self._generation:
            self._standings = {standing.user.id: standing for standing in reversed(standings)}
        logger.info("loaded the standing of %d users", len(standings))

    def tick(self, now: float) -> None:
        """Nothing to tidy: entries change only by notice."""
