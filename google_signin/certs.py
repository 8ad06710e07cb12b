"""Cache of Google's ID-token signing certificates, fetched without blocking and shared by all requests."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

import aiohttp

__all__ = ["CertificatesUnavailable", "GoogleCertificates"]

from core.metrics import CERTIFICATE_FETCHES

logger = logging.getLogger(__name__)

# Google's document is a few KiB; anything much larger is not it.
_MAX_BODY = 256 * 1024
# A floor on freshness so that `no-cache` or `max-age=0` cannot turn every sign-in into a fetch.
_MIN_LIFETIME = 5.0
# A ceiling so that an absurd max-age cannot keep a withdrawn key trusted for months.
_MAX_LIFETIME = 86400.0
_BACKOFF_FIRST = 2.0
_BACKOFF_MAX = 30.0


class CertificatesUnavailable(Exception):
    """No usable certificates: the certificate endpoint failed and nothing usable is cached."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _FetchFailed(Exception):
    """One fetch of the certificate document failed; the message says why."""


def _lifetime(cache_control: str | None, age: str | None, default: float) -> float:
    """Return how many seconds a response may be used, from its Cache-Control and Age headers."""
    lifetime = default
    if cache_control:
        for raw in cache_control.split(","):
            name, _, value = raw.strip().partition("=")
            name = name.strip().lower()
            if name in ("no-store", "no-cache"):
                return 0.0
            if name == "max-age":
                try:
                    lifetime = float(min(int(value.strip().strip('"')), 2**31))
                except ValueError:
                    lifetime = 0.0
    if age is not None:
        try:
            lifetime -= max(0, int(age.strip()))
        except ValueError:
            pass
    return lifetime


def _parse_certs(body: bytes) -> dict[str, str]:
    """Parse Google's v1 certificate document, `{kid: PEM certificate}`, or raise _FetchFailed."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _FetchFailed("response is not JSON") from exc
    if not isinstance(data, dict) or not data:
        raise _FetchFailed("response is not a non-empty JSON object")
    for kid, pem in data.items():
        if not isinstance(kid, str) or not isinstance(pem, str) or not pem.lstrip().startswith("-----BEGIN "):
            raise _FetchFailed("response is not an object of PEM certificates")
    return data


class GoogleCertificates:
    """Google's signing certificates, refreshed as their max-age allows, one fetch at a time, stale-tolerant."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        min_refetch_interval: float = 60.0,
        max_stale: float = 86400.0,
        default_max_age: float = 300.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._url = url
        self._min_refetch_interval = min_refetch_interval
        self._max_stale = max_stale
        self._default_max_age = default_max_age
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._certs: Mapping[str, str] | None = None
        self._fresh_until = -math.inf
        self._last_attempt = -math.inf
        self._next_attempt = -math.inf
        self._failures = 0
        self._inflight: asyncio.Task[None] | None = None
        self.fetch_count = 0

    async def get(self, kid: str | None = None) -> Mapping[str, str]:
        """Return the current `{kid: PEM}` certificates, refetching early (rate-limited) when `kid` is unknown."""
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
        now = self._clock()
        if self._certs is not None and now < self._fresh_until:
            if kid is None or kid in self._certs or not self._may_fetch(now, forced=True):
                return self._certs
        elif not self._may_fetch(now, forced=False):
            return self._usable_or_raise(now)
        await self._refresh()
        return self._usable_or_raise(self._clock())

    def _may_fetch(self, now: float, *, forced: bool) -> bool:
        """Whether a fetch may start now: never during failure backoff; early ones only once per interval."""
        if now < self._next_attempt:
            return False
        return not forced or now - self._last_attempt >= self._min_refetch_interval

    def _usable_or_raise(self, now: float) -> Mapping[str, str]:
        """Return the cached certificates unless there are none or they are past `max_stale`."""
        if self._certs is not None and now < self._fresh_until + self._max_stale:
            return self._certs
        wait = self._next_attempt - now
        retry_after = math.ceil(wait) if wait > 1 else 1
        raise CertificatesUnavailable("Google's signing certificates are unavailable", retry_after=retry_after)

    async def _refresh(self) -> None:
        """Start a fetch unless one is in flight, and wait for it; a cancelled waiter does not cancel it."""
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._fetch())
        await asyncio.shield(self._inflight)

    async def _fetch(self) -> None:
        """Fetch once and update the cache; a failure keeps the old certificates and schedules the next try."""
        try:
            self._last_attempt = self._clock()
            self.fetch_count += 1
            try:
                certs, lifetime = await self._download()
            except _FetchFailed as exc:
                CERTIFICATE_FETCHES.labels("failure").inc()
                self._record_failure(str(exc))
            else:
                CERTIFICATE_FETCHES.labels("success").inc()
                self._certs = MappingProxyType(certs)
                self._fresh_until = self._clock() + min(max(lifetime, _MIN_LIFETIME), _MAX_LIFETIME)
                self._failures = 0
                self._next_attempt = -math.inf
                logger.debug("fetched %d Google certificates from %s", len(certs), self._url)
        finally:
            self._inflight = None

    async def _download(self) -> tuple[dict[str, str], float]:
        """GET the certificate document; return it and its lifetime in seconds, or raise _FetchFailed."""
        try:
            async with self._session.get(self._url, timeout=self._timeout, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise _FetchFailed(f"HTTP status {resp.status}")
                body = bytearray()
                async for chunk in resp.content.iter_chunked(16384):
                    body += chunk
                    if len(body) > _MAX_BODY:
                        raise _FetchFailed("response is too large")
                lifetime = _lifetime(resp.headers.get("Cache-Control"), resp.headers.get("Age"), self._default_max_age)
        except TimeoutError as exc:
            raise _FetchFailed("timed out") from exc
        except aiohttp.ClientError as exc:
            raise _FetchFailed(f"{type(exc).__name__}: {exc}") from exc
        return _parse_certs(bytes(body)), lifetime

    def _record_failure(self, reason: str) -> None:
        """Log the failure and back off exponentially so a down endpoint is not retried on every request."""
        now = self._clock()
        self._failures += 1
        delay = min(_BACKOFF_FIRST * 2 ** (self._failures - 1), _BACKOFF_MAX)
        self._next_attempt = now + delay
        if self._certs is not None and now < self._fresh_until + self._max_stale:
            logger.warning(
                "fetching %s failed (%s); serving cached Google certificates %.0f s past due; retry in %.0f s",
                self._url,
                reason,
                max(0.0, now - self._fresh_until),
                delay,
            )
        else:
            logger.warning(
                "fetching %s failed (%s); no usable Google certificates, retry in %.0f s",
                self._url,
                reason,
                delay,
            )
