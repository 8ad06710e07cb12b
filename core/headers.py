"""Response headers for security: a Server header without versions, HSTS over TLS, and the pages' own headers."""

from __future__ import annotations

import functools
from collections.abc import MutableMapping

from aiohttp import web, web_response
from multidict import istr

from core.keys import settings_key

SERVER = "chatterd"
HSTS = "max-age=31536000; includeSubDomains"
# istr names: the response's header dictionary takes them without folding their case on every answer.
NOSNIFF_HEADER = istr("X-Content-Type-Options")
HSTS_HEADER = istr("Strict-Transport-Security")


def set_page_headers(response: web.StreamResponse, csp: str, *, referrer_policy: str = "no-referrer") -> None:
    """Give a page (or a document pages load) its policy, and refuse framing and content-type guessing."""
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Frame-Options"] = "DENY"  # for browsers older than CSP's frame-ancestors
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = referrer_policy


@functools.lru_cache(maxsize=8)
def _https_site(public_url: str | None) -> bool:
    """Whether the site's PUBLIC_URL is https (a proxy in front ends TLS)."""
    return bool(public_url and public_url.lower().startswith("https://"))


def _serves_https(request: web.Request) -> bool:
    """TLS here (TLS_CERT_FILE/TLS_KEY_FILE), or ended by a proxy in front of a PUBLIC_URL that is https."""
    return request.secure or _https_site(request.app[settings_key].public_url)


def add_security_headers(request: web.Request, headers: MutableMapping[str, str]) -> None:
    """The headers every answer of the app carries, errors and static files included (the request middleware adds
    them; `Server` is aiohttp's default, replaced in setup_headers)."""
    headers.setdefault(NOSNIFF_HEADER, "nosniff")  # static files too: served as labelled
    if _serves_https(request):
        headers[HSTS_HEADER] = HSTS


def setup_headers(app: web.Application) -> None:
    """Make `Server` say only "chatterd"; also on the answers to requests too broken to reach the app."""
    # aiohttp answers a request it cannot parse without involving the app, with its default Server header
    # ("Python/3.x aiohttp/3.x"); it has no setting for it, so the default itself is replaced. Every other answer
    # gets it from the same default.
    web_response.SERVER_SOFTWARE = SERVER  # type: ignore[attr-defined]  # imported there from aiohttp.http
