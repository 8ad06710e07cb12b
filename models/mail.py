"""The mail outbox: messages written with the change that causes them, taken one at a time by the senders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from db.pool import Cursor, Database
from mail.messages import Letter
from models.records import OutboxMessage

# A letter to the user's verified address, when they have one; part of the statement of the change it is about.
# Parameters: %(user_id)s and the letter's (see `letter_params`).
NOTICE_INSERT = """
INSERT INTO mail_outbox (user_id, recipient, kind, sealed)
SELECT id, email, %(letter_kind)s, %(letter_sealed)s FROM users WHERE id = %(user_id)s AND email_verified_at IS NOT NULL
"""

# The next message due, locked for as long as its sender holds the transaction: a sender on another worker or server
# skips it rather than waiting, and takes it only if this one's transaction ends without marking it (a crash, a lost
# connection). The name is read now, so a renamed user is greeted by the new name.
CLAIM_DUE = """
SELECT outbox.id, outbox.recipient, outbox.kind, outbox.sealed, users.username, outbox.attempts,
       extract(epoch FROM now() - outbox.created_at)::float8
FROM mail_outbox AS outbox LEFT JOIN users ON users.id = outbox.user_id
WHERE outbox.sent_at IS NULL AND outbox.failed_at IS NULL AND outbox.next_attempt_at <= now()
ORDER BY outbox.next_attempt_at, outbox.id
LIMIT 1
FOR UPDATE OF outbox SKIP LOCKED
"""

MARK_SENT = "UPDATE mail_outbox SET sent_at = now(), attempts = attempts + 1, sealed = NULL WHERE id = %(id)s"
MARK_RETRY = """
UPDATE mail_outbox SET attempts = attempts + 1, last_error = %(error)s,
                       next_attempt_at = now() + make_interval(secs => %(delay)s)
WHERE id = %(id)s
"""
MARK_FAILED = """
UPDATE mail_outbox SET attempts = attempts + 1, last_error = %(error)s, failed_at = now(), sealed = NULL
WHERE id = %(id)s
"""

# Seconds until the next message is due (negative: overdue), or None when nothing waits.
SECONDS_TO_NEXT_DUE = """
SELECT extract(epoch FROM min(next_attempt_at) - now())::float8 FROM mail_outbox
WHERE sent_at IS NULL AND failed_at IS NULL
"""

# Sent and failed messages are kept a while for operators (recipient, kind, when, why), then dropped a few at a time.
PURGE_DONE = """
DELETE FROM mail_outbox WHERE id IN (
    SELECT id FROM mail_outbox
    WHERE (sent_at IS NOT NULL OR failed_at IS NOT NULL) AND created_at < now() - make_interval(days => %(days)s)
    LIMIT 100
)
"""
KEEP_DAYS = 30


def letter_params(letter: Letter) -> dict[str, Any]:
    """The bound parameters NOTICE_INSERT (and every statement that writes a letter) takes for `letter`."""
    return {"letter_kind": letter.kind, "letter_sealed": letter.sealed}


class Claimed:
    """A message locked for delivery by this sender; mark how it went before the block ends (else it stays due)."""

    def __init__(self, cur: Cursor, message: OutboxMessage) -> None:
        self._cur = cur
        self.message = message

    async def sent(self) -> None:
        """The relay took it."""
        await self._cur.execute(MARK_SENT, {"id": self.message.id})

    async def retry(self, *, delay: float, error: str) -> None:
        """Try again in `delay` seconds; `error` says why this attempt failed."""
        await self._cur.execute(MARK_RETRY, {"id": self.message.id, "delay": delay, "error": error[:1000]})

    async def failed(self, *, error: str) -> None:
        """Give up on it, saying why."""
        await self._cur.execute(MARK_FAILED, {"id": self.message.id, "error": error[:1000]})


@asynccontextmanager
async def claim_due_message(db: Database) -> AsyncIterator[Claimed | None]:
    """The next due message, locked until the block ends (None when none is due); what is marked is committed then."""
    async with db.cursor() as cur, cur.transaction():
        await cur.execute(CLAIM_DUE)
        row = await cur.fetchone()
        if row is None:
            yield None
            return
        sealed = bytes(row[3]) if row[3] is not None else None
        yield Claimed(cur, OutboxMessage(row[0], row[1], row[2], sealed, row[4], row[5], float(row[6])))


async def seconds_to_next_due(db: Database) -> float | None:
    """How long until the next waiting message is due (<= 0: now), or None when the outbox holds nothing to send."""
    row = await db.fetch_one(SECONDS_TO_NEXT_DUE)
    return None if row is None or row[0] is None else float(row[0])


async def purge_done_messages(db: Database) -> int:
    """Drop a batch of messages sent or given up on more than KEEP_DAYS days ago; how many went."""
    return await db.execute(PURGE_DONE, {"days": KEEP_DAYS})
