"""The middleware (request ids, authentication, JSON errors, security headers, metrics) and the guards that protect
views.

It is one middleware, not one per concern: each layer costs a coroutine per request, and the whole chain must stay a
small part of the smallest request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import hdrs, web
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
from core.headers import add_security_headers
from core.keys import auth_problem_key, authenticator_key, credential_key, settings_key, user_key
from core.metrics import CLIENT_CLOSED, count_request
from core.observability import REQUEST_ID_HEADER, new_request_id, request_id_var, sane_request_id
from core.origins import from_trusted_site
from db.pool import DatabaseUnavailable
from google_signin.idtoken import CertificatesUnavailable, InvalidIdToken
from models.records import User

logger = logging.getLogger(__name__)

AUTHORIZATION, COOKIE = hdrs.AUTHORIZATION, hdrs.COOKIE
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_CHAINED = 8  # exceptions of a chain whose tracebacks an error's answer drops
CALLER_MARK = "_chatterd_reads_caller"  # set by reads_caller on views that act on their caller

View = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Everything around a view, in one layer: a request id (the client's, if sane) that the request's log lines and
    its answer carry, errors included; the caller, from the credential presented; the contract's JSON for every error
    (a 500 is logged with its traceback first); the security headers; the request counted and timed by route
    template and final status."""
    headers = request.headers
    given = headers.get(REQUEST_ID_HEADER)
    request_id = (None if given is None else sane_request_id(given)) or new_request_id()
    # Not reset after: aiohttp runs each request in a task of its own, whose copy of the context ends with it.
    request_id_var.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        try:
            # The caller, before any view runs (None when anonymous); a login cookie slides after the view.
            request[user_key] = None
            request[credential_key] = None
            signed_in_by = (
                await _authenticate(request)
                if AUTHORIZATION in headers or COOKIE in headers or _body_may_carry_credential(request)
                else None
            )
            response = await handler(request)
            if signed_in_by == "cookie":
                await renew_login_cookie(request, response)
        except Exception as exc:
            response = _error_response(request, exc)
        status = response.status
        response.headers[REQUEST_ID_HEADER] = request_id
        add_security_headers(request, response.headers)
        return response
    except asyncio.CancelledError:
        status = CLIENT_CLOSED  # the client went away: not a server error, and no alert should think so
        raise
    finally:
        count_request(request, status, time.perf_counter() - started)


def _error_response(request: web.Request, exc: Exception) -> web.Response:
    """The answer to an exception out of a view, returned rather than raised on.

    An exception's traceback holds the frames it went through, and they hold the request, the exception (aiohttp's
    404 is raised by a method of the object that keeps it) and more: reference cycles that only the garbage collector
    frees, which made an error cost a worker twice what a small answer does (docs/performance.md). So the traceback is
    dropped once the error is logged, and the answer is a plain response, which aiohttp sends as it would the error.
    """
    error = _rendered(request, exc)  # logs a 500 with its traceback
    cause: BaseException | None = exc
    for _ in range(MAX_CHAINED):
        if cause is None:
            break
        cause.__traceback__ = None
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, ApiError):
        return error  # a Response itself, that aiohttp takes as returned (ApiError.__http_exception__)
    response = web.Response(status=error.status, reason=error.reason, body=error.body, headers=error.headers)
    if error.keep_alive is False:
        response.force_close()  # a 408 closes the connection
    for name, morsel in error.cookies.items():
        response.cookies[name] = morsel
    return response


def _rendered(request: web.Request, exc: Exception) -> web.HTTPException:
    """What to answer for an exception out of a view: the contract's JSON error (or aiohttp's redirect as it is)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, web.HTTPException):
        return exc if exc.status < 400 else from_http_exception(exc)
    if isinstance(exc, DatabaseUnavailable):
        logger.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        retry_after = request.app[settings_key].retry_after
        return ServiceUnavailable("The database is unavailable; try again shortly.", retry_after=retry_after)
    if isinstance(exc, CertificatesUnavailable):
        logger.warning("Google certificates unavailable: %s", exc)
        return ServiceUnavailable(
            "Google's signing certificates are unavailable; try again shortly.", retry_after=exc.retry_after
        )
    if isinstance(exc, InvalidIdToken):
        return Unauthorized(f"The ID token was refused: {exc}")
    logger.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return ApiError()


def _bearer(header: str) -> str:
    scheme, _, rest = header.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest else header.strip()


async def _presented_token(request: web.Request) -> tuple[str, str] | None:
    """The first credential the request carries, by the contract's order: header, cookie, body."""
    headers = request.headers
    header = headers.get(hdrs.AUTHORIZATION)
    if header:
        return _bearer(header), "header"
    if hdrs.COOKIE in headers:
        try:
            cookie = login_cookie(request, secure=request.app[settings_key].cookie_secure)
        except AmbiguousCookie:
            request[auth_problem_key] = "ambiguous"  # no credential is taken: not the cookie, and not the body
            return None
        if cookie:
            return cookie, "cookie"
    if _body_may_carry_credential(request):
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


def _body_may_carry_credential(request: web.Request) -> bool:
    """A body is looked at for a chatterID only where a credential counts: an unsafe request to a view that acts on
    its caller (`reads_caller`, which login_required and requires apply). Elsewhere nobody would use it, and a view
    that takes no credential (a sign-in, anonymous posting) can refuse a request before its body is read."""
    return (
        request.method not in SAFE_METHODS
        and request.can_read_body
        and getattr(request.match_info.handler, CALLER_MARK, False)
    )


async def _authenticate(request: web.Request) -> str | None:
    """Put the caller the credential presented names into request[user_key], or why it was refused into
    request[auth_problem_key]; where the accepted credential came from ("header", "cookie", "body")."""
    app = request.app
    header = request.headers.get(AUTHORIZATION)
    # The header comes first (the contract's order), and is what API clients send: no coroutine to look further.
    presented = (_bearer(header), "header") if header else await _presented_token(request)
    if presented is None:
        return None
    token, source = presented
    if (
        source == "cookie"
        and request.method not in SAFE_METHODS
        and not _same_origin(request, app[settings_key].cors_origins)
    ):
        request[auth_problem_key] = "csrf"
        return None
    found = await app[authenticator_key].resolve(token)
    if found is None:
        request[auth_problem_key] = "invalid"
        return None
    request[user_key], request[credential_key] = found
    return source


def current_user(request: web.Request) -> User:
    """The signed-in caller of a view behind `login_required` (a 401 if it is called without one)."""
    user = request[user_key]
    if user is None:
        raise Unauthorized("Sign-in required.")
    return user


def reads_caller(view: T) -> T:
    """Mark a view that acts on its caller, so that a chatterID in its body signs the request in (login_required and
    requires mark theirs; other views get no body credential looked at)."""
    setattr(view, CALLER_MARK, True)
    return view


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

    return reads_caller(guarded)


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
