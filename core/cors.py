"""CORS for the origins in CORS_ORIGINS (aiohttp-cors); with none configured no CORS header is ever sent."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import aiohttp_cors
from aiohttp import web

from core.keys import settings_key
from core.observability import REQUEST_ID_HEADER
from settings import ConfigError

logger = logging.getLogger(__name__)

ALLOW_METHODS = ("GET", "POST", "DELETE")
ALLOW_HEADERS = ("Authorization", "Content-Type", REQUEST_ID_HEADER)
EXPOSE_HEADERS = (REQUEST_ID_HEADER, "Retry-After", "WWW-Authenticate")
PREFLIGHT_MAX_AGE = 600  # seconds a browser may cache a preflight answer


def check_origin(origin: str) -> str:
    """An origin as browsers send it (scheme://host[:port]); a wildcard or a URL with a path is a ConfigError."""
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path or parts.query or parts.fragment:
        raise ConfigError(f"CORS_ORIGINS: {origin!r} is not an origin like https://example.com[:port]")
    return origin


async def _vary_on_origin(request: web.Request, response: web.StreamResponse) -> None:
    """Tell caches that the answer depends on Origin: CORS headers for one origin, none for another."""
    vary = [v.strip() for v in response.headers.get("Vary", "").split(",") if v.strip()]
    if not any(v.lower() == "origin" or v == "*" for v in vary):
        response.headers["Vary"] = ", ".join([*vary, "Origin"])


def setup_cors(app: web.Application) -> None:
    """Allow the configured origins, with credentials, on every API route; call after every route is added."""
    origins = [check_origin(o) for o in app[settings_key].cors_origins]
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
        allow_credentials=True,
        allow_methods=ALLOW_METHODS,
        allow_headers=ALLOW_HEADERS,
        expose_headers=EXPOSE_HEADERS,
        max_age=PREFLIGHT_MAX_AGE,
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    app.on_response_prepare.append(_vary_on_origin)
    for resource in list(app.router.resources()):
        if isinstance(resource, web.StaticResource):
            continue  # the page and docs assets are same-origin only
        cors.add(resource)
    logger.info("CORS allowed for %s", ", ".join(origins))
