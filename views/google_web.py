"""Google web sign-in, the OpenID Connect authorization-code flow with PKCE: /auth/google/login and its callback."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
from aiohttp import web
from yarl import URL

import models
from auth.throttling import client_address, limit_rate
from core.errors import BadRequest, NotFound, ServiceUnavailable, Unauthorized
from core.keys import db_key, google_certs_key, google_discovery_key, http_session_key, settings_key, token_codec_key
from core.metrics import SIGN_INS
from google_signin.idtoken import InvalidIdToken, verify_id_token
from google_signin.oidc import (
    DiscoveryUnavailable,
    ProviderMetadata,
    ProviderUnavailable,
    TokenRefused,
    code_challenge,
    exchange_code,
    new_code_verifier,
)
from middlewares import set_login_cookie
from settings import Settings
from views.google import CLOCK_SKEW, NO_NAME

logger = logging.getLogger(__name__)

LOGIN_PATH = "/auth/google/login"
CALLBACK_PATH = "/auth/google/callback"
SCOPE = "openid email profile"
# The flow cookie holds state, nonce and PKCE verifier between the two requests; signed, so no server keeps it.
FLOW_COOKIE = "chatterd_google_flow"
FLOW_COOKIE_PATH = "/auth/google"
FLOW_LIFETIME = 600
FLOW_AUDIENCE = "chatterd:google-web-flow"  # never the access tokens' audience, so neither passes for the other
MAX_FLOW_COOKIE = 2048
MAX_NEXT = 512
MAX_CODE = 2048
# A same-site path: one slash then no slash or backslash (browsers read "//host" and "/\\host" as another
# site), visible ASCII only (browsers drop tabs and newlines, which would turn "/\t/host" into "//host").
_SAFE_NEXT = re.compile(r"/(?![/\\])[\x21-\x5b\x5d-\x7e]*")
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")

NOT_CONFIGURED = "Google web sign-in is not configured on this server (it needs GOOGLE_CLIENT_SECRET)."
FLOW_LOST = "This Google sign-in has expired or was started in another browser; start it again."


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


def _web_client(settings: Settings) -> tuple[str, str]:
    """The web client's ID and secret; 404 when the flow is off (no GOOGLE_CLIENT_SECRET)."""
    client_id, secret = settings.web_client_id, settings.google_client_secret
    if not secret or client_id is None:
        raise NotFound(NOT_CONFIGURED)
    return client_id, secret


def redirect_uri(request: web.Request, settings: Settings) -> str:
    """Where Google sends the browser back: PUBLIC_URL's, else this request's scheme and host, + the callback."""
    base = settings.public_url.rstrip("/") if settings.public_url else f"{request.scheme}://{request.host}"
    return base + CALLBACK_PATH


async def _provider(request: web.Request) -> ProviderMetadata:
    """Google's endpoints from the cached discovery document; 503 with Retry-After when it is unavailable."""
    try:
        return await request.app[google_discovery_key].get()
    except DiscoveryUnavailable as exc:
        raise ServiceUnavailable(
            "Google's sign-in configuration is unavailable; try again shortly.", retry_after=exc.retry_after
        ) from None


