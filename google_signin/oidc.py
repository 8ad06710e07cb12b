"""OpenID Connect client pieces for Google web sign-in: the cached discovery document, PKCE, and the code exchange."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

__all__ = [
    "DiscoveryUnavailable",
    "OpenIdDiscovery",
    "ProviderMetadata",
    "ProviderUnavailable",
    "TokenRefused",
    "code_challenge",
    "exchange_code",
    "new_code_verifier",
]

logger = logging.getLogger(__name__)

# Google's discovery document and token answers are a few KiB; anything much larger is not them.
_MAX_BODY = 64 * 1024
# Freshness bounds: `no-cache` must not turn every sign-in into a fetch, nor a huge max-age pin old endpoints.
_MIN_LIFETIME = 60.0
_MAX_LIFETIME = 86400.0
_BACKOFF_FIRST = 2.0
_BACKOFF_MAX = 30.0
_LOOPBACK_NAMES = frozenset({"localhost"})


class DiscoveryUnavailable(Exception):
    """The discovery document cannot be fetched and no usable copy is cached."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(Exception):
    """The token endpoint could not be reached or gave an answer that is not OAuth's."""


class TokenRefused(Exception):
    """The token endpoint refused the code (wrong, used, expired, or its PKCE verifier did not match)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class _FetchFailed(ValueError):
    """One fetch failed, or its answer is unusable; the message says why (never a secret)."""


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of an OpenID provider's discovery document that the redirect flow uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str | None = None


def _is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses: the only hosts plain http is allowed to (local fakes)."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _endpoint(data: dict[str, Any], name: str) -> str:
    """An endpoint URL of the document: https, or http to a loopback host; the client secret goes there."""
    value = data.get(name)
    if not isinstance(value, str):
        raise _FetchFailed(f"'{name}' is missing")
    parts = urlsplit(value)
    host = parts.hostname or ""
    if not host or not (parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))):
        raise _FetchFailed(f"'{name}' is not an https URL")
    return value


def parse_metadata(body: bytes) -> ProviderMetadata:
    """Parse a discovery document, or raise _FetchFailed."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _FetchFailed("response is not JSON") from exc
    if not isinstance(data, dict):
        raise _FetchFailed("response is not a JSON object")
    issuer = data.get("issuer")
    if not isinstance(issuer, str) or not issuer:
        raise _FetchFailed("'issuer' is missing")
    jwks_uri = data.get("jwks_uri")
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=_endpoint(data, "authorization_endpoint"),
        token_endpoint=_endpoint(data, "token_endpoint"),
        jwks_uri=jwks_uri if isinstance(jwks_uri, str) else None,
    )


def max_age(cache_control: str | None, default: float) -> float:
    """Seconds a response may be used per its Cache-Control, within the module's bounds."""
    lifetime = default
    for directive in (cache_control or "").split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip().lower()
        if name in {"no-store", "no-cache"}:
            lifetime = 0.0
            break
        if name == "max-age":
            try:
                lifetime = float(int(value.strip().strip('"')))
            except ValueError:
                lifetime = 0.0
    return min(max(lifetime, _MIN_LIFETIME), _MAX_LIFETIME)


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    """The response body, refusing more than _MAX_BODY bytes."""
    body = bytearray()
    async for chunk in resp.content.iter_chunked(16384):
        body += chunk
        if len(body) > _MAX_BODY:
            raise _FetchFailed("response is too large")
    return bytes(body)


