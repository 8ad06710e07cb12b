"""Cache of Google's ID-token signing certificates, fetched without blocking and shared by all requests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

import aiohttp

from core.cached_document import CachedDocument, DocumentUnavailable, FetchFailed
from core.metrics import CERTIFICATE_FETCHES

__all__ = ["CertificatesUnavailable", "GoogleCertificates"]

# Google's document is a few KiB; anything much larger is not it.
_MAX_BODY = 256 * 1024
# A floor on freshness so that `no-cache` or `max-age=0` cannot turn every sign-in into a fetch.
_MIN_LIFETIME = 5.0
# A ceiling so that an absurd max-age cannot keep a withdrawn key trusted for months.
_MAX_LIFETIME = 86400.0


class CertificatesUnavailable(DocumentUnavailable):
    """No usable certificates: the certificate endpoint failed and nothing usable is cached."""


def _parse_certs(body: bytes) -> Mapping[str, str]:
    """Parse Google's v1 certificate document, `{kid: PEM certificate}`, read-only, or raise FetchFailed."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FetchFailed("response is not JSON") from exc
    if not isinstance(data, dict) or not data:
        raise FetchFailed("response is not a non-empty JSON object")
    for kid, pem in data.items():
        if not isinstance(kid, str) or not isinstance(pem, str) or not pem.lstrip().startswith("-----BEGIN "):
            raise FetchFailed("response is not an object of PEM certificates")
    return MappingProxyType(data)


def _count_fetch(outcome: str) -> None:
    """Count one certificate fetch by its outcome in the exported metrics."""
    CERTIFICATE_FETCHES.labels(outcome).inc()


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
        self._document = CachedDocument(
            session,
            url,
            _parse_certs,
            name="Google's signing certificates",
            default_max_age=default_max_age,
            min_lifetime=_MIN_LIFETIME,
            max_lifetime=_MAX_LIFETIME,
            max_stale=max_stale,
            max_body=_MAX_BODY,
            min_refetch_interval=min_refetch_interval,
            timeout=timeout,
            unavailable=CertificatesUnavailable,
            on_fetch=_count_fetch,
            clock=clock,
        )

    @property
    def fetch_count(self) -> int:
        """How many fetches of the certificates have started, successful or not."""
        return self._document.fetch_count

    async def get(self, kid: str | None = None) -> Mapping[str, str]:
        """Return the current `{kid: PEM}` certificates, refetching early (rate-limited) when `kid` is unknown."""
        if kid is None:
            return await self._document.get()
        # A key ID not in a fresh copy may be a key Google just rotated in, so it is worth one early fetch.
        return await self._document.get(lambda certs: kid in certs)