def _redirect(location: str) -> web.Response:
    """A 302 that no cache keeps and that leaks no URL (they carry codes and state) as a Referer."""
    return web.Response(
        status=302, headers={"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


def _clear_flow_cookie(response: web.Response, settings: Settings) -> None:
    """Drop the flow cookie: a flow is used once."""
    response.del_cookie(
        FLOW_COOKIE, path=FLOW_COOKIE_PATH, secure=settings.cookie_secure, httponly=True, samesite="Lax"
    )


async def google_login(request: web.Request) -> web.Response:
    """GET /auth/google/login: send the browser to Google with state, nonce and PKCE kept in a signed cookie."""
    settings = request.app[settings_key]
    client_id, _ = _web_client(settings)
    provider = await _provider(request)
    flow = new_flow(request.query.get("next"))
    location = URL(provider.authorization_endpoint).update_query(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri(request, settings),
            "scope": SCOPE,
            "state": flow.state,
            "nonce": flow.nonce,
            "code_challenge": code_challenge(flow.code_verifier),
            "code_challenge_method": "S256",
        }
    )
    response = _redirect(str(location))
    response.set_cookie(
        FLOW_COOKIE,
        encode_flow(flow, settings.secret_key),
        max_age=FLOW_LIFETIME,
        path=FLOW_COOKIE_PATH,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="Lax",
    )
    return response


async def google_callback(request: web.Request) -> web.Response:
    """GET /auth/google/callback: check state, trade the code, verify the ID token and nonce, set the login cookie."""
    app = request.app
    settings = app[settings_key]
    client_id, client_secret = _web_client(settings)
    flow = decode_flow(request.cookies.get(FLOW_COOKIE), settings.secret_key)
    if flow is None:
        raise BadRequest(FLOW_LOST)
    if not hmac.compare_digest(request.query.get("state", "").encode(), flow.state.encode()):
        raise BadRequest("The sign-in's state does not match this browser's; start it again.")

    error = request.query.get("error")
    if error is not None:
        # Google's own refusal (the user cancelled, say): back to the page, which shows it.
        response = _redirect("/#google-error=" + (error if _ERROR_CODE.fullmatch(error) else "error"))
        _clear_flow_cookie(response, settings)
        return response
    code = request.query.get("code", "")
    if not code or len(code) > MAX_CODE:
        raise BadRequest("The callback carries no authorization code.")

    await limit_rate(
        request, "Google sign-in", limit=settings.adduser_max_per_address, window=settings.adduser_window_seconds
    )
    provider = await _provider(request)
    try:
        id_token = await exchange_code(
            app[http_session_key],
            provider.token_endpoint,
            code=code,
            redirect_uri=redirect_uri(request, settings),
            client_id=client_id,
            client_secret=client_secret,
            code_verifier=flow.code_verifier,
            time_limit=settings.http_client_timeout,
        )
    except TokenRefused as exc:
        SIGN_INS.labels("google_web", "failure").inc()
        if exc.error in {"invalid_client", "unauthorized_client"}:
            logger.error("Google refused our client (%s): check GOOGLE_CLIENT_SECRET and the client ID", exc.error)
        raise Unauthorized(f"Google refused the sign-in code ({exc.error}); start again.") from None
    except ProviderUnavailable as exc:
        SIGN_INS.labels("google_web", "unavailable").inc()
        logger.warning("Google web sign-in: %s", exc)
        raise ServiceUnavailable(
            "Google's token endpoint is unavailable; try again shortly.", retry_after=settings.retry_after
        ) from None

    try:
        identity = await verify_id_token(
            id_token,
            app[google_certs_key],
            audiences=(client_id,),
            hosted_domain=settings.google_hosted_domain,
            clock_skew=CLOCK_SKEW,
        )
    except InvalidIdToken:
        SIGN_INS.labels("google_web", "failure").inc()
        raise
    if identity.nonce is None or not hmac.compare_digest(identity.nonce.encode(), flow.nonce.encode()):
        SIGN_INS.labels("google_web", "failure").inc()
        raise Unauthorized("The ID token was refused: its nonce is not this sign-in's.")
    user = await models.upsert_google_user(
        app[db_key],
        sub=identity.sub,
        username=(identity.name or NO_NAME)[:255],
        email=identity.email,
        address=client_address(request, settings.trusted_proxies),
    )
    SIGN_INS.labels("google_web", "success").inc()
    codec = app[token_codec_key]
    token, _ = codec.mint(user.id, user.username, user.role)
    response = _redirect(flow.next)
    set_login_cookie(response, token, max_age=codec.lifetime, secure=settings.cookie_secure)
    _clear_flow_cookie(response, settings)
    return response
