"""The middleware chain (JSON errors first, then authentication) and the guards that protect views."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from auth import step_up
from auth.cookies import AmbiguousCookie, login_cookie
from auth.signin import renew_login_cookie
from core.bodies import read_body
from core.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
    from_http_exception,
)
from core.keys import auth_problem_key, authenticator_key, credential_key, settings_key, user_key
from core.origins import from_trusted_site
from db.pool import DatabaseUnavailable
from google_signin.idtoken import CertificatesUnavailable, InvalidIdToken
from models.records import User

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

View = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error as the contract's JSON; a 500 is logged with its traceback first."""
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        raise from_http_exception(exc) from None
    except DatabaseUnavailable as exc:
        logger.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        retry_after = request.app[settings_key].retry_after
        raise ServiceUnavailable("The database is unavailable; try again shortly.", retry_after=retry_after) from None
    except CertificatesUnavailable as exc:
        logger.warning("Google certificates unavailable: %s", exc)
        raise ServiceUnavailable(
            "Google's signing certificates are unavailable; try again shortly.", retry_after=exc.retry_after
        ) from None
    except InvalidIdToken as exc:
        raise Unauthorized(f"The ID token was refused: {exc}") from None
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        raise ApiError() from None


def _bearer(header: str) -> str:
    scheme, _, rest = header.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest else header.strip()


async def _presented_token(request: web.Request) -> tuple[str, str] | None:
    """The first credential the request carries, by the contract's order: header, cookie, body."""
    header = request.headers.get("Authorization")
    if header:
        return _bearer(header), "header"
    try:
        cookie = login_cookie(request, secure=request.app[settings_key].cookie_secure)
    except AmbiguousCookie:
        request[auth_problem_key] = "ambiguous"  # no credential is taken: not the cookie, and not the body
        return None
    if cookie:
        return cookie, "cookie"
    # Only for a route that exists: a 404 or 405 reads no body.
    if request.method not in SAFE_METHODS and request.can_read_body and request.match_info.http_exception is None:
        try:
            body = await read_body(request)  # read as the view will read it, and kept for it
        except (BadRequest, Unprocessable):
            return None  # not JSON (or form data where accepted): the view reports it if it reads the body
        value = body.get("chatterID")
        if isinstance(value, str) and value:
            return value, "body"
    return None


def _same_origin(request: web.Request, trusted: tuple[str, ...]) -> bool:
    """True when an unsafe cookie-authenticated request comes from our own pages or `trusted` (CSRF defence).

    Scheme, host and port must all match: a page served over plain HTTP on the same host (or one a network
    attacker injects there) is another origin than the HTTPS site whose cookie rides along.
    """
    return from_trusted_site(request, trusted)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Put the caller into request[user_key] (None when anonymous) before any view runs; slide a login cookie after."""
    request[user_key] = None
    request[credential_key] = None
    presented = await _presented_token(request)
    if presented is not None:
        token, source = presented
        settings = request.app[settings_key]
        if (
            source == "cookie"
            and request.method not in SAFE_METHODS
            and not _same_origin(request, settings.cors_origins)
        ):
            request[auth_problem_key] = "csrf"
        else:
            found = await request.app[authenticator_key].resolve(token)
            if found is None:
                request[auth_problem_key] = "invalid"
            else:
                request[user_key], request[credential_key] = found
    response = await handler(request)
    if presented is not None and presented[1] == "cookie" and request[credential_key] is not None:
        await renew_login_cookie(request, response)
    return response


def current_user(request: web.Request) -> User:
    """The signed-in caller of a view behind `login_required` (a 401 if it is called without one)."""
    user = request[user_key]
    if user is None:
        raise Unauthorized("Sign-in required.")
    return user


def login_required(view: View) -> View:
    """Let the view run only for a signed-in caller: 401 with WWW-Authenticate otherwise."""

    @functools.wraps(view)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if request[user_key] is None:
            problem = request.get(auth_problem_key)
            if problem == "csrf":
                raise Forbidden("Cross-site request refused: send the token in the Authorization header instead.")
            if problem == "invalid":
                raise Unauthorized("The credentials are invalid, expired or revoked.")
            if problem == "ambiguous":
                raise Unauthorized("The login cookie was sent twice; clear this site's cookies and sign in again.")
            raise Unauthorized("Sign-in required.")
        return await view(request)

    return guarded


def requires_recent_auth(view: View) -> View:
    """Let the view run only when the caller proved who they are in this session within REAUTH_MAX_AGE seconds (a
    sign-in, or POST /reauthenticate): 401 with "error": "reauth_required" otherwise. Implies `login_required`.

    For every sensitive action of the contract's "Step-up": changing the email or password, turning TOTP off, new
    recovery codes, adding or deleting a passkey, linking or unlinking an identity, deleting the account.
    """

    @functools.wraps(view)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not await step_up.authenticated_recently(request.app, request[credential_key]):
            raise step_up.reauth_required()
        return await view(request)

    return login_required(guarded)


def requires(*roles: str) -> Callable[[View], View]:
    """Let the view run only for a signed-in caller with one of `roles`: 401 anonymous, 403 without the role."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        async def guarded(request: web.Request) -> web.StreamResponse:
            if current_user(request).role not in roles:
                raise Forbidden(f"This needs the role {' or '.join(roles)}.")
            return await view(request)

        return login_required(guarded)

    return decorate
