"""The sender each worker runs: takes due messages from the outbox one at a time and hands them to the relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage

import models
from core.metrics import MAIL_ATTEMPTS
from db.events import Events
from db.pool import DatabaseUnavailable
from mail.messages import CODE_KINDS, CODE_MINUTES, render
from mail.sealing import Unsealable, unseal
from mail.smtp import SMTP_TIMEOUT, DeliveryFailed, Transport
from models.records import OutboxMessage

logger = logging.getLogger(__name__)

WAKE_NOTICE = "mail"  # what sql/0008's trigger announces on the events channel when a message is written
POLL_SECONDS = 5.0  # the longest a sender sleeps: a notice missed while the channel reconnected waits no longer
POLL_SECONDS_OFFLINE = 1.0  # while notices are not flowing
MAX_BACKOFF_SECONDS = 900.0  # the longest wait between two attempts at one message
PURGE_EVERY_SECONDS = 3600.0
STOP_GRACE_SECONDS = SMTP_TIMEOUT + 5  # at shutdown, time for the delivery under way to finish and be marked


def backoff(base: float, attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: doubling from `base`, at most MAX_BACKOFF_SECONDS."""
    return float(min(base * 2 ** min(attempts - 1, 30), MAX_BACKOFF_SECONDS))


class MailSender:
    """Delivers the outbox from this worker. Woken by the events channel when a message is written (by any worker or
    server), and by its own clock for retries. Each message is locked while it is sent (see models/mail.py), so
    however many senders run, each message goes to the relay once."""

    def __init__(
        self,
        events: Events,
        transport: Transport,
        *,
        secret_key: str,
        email_from: str,
        retry_seconds: float,
        max_attempts: int,
    ) -> None:
        self._events = events
        self._db = events.db
        self._transport = transport
        self._secret_key = secret_key
        self._email_from = email_from
        self._retry_seconds = retry_seconds
        self._max_attempts = max_attempts
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_purge = 0.0

    # ---- the events channel (a db.events.Follower) ----

    def apply(self, notice: str) -> None:
        """A message was written somewhere: look now."""
        if WAKE_NOTICE in notice.split():
            self._wake.set()

    async def reload(self) -> None:
        """The channel (re)connected and notices may have been missed: look now."""
        self._wake.set()

    def tick(self, now: float) -> None:
        """Nothing to tidy in memory."""

    # ---- the loop ----

    async def run(self) -> None:
        """Deliver what is due, then sleep until woken or the next retry is due; until stopped."""
        failures = 0
        while not self._stopping:
            self._wake.clear()  # before looking: a notice that comes while delivering wakes the next round
            try:
                while not self._stopping and await self.deliver_one():
                    pass
                await self._purge()
                wait = await self._next_wait()
                failures = 0
            except DatabaseUnavailable as exc:
                failures += 1
                wait = min(0.5 * 2**failures, POLL_SECONDS)
                logger.warning("mail sender: database unavailable (%s); retrying in %.1f s", exc, wait)
            except Exception:
                failures += 1
                wait = min(0.5 * 2**failures, POLL_SECONDS)
                logger.exception("mail sender: unexpected error; retrying in %.1f s", wait)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def deliver_one(self) -> bool:
        """Take the next due message, try it once and record how it went; False when none was due."""
        async with models.claim_due_message(self._db) as claimed:
            if claimed is None:
                return False
            message = claimed.message
            try:
                email = self._write(message)
            except (Unsealable, ValueError, KeyError) as exc:
                MAIL_ATTEMPTS.labels(message.kind, "failed").inc()
                logger.warning("mail %d (%s) given up: %s", message.id, message.kind, exc)
                await claimed.failed(error=f"cannot be written: {exc}")
                return True
            try:
                await self._transport.deliver(email)
            except DeliveryFailed as exc:
                attempts = message.attempts + 1
                if exc.permanent or attempts >= self._max_attempts:
                    MAIL_ATTEMPTS.labels(message.kind, "failed").inc()
                    logger.warning("mail %d (%s) given up, attempt %d: %s", message.id, message.kind, attempts, exc)
                    await claimed.failed(error=str(exc))
                else:
                    MAIL_ATTEMPTS.labels(message.kind, "retry").inc()
                    delay = backoff(self._retry_seconds, attempts)
                    logger.info("mail %d (%s) not delivered, again in %.1f s: %s", message.id, message.kind, delay, exc)
                    await claimed.retry(delay=delay, error=str(exc))
                return True
            await claimed.sent()
            MAIL_ATTEMPTS.labels(message.kind, "sent").inc()
            logger.info("mail %d (%s) delivered", message.id, message.kind)
            return True

    def _write(self, message: OutboxMessage) -> EmailMessage:
        """The message as the relay takes it; Unsealable or ValueError when it cannot (or should not) be written."""
        if message.sealed is None:
            raise ValueError("it holds no text")
        if message.kind in CODE_KINDS and message.age > CODE_MINUTES * 60:
            raise ValueError("its code expired before the relay could take it")
        params = unseal(self._secret_key, message.kind, message.sealed)
        params["username"] = message.username or "there"
        return render(message.kind, params, email_from=self._email_from, recipient=message.recipient)

    async def _next_wait(self) -> float:
        """Seconds to sleep: until the next retry is due, at most a poll interval."""
        poll = POLL_SECONDS if self._events.live else POLL_SECONDS_OFFLINE
        due = await models.seconds_to_next_due(self._db)
        return poll if due is None else min(max(due, 0.05), poll)

    async def _purge(self) -> None:
        now = time.monotonic()
        if now - self._last_purge >= PURGE_EVERY_SECONDS:
            self._last_purge = now
            await models.purge_done_messages(self._db)

    def stop(self) -> None:
        """Finish the delivery under way, then return from run()."""
        self._stopping = True
        self._wake.set()


@contextlib.asynccontextmanager
async def sending(sender: MailSender) -> AsyncIterator[None]:
    """Run the sender for the life of the block; at its end let the delivery under way finish, within a bound."""
    task = asyncio.create_task(sender.run(), name="mail sender")
    try:
        yield
    finally:
        sender.stop()
        try:
            async with asyncio.timeout(STOP_GRACE_SECONDS):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
