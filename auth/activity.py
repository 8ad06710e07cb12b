"""Sessions' last use, written at most once a minute per session, in batches: never a write per request.

Each worker remembers when it last knew a session's `last_seen_at` to be written; a use a minute or more after that
queues the session, and one statement writes every queued session whose row is a minute old or more (whichever
worker or server wrote it last) and says where each now stands. So the database is written at most once a minute
per session, a use is seen at most a minute late (plus a round trip), and most requests cost no statement at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Final

import models
from core.metrics import SESSION_LAST_SEEN_WRITES
from db.pool import Database, DatabaseUnavailable

logger = logging.getLogger(__name__)

# The contract's bound on how far `last_seen_at` may lag real use.
LAST_SEEN_INTERVAL: Final = 60.0
MAX_BATCH: Final = 1000
KNOWN_LIMIT: Final = 100_000
_SESSION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class SessionActivity:
    """Queues sessions whose last use is due to be written, and writes them in the background."""

    def __init__(self, db: Database, interval: float = LAST_SEEN_INTERVAL) -> None:
        self._db = db
        self.interval = interval
        self._known: dict[str, float] = {}  # session id: when its last_seen_at was last known written (epoch)
        self._due: set[str] = set()
        self._writing: set[str] = set()  # in the statement under way: as good as known
        self._task: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being written."""
        return not self._due and (self._task is None or self._task.done())

    def seen(self, session_id: str, now: float, *, written_at: float = 0.0) -> None:
        """Note a use of the session at `now`; `written_at` is a time its last use is known to have been written
        (a JWT's issue time: every sign-in and refresh writes it)."""
        last = max(self._known.get(session_id, 0.0), written_at)
        if now - last < self.interval or session_id in self._due or session_id in self._writing:
            return
        if not _SESSION_ID.fullmatch(session_id):
            return
        self._due.add(session_id)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write(), name="session-activity")

    def written(self, session_id: str, at: float) -> None:
        """Remember that this session's last use was written at `at` (by a sign-in or a refresh on this worker)."""
        self._remember({session_id: at})

    async def _write(self) -> None:
        """Write what is due, batch after batch, until nothing is."""
        while self._due:
            batch = [self._due.pop() for _ in range(min(len(self._due), MAX_BATCH))]
            self._writing.update(batch)
            try:
                stand, written = await models.touch_sessions(self._db, batch, interval=self.interval)
            except DatabaseUnavailable as exc:
                # Dropped, not retried: the next use of each session queues it again.
                logger.warning("could not record the last use of %d sessions: %s", len(batch), exc)
                continue
            except Exception:
                logger.exception("could not record the last use of %d sessions", len(batch))
                continue
            finally:
                self._writing.difference_update(batch)
            SESSION_LAST_SEEN_WRITES.inc(written)
            self._remember(stand)

    def _remember(self, stand: dict[str, float]) -> None:
        if len(self._known) + len(stand) > KNOWN_LIMIT:
            # What is older than the interval tells nothing: the next use of such a session is due anyway.
            cutoff = time.time() - self.interval
            self._known = {key: at for key, at in self._known.items() if at > cutoff}
            if len(self._known) + len(stand) > KNOWN_LIMIT:
                self._known.clear()
        self._known.update(stand)

    async def close(self) -> None:
        """Finish the write under way (what is queued after it is dropped: at most a minute of last use)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
