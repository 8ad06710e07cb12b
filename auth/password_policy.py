"""What a new password must be: not too guessable (zxcvbn) and, when a range API is configured, not known breached."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import time
from collections import OrderedDict

import aiohttp
import zxcvbn

from core.errors import Unprocessable

logger = logging.getLogger(__name__)

MIN_SCORE = 2  # zxcvbn's 0 "too guessable" and 1 "very guessable" are refused
# zxcvbn's own cap: its matching grows fast with the length. A longer password is judged by its first 72 characters,
# a lower bound of its strength, so nothing weak gets through.
ESTIMATE_CHARS = 72
RANGE_TIMEOUT = 3.0  # seconds for one range request; past it the password is allowed (and that is logged)
RANGE_CACHE_SIZE = 4096  # prefixes kept
RANGE_CACHE_SECONDS = 24 * 3600.0


def _estimate(password: str, user_inputs: list[str]) -> tuple[int, str]:
    """zxcvbn's score (0-4) and its advice; blocking, and not thread-safe (it keeps the inputs in a global)."""
    result = zxcvbn.zxcvbn(password[:ESTIMATE_CHARS], user_inputs=user_inputs)
    feedback = result.get("feedback") or {}
    advice = " ".join(part for part in [feedback.get("warning") or "", *(feedback.get("suggestions") or [])] if part)
    return int(result["score"]), advice


class PasswordPolicy:
    """Checks new passwords at registration, reset and change; the estimate runs on one thread of its own."""

    def __init__(
        self,
        *,
        executor: concurrent.futures.Executor,
        session: aiohttp.ClientSession | None = None,
        range_url: str | None = None,
    ) -> None:
        self._executor = executor  # one thread: zxcvbn is not thread-safe
        self._session = session
        self._range_url = range_url
        self._ranges: OrderedDict[str, tuple[float, frozenset[str]]] = OrderedDict()

    async def check(self, password: str, *, user_inputs: list[str | None]) -> None:
        """422 with the reason when `password` is too guessable (with the username and email as known words to the
        guesser) or known breached."""
        inputs = [word for word in user_inputs if word]
        for word in list(inputs):
            local, at, _ = word.partition("@")
            if at:
                inputs.append(local)
        loop = asyncio.get_running_loop()
        score, advice = await loop.run_in_executor(self._executor, _estimate, password, inputs)
        if score < MIN_SCORE:
            raise Unprocessable(f"That password is too easy to guess. {advice}".strip())
        if self._range_url is not None and await self._breached(password):
            raise Unprocessable(
                "That password appears in known data breaches, so attackers try it early: choose another one."
            )

    async def _breached(self, password: str) -> bool:
        """Whether the range API lists the password; False (allowed, and logged) when it cannot be asked."""
        digest = hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()  # the API's own scheme
        prefix, suffix = digest[:5], digest[5:]
        suffixes = self._cached(prefix)
        if suffixes is None:
            suffixes = await self._fetch(prefix)
            if suffixes is None:
                return False
        return suffix in suffixes

    def _cached(self, prefix: str) -> frozenset[str] | None:
        entry = self._ranges.get(prefix)
        if entry is None or entry[0] < time.monotonic():
            return None
        self._ranges.move_to_end(prefix)
        return entry[1]

    async def _fetch(self, prefix: str) -> frozenset[str] | None:
        """The suffixes the API lists under `prefix` (padding entries, with a count of 0, left out); None on failure."""
        assert self._session is not None and self._range_url is not None
        url = f"{self._range_url}/range/{prefix}"
        try:
            async with self._session.get(
                url, headers={"Add-Padding": "true"}, timeout=aiohttp.ClientTimeout(total=RANGE_TIMEOUT)
            ) as resp:
                if resp.status != 200:
                    logger.warning("breached-password check unavailable (HTTP %d): password allowed", resp.status)
                    return None
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError) as exc:
            logger.warning("breached-password check unavailable (%s): password allowed", type(exc).__name__)
            return None
        suffixes = set()
        for line in text.splitlines():
            suffix, _, count = line.strip().partition(":")
            if count.strip() not in {"", "0"}:
                suffixes.add(suffix.upper())
        found = frozenset(suffixes)
        self._ranges[prefix] = (time.monotonic() + RANGE_CACHE_SECONDS, found)
        while len(self._ranges) > RANGE_CACHE_SIZE:
            self._ranges.popitem(last=False)
        return found
