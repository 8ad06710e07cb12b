"""The login cookie: how every sign-in that serves a browser sets it, and how logout clears it."""

from __future__ import annotations

from aiohttp import web

COOKIE_NAME = "chatterd_token"


def set_login_cookie(response: web.StreamResponse, token: str, *, max_age: int, secure: bool) -> None:
    """Put the JWT in the login cookie: HttpOnly, SameSite=Lax, Path=/, Secure unless turned off."""
    response.set_cookie(COOKIE_NAME, token, max_age=max_age, path="/", httponly=True, secure=secure, samesite="Lax")


def clear_login_cookie(response: web.StreamResponse, *, secure: bool) -> None:
    """Expire the login cookie, with the same attributes it was set with."""
    response.del_cookie(COOKIE_NAME, path="/", secure=secure, httponly=True, samesite="Lax")
