"""OpenID Connect client pieces for Google web sign-in: the cached discovery document, PKCE, and the code exchange."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from core.cached_document import CachedDocument, DocumentUnavailable, FetchFailed, freshness_lifetime, read_capped

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

# Google's discovery document and token answers are a few KiB; anything much larger is not them.
_MAX_BODY = 64 * 1024
# Freshness bounds: `no-cache` must not turn every sign-in into a fetch, nor a huge max-age pin old endpoints.
_MIN_LIFETIME = 60.0
_MAX_LIFETIME = 86400.0
_LOOPBACK_NAMES = frozenset({"localhost"})


class DiscoveryUnavailable(DocumentUnavailable):
    """The discovery document cannot be fetched and no usable copy is cached."""


class ProviderUnavailable(Exception):
    """The token endpoint could not be reached or gave an answer that is not OAuth's."""


class TokenRefused(Exception):
    """The token endpoint refused the code (wrong, used, expired, or its PKCE verifier did not match)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


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
        raise FetchFailed(f"'{name}' is missing")
    parts = urlsplit(value)
    host = parts.hostname or ""
    if not host or not (parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))):
        raise FetchFailed(f"'{name}' is not an https URL")
    return value


def parse_metadata(body: bytes) -> ProviderMetadata:
    """Parse a discovery document, or raise FetchFailed."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FetchFailed("response is not JSON") from exc
    if not isinstance(data, dict):
        raise FetchFailed("response is not a JSON object")
    issuer = data.get("issuer")
    if not isinstance(issuer, str) or not issuer:
        raise FetchFailed("'issuer' is missing")
    jwks_uri = data.get("jwks_uri")
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=_endpoint(data, "authorization_endpoint"),
        token_endpoint=_endpoint(data, "token_endpoint"),
        jwks_uri=jwks_uri if isinstance(jwks_uri, str) else None,
    )


def max_age(cache_control: str | None, default: float, age: str | None = None) -> float:
    """Seconds a discovery response may be used per its Cache-Control and Age, within the module's bounds."""
    return freshness_lifetime(cache_control, age, default=default, floor=_MIN_LIFETIME, ceiling=_MAX_LIFETIME)


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
        self._document = CachedDocument(
            session,
            url,
            parse_metadata,
            name="the OpenID discovery document",
            default_max_age=default_max_age,
            min_lifetime=_MIN_LIFETIME,
            max_lifetime=_MAX_LIFETIME,
            max_stale=max_stale,
            max_body=_MAX_BODY,
            timeout=timeout,
            unavailable=DiscoveryUnavailable,
            clock=clock,
        )

    @property
    def fetch_count(self) -> int:
        """How many fetches of the document have started, successful or not."""
        return self._document.fetch_count

    async def get(self) -> ProviderMetadata:
        """The provider's metadata: cached while fresh, refetched after, a stale copy while the provider is down."""
        return await self._document.get()


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
            body = await read_capped(resp, _MAX_BODY)
    except TimeoutError as exc:
        raise ProviderUnavailable("the token endpoint timed out") from exc
    except aiohttp.ClientError as exc:
        raise ProviderUnavailable(f"the token endpoint failed: {type(exc).__name__}") from exc
    except FetchFailed as exc:
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
