"""Google web sign-in, the OpenID Connect authorization-code flow with PKCE: /auth/google/login and its callback."""

from __future__ import annotations

import hmac
import re
from urllib.parse import urlsplit

from aiohttp import web
from yarl import URL

from auth.cookies import set_login_cookie
from auth.throttling import request_address, request_user_agent
from core.errors import BadRequest, NotFound
from core.keys import settings_key
from core.origins import is_loopback, own_origin
from google_signin import signin
from google_signin.oidc import code_challenge
from google_signin.web_flow import FLOW_COOKIE, clear_flow_cookie, decode_flow, new_flow, set_flow_cookie
from settings import Settings

LOGIN_PATH = "/auth/google/login"
CALLBACK_PATH = "/auth/google/callback"
SCOPE = "openid email profile"
MAX_CODE = 2048
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")
NOT_CONFIGURED = "Google web sign-in is not configured on this server (it needs GOOGLE_CLIENT_SECRET)."
NEEDS_PUBLIC_URL = (
    "Google web sign-in is served at this address only once PUBLIC_URL (the site's public URL) is set on the server; "
    "without it, only on localhost."
)
FLOW_LOST = "This Google sign-in has expired or was started in another browser; start it again."


def _web_client(settings: Settings) -> tuple[str, str]:
    """The web client's ID and secret; 404 when the flow is off (no GOOGLE_CLIENT_SECRET)."""
    client_id, secret = settings.web_client_id, settings.google_client_secret
    if not secret or client_id is None:
        raise NotFound(NOT_CONFIGURED)
    return client_id, secret


def redirect_uri(request: web.Request, settings: Settings) -> str:
    """Where Google sends the browser back: PUBLIC_URL + the callback; without PUBLIC_URL, only on a loopback host."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + CALLBACK_PATH
    # The Host header is the client's to choose (a proxy or cache may pass on any): it makes the redirect URI only
    # where no one else can reach, for local development; a served site must say its address.
    origin = own_origin(request)
    if origin is None or not is_loopback(urlsplit(origin).hostname):
        raise NotFound(NEEDS_PUBLIC_URL)
    return origin + CALLBACK_PATH


def _redirect(location: str) -> web.Response:
    """A 302 that no cache keeps and that leaks no URL (they carry codes and state) as a Referer."""
    return web.Response(
        status=302, headers={"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


async def google_login(request: web.Request) -> web.Response:
    """GET /auth/google/login: send the browser to Google with state, nonce and PKCE kept in a signed cookie."""
    settings = request.app[settings_key]
    client_id, _ = _web_client(settings)
    provider = await signin.provider(request.app)
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
    set_flow_cookie(response, flow, settings)
    return response


async def google_callback(request: web.Request) -> web.Response:
    """GET /auth/google/callback: check state, trade the code, verify the ID token and nonce, set the login cookie."""
    settings = request.app[settings_key]
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
        clear_flow_cookie(response, settings)
        return response
    code = request.query.get("code", "")
    if not code or len(code) > MAX_CODE:
        raise BadRequest("The callback carries no authorization code.")

    _, token, lifetime = await signin.with_web_code(
        request.app,
        flow=flow,
        code=code,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=redirect_uri(request, settings),
        address=request_address(request),
        user_agent=request_user_agent(request),
    )
    response = _redirect(flow.next)
    set_login_cookie(response, token, max_age=lifetime, secure=settings.cookie_secure)
    clear_flow_cookie(response, settings)
    return response
