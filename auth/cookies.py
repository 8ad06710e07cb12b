"""The login cookie: how every sign-in that serves a browser sets it, and how logout clears it."""

from __future__ import annotations

from aiohttp import web

# Not `__Host-chatterd_token`, though that prefix would stop a sibling subdomain from planting its own cookie of this
# name (with two `chatterd_token` cookies the request's last one wins): browsers drop a `__Host-` cookie that is not
# Secure, so one fixed name would break COOKIE_SECURE=0 over plain HTTP in local development, and a name that
# changes with COOKIE_SECURE would make the documented cookie (README, OpenAPI, clients) depend on a setting.
# Serve chatterd on a host whose sibling subdomains are trusted; sign-ins from foreign origins are refused anyway.
COOKIE_NAME = "chatterd_token"


def set_login_cookie(response: web.StreamResponse, token: str, *, max_age: int, secure: bool) -> None:
    """Put the JWT in the login cookie: HttpOnly, SameSite=Lax, Path=/, Secure unless turned off."""
    response.set_cookie(COOKIE_NAME, token, max_age=max_age, path="/", httponly=True, secure=secure, samesite="Lax")


def clear_login_cookie(response: web.StreamResponse, *, secure: bool) -> None:
    """Expire the login cookie, with the same attributes it was set with."""
    response.del_cookie(COOKIE_NAME, path="/", secure=secure, httponly=True, samesite="Lax")
