"""The Google web flow's state between its two requests: a signed cookie with state, nonce, PKCE verifier, next."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
from aiohttp import web

from google_signin.oidc import new_code_verifier
from settings import Settings

# The flow cookie holds state, nonce and PKCE verifier between the two requests; signed, so no server keeps it.
FLOW_COOKIE = "chatterd_google_flow"
FLOW_COOKIE_PATH = "/auth/google"
FLOW_LIFETIME = 600
FLOW_AUDIENCE = "chatterd:google-web-flow"  # never the access tokens' audience, so neither passes for the other
MAX_FLOW_COOKIE = 2048
MAX_NEXT = 512
# A same-site path: one slash then no slash or backslash (browsers read "//host" and "/\\host" as another
# site), visible ASCII only (browsers drop tabs and newlines, which would turn "/\t/host" into "//host").
_SAFE_NEXT = re.compile(r"/(?![/\\])[\x21-\x5b\x5d-\x7e]*")


@dataclass(frozen=True, slots=True)
class Flow:
    """What the callback must find again: the request's state, nonce and PKCE verifier, and where to go after."""

    state: str
    nonce: str
    code_verifier: str
    next: str = "/"


def new_flow(next_path: str | None = None) -> Flow:
    """A new flow: 256-bit state and nonce, a PKCE verifier, and a safe `next` path."""
    return Flow(secrets.token_urlsafe(32), secrets.token_urlsafe(32), new_code_verifier(), safe_next(next_path))


def encode_flow(flow: Flow, key: str, *, now: float | None = None) -> str:
    """The flow as the cookie's value: an HS256 JWT with its own audience, valid FLOW_LIFETIME seconds."""
    issued = int(time.time() if now is None else now)
    payload = {
        "aud": FLOW_AUDIENCE,
        "iat": issued,
        "exp": issued + FLOW_LIFETIME,
        "state": flow.state,
        "nonce": flow.nonce,
        "code_verifier": flow.code_verifier,
        "next": flow.next,
    }
    return jwt.encode(payload, key, algorithm="HS256")


def decode_flow(value: str | None, key: str) -> Flow | None:
    """The flow the cookie carries, or None when it is missing, forged, tampered with, expired or malformed."""
    if not value or len(value) > MAX_FLOW_COOKIE:
        return None
    try:
        claims: dict[str, Any] = jwt.decode(
            value, key, algorithms=["HS256"], audience=FLOW_AUDIENCE, options={"require": ["exp", "iat", "aud"]}
        )
    except jwt.PyJWTError:
        return None
    fields = [claims.get(name) for name in ("state", "nonce", "code_verifier", "next")]
    if not all(isinstance(item, str) and item for item in fields):
        return None
    state, nonce, verifier, next_path = fields
    return Flow(str(state), str(nonce), str(verifier), safe_next(str(next_path)))


def safe_next(value: str | None) -> str:
    """`value` when it is a path on this site, else "/": never an open redirect."""
    if not value or len(value) > MAX_NEXT or not _SAFE_NEXT.fullmatch(value):
        return "/"
    parts = urlsplit(value)
    return "/" if parts.scheme or parts.netloc else value


def set_flow_cookie(response: web.StreamResponse, flow: Flow, settings: Settings) -> None:
    """Keep the flow in the browser until the callback: signed, HttpOnly, only sent to the flow's paths."""
    response.set_cookie(
        FLOW_COOKIE,
        encode_flow(flow, settings.secret_key),
        max_age=FLOW_LIFETIME,
        path=FLOW_COOKIE_PATH,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="Lax",
    )


def clear_flow_cookie(response: web.StreamResponse, settings: Settings) -> None:
    """Drop the flow cookie: a flow is used once."""
    response.del_cookie(
        FLOW_COOKIE, path=FLOW_COOKIE_PATH, secure=settings.cookie_secure, httponly=True, samesite="Lax"
    )