class OpenIdDiscovery:
    """An OpenID provider's discovery document, fetched with the app's session, cached, one fetch at a time."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        default_max_age: float = 3600.0,
        max_stale: float = 86400.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._url = url
        self._default_max_age = default_max_age
        self._max_stale = max_stale
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._fresh_until = -math.inf
        self._next_attempt = -math.inf
        self._failures = 0
        self._inflight: asyncio.Task[None] | None = None
        self.fetch_count = 0

    async def get(self) -> ProviderMetadata:
        """The provider's metadata: cached while fresh, refetched after, a stale copy while the provider is down."""
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
        if self._metadata is None or self._clock() >= self._fresh_until:
            if self._clock() >= self._next_attempt:
                await self._refresh()
        now = self._clock()
        if self._metadata is not None and now < self._fresh_until + self._max_stale:
            return self._metadata
        wait = self._next_attempt - now
        raise DiscoveryUnavailable(
            "the OpenID discovery document is unavailable", retry_after=math.ceil(wait) if wait > 1 else 1
        )

    async def _refresh(self) -> None:
        """Start a fetch unless one is in flight, and wait for it; a cancelled waiter does not cancel it."""
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._fetch())
        await asyncio.shield(self._inflight)

    async def _fetch(self) -> None:
        """Fetch once; a failure keeps any old copy and backs off exponentially."""
        try:
            self.fetch_count += 1
            try:
                metadata, lifetime = await self._download()
            except _FetchFailed as exc:
                self._failures += 1
                delay = min(_BACKOFF_FIRST * 2 ** (self._failures - 1), _BACKOFF_MAX)
                self._next_attempt = self._clock() + delay
                logger.warning("fetching %s failed (%s); retry in %.0f s", self._url, exc, delay)
            else:
                self._metadata = metadata
                self._fresh_until = self._clock() + lifetime
                self._failures = 0
                self._next_attempt = -math.inf
                logger.debug("fetched the OpenID discovery document from %s", self._url)
        finally:
            self._inflight = None

    async def _download(self) -> tuple[ProviderMetadata, float]:
        """GET the document; return it and its lifetime in seconds, or raise _FetchFailed."""
        try:
            async with self._session.get(self._url, timeout=self._timeout, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise _FetchFailed(f"HTTP status {resp.status}")
                body = await _read_capped(resp)
                lifetime = max_age(resp.headers.get("Cache-Control"), self._default_max_age)
        except TimeoutError as exc:
            raise _FetchFailed("timed out") from exc
        except aiohttp.ClientError as exc:
            raise _FetchFailed(type(exc).__name__) from exc
        return parse_metadata(body), lifetime


def new_code_verifier() -> str:
    """A PKCE code verifier: 64 characters from 384 random bits (RFC 7636 allows 43 to 128)."""
    return secrets.token_urlsafe(48)


def code_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier: base64url(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def exchange_code(
    session: aiohttp.ClientSession,
    token_endpoint: str,
    *,
    code: str,
    redirect_uri: str,
    client_id: str,
    client_secret: str,
    code_verifier: str,
    time_limit: float,
) -> str:
    """Trade an authorization code for its `id_token`; TokenRefused if refused, ProviderUnavailable if unreachable."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "client_secret": client_secret,
        "code_verifier": code_verifier,
    }
    try:
        async with session.post(
            token_endpoint,
            data=form,
            headers={"Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=time_limit),
            allow_redirects=False,
        ) as resp:
            status = resp.status
            body = await _read_capped(resp)
    except TimeoutError as exc:
        raise ProviderUnavailable("the token endpoint timed out") from exc
    except aiohttp.ClientError as exc:
        raise ProviderUnavailable(f"the token endpoint failed: {type(exc).__name__}") from exc
    except _FetchFailed as exc:
        raise ProviderUnavailable(f"the token endpoint's answer: {exc}") from exc
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if status in {400, 401} and isinstance(data, dict):
        # RFC 6749 §5.2: the code (or the client) was refused. Only the error code is kept: it is safe to log.
        error = data.get("error")
        raise TokenRefused(error if isinstance(error, str) and error.isascii() and len(error) <= 64 else "invalid")
    if status != 200 or not isinstance(data, dict):
        raise ProviderUnavailable(f"the token endpoint answered HTTP {status}")
    id_token = data.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise ProviderUnavailable("the token endpoint's answer has no id_token")
    return id_token
