"""Which site a browser request comes from (its Origin, else its Referer), and whether that site is trusted."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from core.errors import Forbidden
from core.keys import settings_key

DEFAULT_PORTS = {"http": 80, "https": 443}
CROSS_SITE_SIGN_IN = "Sign-in from another site refused: sign in on this site's own page."


def normalise_origin(value: str) -> str | None:
    """`scheme://host[:port]` of an origin or URL, lowercased and without a default port; None when it has none."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:  # a port that is not a number, or a broken IPv6 literal
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    # A browser never puts credentials in an Origin (nor, since long, in a Referer): such a value is not a site.
    if scheme not in DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in {None, DEFAULT_PORTS[scheme]} else f"{scheme}://{host}:{port}"


def own_origin(request: web.Request) -> str | None:
    """This server's origin as the request reached it: its own scheme (TLS or not) and the Host it named, if any."""
    host = request.headers.get(hdrs.HOST)  # not request.host, which looks up this machine's name without one
    return normalise_origin(f"{request.scheme}://{host}") if host else None


def trusted_origins(request: web.Request, extra: Iterable[str]) -> frozenset[str]:
    """This site (as reached, and as PUBLIC_URL names it behind a TLS-ending proxy) and the `extra` origins."""
    public_url = request.app[settings_key].public_url
    candidates = [own_origin(request), *(normalise_origin(o) for o in extra)]
    if public_url:
        candidates.append(normalise_origin(public_url))
    return frozenset(origin for origin in candidates if origin is not None)


def is_loopback(host: str | None) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1): names that reach only this machine."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def claimed_origin(request: web.Request) -> str | None:
    """The site a browser says the request comes from: its Origin, else its Referer; None when it sends neither."""
    return request.headers.get("Origin") or request.headers.get("Referer") or None


def from_trusted_site(request: web.Request, extra: Iterable[str]) -> bool:
    """True when the request names its site and that is this one or one of `extra` (scheme, host and port alike)."""
    claimed = claimed_origin(request)
    if claimed is None:
        return False
    origin = normalise_origin(claimed)  # "null" (a sandboxed frame, a stripped origin) is no site: never trusted
    return origin is not None and origin in trusted_origins(request, extra)


def refuse_cross_site_sign_in(request: web.Request) -> None:
    """403 for a sign-in that would set the login cookie when a browser says it comes from a foreign site.

    Without Origin and Referer it passes: native apps and command-line clients send neither, and a browser
    always sends Origin with a cross-site POST, so login CSRF cannot hide that way.
    """
    if claimed_origin(request) is not None and not from_trusted_site(request, request.app[settings_key].cors_origins):
        raise Forbidden(CROSS_SITE_SIGN_IN)
