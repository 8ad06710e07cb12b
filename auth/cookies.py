"""The login cookie: its name, how every sign-in that serves a browser sets it, how logout clears it, how it is read."""

from __future__ import annotations

from aiohttp import web

# Over HTTPS (COOKIE_SECURE=1, the default) the cookie is `__Host-chatterd_token`: browsers accept a cookie of that
# name only from this very host, over HTTPS, with Path=/ and no Domain, so neither a sibling subdomain nor a page
# injected into plain-HTTP traffic can plant one (cookie tossing: the victim would act as the attacker's account).
# Browsers refuse the prefix on a cookie that is not Secure, so plain-HTTP local development (COOKIE_SECURE=0) keeps
# the bare name; a bare-named cookie sent to a Secure server is not ours and is ignored.
COOKIE_NAME = "chatterd_token"
HOST_COOKIE_NAME = f"__Host-{COOKIE_NAME}"


class AmbiguousCookie(Exception):
    """The request carries the login cookie more than once: which one the browser meant cannot be told."""


def login_cookie_name(*, secure: bool) -> str:
    """The login cookie's name: with the `__Host-` prefix when it is Secure."""
    return HOST_COOKIE_NAME if secure else COOKIE_NAME


def set_login_cookie(response: web.StreamResponse, token: str, *, max_age: int, secure: bool) -> None:
    """Put the JWT in the login cookie: HttpOnly, SameSite=Lax, Path=/, Secure unless turned off."""
    name = login_cookie_name(secure=secure)
    response.set_cookie(name, token, max_age=max_age, path="/", httponly=True, secure=secure, samesite="Lax")


def clear_login_cookie(response: web.StreamResponse, *, secure: bool) -> None:
    """Expire the login cookie, with the same attributes it was set with."""
    response.del_cookie(login_cookie_name(secure=secure), path="/", secure=secure, httponly=True, samesite="Lax")


def login_cookie(request: web.Request, *, secure: bool) -> str | None:
    """The login cookie's value, or None; AmbiguousCookie when it comes more than once.

    Two cookies of one name (one planted by another site for a longer Path, or for a parent domain) reach the server
    in an order the server cannot trust, and aiohttp would keep the last: neither is taken.
    """
    name = login_cookie_name(secure=secure)
    values = [
        value
        for header in request.headers.getall("Cookie", ())
        for key, _, value in (pair.strip().partition("=") for pair in header.split(";"))
        if key == name
    ]
    if len(values) > 1:
        raise AmbiguousCookie(name)
    return request.cookies.get(name) if values else None
