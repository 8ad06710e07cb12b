"""A remote document cached per its Cache-Control and Age: one fetch at a time, backoff, a stale copy while down."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import aiohttp

__all__ = ["CachedDocument", "DocumentUnavailable", "FetchFailed", "freshness_lifetime", "read_capped"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# RFC 9111 §1.2.2: a delta-seconds value too large to represent means 2^31 seconds.
_DELTA_SECONDS_MAX = 2**31
_BACKOFF_FIRST = 2.0
_BACKOFF_MAX = 30.0
_CHUNK = 16384


class DocumentUnavailable(Exception):
    """The document cannot be fetched and no usable copy is cached; `retry_after` says when a fetch may start."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FetchFailed(ValueError):
    """One fetch failed, or its answer is unusable; the message says why (never a secret)."""


def _delta_seconds(value: str) -> int | None:
    """An RFC 9111 delta-seconds value (ASCII digits only, capped at 2^31), or None when it is not one."""
    value = value.strip()
    if not value.isascii() or not value.isdigit():
        return None
    return min(int(value), _DELTA_SECONDS_MAX)


def freshness_lifetime(
    cache_control: str | None,
    age: str | None,
    *,
    default: float,
    floor: float = 0.0,
    ceiling: float = math.inf,
) -> float:
    """Seconds a response stays fresh: its max-age (else `default`) less its Age, never negative, within bounds."""
    lifetime = default
    for directive in (cache_control or "").split(","):
        name, _, value = directive.partition("=")
        name = name.strip().lower()
        if name in {"no-store", "no-cache"}:
            lifetime = 0.0
            break
        if name == "max-age":
            seconds = _delta_seconds(value.strip().strip('"'))
            # RFC 9111 §4.2.1: an invalid max-age makes the response stale, not cacheable for the default.
            lifetime = 0.0 if seconds is None else float(seconds)
    # The Age header says how long the response already sat in caches on the way (RFC 9111 §4.2.3); that time
    # counts against max-age, or a CDN's copy would be trusted for up to twice as long as the origin meant.
    already = _delta_seconds(age) if age is not None else None
    if already is not None:
        lifetime -= already
    return min(max(lifetime, 0.0, floor), ceiling)


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The response body, or FetchFailed once it passes `limit` bytes (read in chunks, so never held whole)."""
    body = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise FetchFailed("response is too large")
    return bytes(body)


class CachedDocument(Generic[T]):
    """A document fetched over HTTP and parsed, cached while fresh, one fetch at a time, stale-tolerant.

    `parse` turns a body into the document (never None) or raises FetchFailed; `name` names the document in logs
    and errors; `min_lifetime` and `max_lifetime` bound the freshness a response claims; `max_stale` is how long
    past due a copy is still served while fetches fail; `unavailable` is the error raised when no copy is usable;
    `on_fetch` hears each fetch's outcome, "success" or "failure" (for metrics).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        parse: Callable[[bytes], T],
        *,
        name: str,
        default_max_age: float,
        min_lifetime: float,
        max_lifetime: float = 86400.0,
        max_stale: float = 86400.0,
        max_body: int = 256 * 1024,
        min_refetch_interval: float = 60.0,
        timeout: float = 10.0,
        unavailable: type[DocumentUnavailable] = DocumentUnavailable,
        on_fetch: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._url = url
        self._parse = parse
        self._name = name
        self._default_max_age = default_max_age
        self._min_lifetime = min_lifetime
        self._max_lifetime = max_lifetime
        self._max_stale = max_stale
        self._max_body = max_body
        self._min_refetch_interval = min_refetch_interval
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._unavailable = unavailable
        self._on_fetch = on_fetch
        self._clock = clock
        self._value: T | None = None
        self._fresh_until = -math.inf
        self._last_attempt = -math.inf
        self._next_attempt = -math.inf
        self._failures = 0
        self._inflight: asyncio.Task[None] | None = None
        self.fetch_count = 0

    @property
    def fresh_until(self) -> float:
        """When the cached copy goes stale, on the cache's clock; -inf until a fetch has succeeded."""
        return self._fresh_until

    async def get(self, accept: Callable[[T], bool] | None = None) -> T:
        """The document: cached while fresh, then refetched; a fresh copy `accept` refuses is refetched early."""
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
        now = self._clock()
        if self._value is not None and now < self._fresh_until:
            # Early refetches are rate-limited: `accept` may depend on input anyone can send (a forged key ID).
            if accept is None or accept(self._value) or not self._may_fetch(now, early=True):
                return self._value
        elif not self._may_fetch(now, early=False):
            return self._usable_or_raise(now)
        await self._refresh()
        return self._usable_or_raise(self._clock())

    def _may_fetch(self, now: float, *, early: bool) -> bool:
        """Whether a fetch may start now: never during failure backoff; early ones only once per interval."""
        if now < self._next_attempt:
            return False
        return not early or now - self._last_attempt >= self._min_refetch_interval

    def _usable_or_raise(self, now: float) -> T:
        """The cached copy, unless there is none or it is more than `max_stale` past due."""
        if self._value is not None and now < self._fresh_until + self._max_stale:
            return self._value
        wait = self._next_attempt - now
        raise self._unavailable(f"no usable copy of {self._name}", retry_after=math.ceil(wait) if wait > 1 else 1)

    async def _refresh(self) -> None:
        """Start a fetch unless one is in flight, and wait for it; a cancelled waiter does not cancel it."""
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._fetch())
        await asyncio.shield(self._inflight)

    async def _fetch(self) -> None:
        """Fetch once and update the cache; a failure keeps the old copy and schedules the next try."""
        try:
            self._last_attempt = self._clock()
            self.fetch_count += 1
            try:
                value, lifetime = await self._download()
            except FetchFailed as exc:
                self._report("failure")
                self._record_failure(str(exc))
            else:
                self._report("success")
                self._value = value
                self._fresh_until = self._clock() + lifetime
                self._failures = 0
                self._next_attempt = -math.inf
                logger.debug("fetched %s from %s, fresh for %.0f s", self._name, self._url, lifetime)
        finally:
            self._inflight = None

    def _report(self, outcome: str) -> None:
        """Tell `on_fetch`, if any, how a fetch ended."""
        if self._on_fetch is not None:
            self._on_fetch(outcome)

    async def _download(self) -> tuple[T, float]:
        """GET the document; return it parsed with its freshness lifetime in seconds, or raise FetchFailed."""
        try:
            async with self._session.get(self._url, timeout=self._timeout, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise FetchFailed(f"HTTP status {resp.status}")
                body = await read_capped(resp, self._max_body)
                lifetime = freshness_lifetime(
                    resp.headers.get("Cache-Control"),
                    resp.headers.get("Age"),
                    default=self._default_max_age,
                    floor=self._min_lifetime,
                    ceiling=self._max_lifetime,
                )
        except TimeoutError as exc:
            raise FetchFailed("timed out") from exc
        except aiohttp.ClientError as exc:
            raise FetchFailed(f"{type(exc).__name__}: {exc}") from exc
        return self._parse(body), lifetime

    def _record_failure(self, reason: str) -> None:
        """Log the failure and back off exponentially so a down endpoint is not retried on every request."""
        now = self._clock()
        self._failures += 1
        delay = min(_BACKOFF_FIRST * 2 ** (self._failures - 1), _BACKOFF_MAX)
        self._next_attempt = now + delay
        if self._value is not None and now < self._fresh_until + self._max_stale:
            logger.warning(
                "fetching %s failed (%s); serving the cached copy of %s %.0f s past due; retry in %.0f s",
                self._url,
                reason,
                self._name,
                max(0.0, now - self._fresh_until),
                delay,
            )
        else:
            logger.warning(
                "fetching %s failed (%s); no usable copy of %s, retry in %.0f s", self._url, reason, self._name, delay
            )
