"""The JSON error vocabulary of the contract: one exception class per status, each rendering {"message": ...}."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import hdrs, web
from multidict import CIMultiDict

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


class ApiError(web.HTTPException):
    """An HTTP error whose body is `{"message": ...}` (and `"error"`, a code, when given); raise it anywhere."""

    status_code = 500
    default_message = "Internal server error."
    # aiohttp warns when a view returns an HTTPException instead of raising it; the request middleware returns
    # these on purpose, once their traceback is dropped (a copy into a plain Response cost as much as making them).
    __http_exception__ = False

    def __init__(
        self, message: str | None = None, *, headers: Mapping[str, str] | None = None, error: str | None = None
    ) -> None:
        self.message = message or self.default_message
        self.error = error
        body = {"message": self.message} if error is None else {"message": self.message, "error": error}
        fields = CIMultiDict(headers or ())
        fields[hdrs.CONTENT_TYPE] = JSON_CONTENT_TYPE
        # What HTTPException.__init__ does for a text body, without its checks of arguments given here: an error is
        # made for every refused request, a flood's included.
        web.Response.__init__(self, status=self.status_code, headers=fields, body=orjson.dumps(body))
        Exception.__init__(self, self.reason)


class BadRequest(ApiError):
    """The body is not valid JSON or form data."""

    status_code = 400
    default_message = "The request body is not valid JSON."


class Unauthorized(ApiError):
    """Missing, unknown, expired, revoked or forged credentials."""

    status_code = 401
    default_message = "Sign-in required."

    def __init__(
        self, message: str | None = None, *, headers: Mapping[str, str] | None = None, error: str | None = None
    ) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer", **(headers or {})}, error=error)


class Forbidden(ApiError):
    """Valid credentials without the role the endpoint needs."""

    status_code = 403
    default_message = "You are not allowed to do this."


class NotFound(ApiError):
    """Unknown path or record."""

    status_code = 404
    default_message = "Not found."


class MethodNotAllowed(ApiError):
    """Known path, wrong method."""

    status_code = 405
    default_message = "Method not allowed."


class RequestTimeout(ApiError):
    """The body did not arrive in time; the connection is closed after this answer."""

    status_code = 408
    default_message = "The request body did not arrive in time."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)
        self.force_close()  # a client this slow gets no second request on this connection


class Conflict(ApiError):
    """A unique value (a username) is already taken."""

    status_code = 409
    default_message = "Already taken."


class PayloadTooLarge(ApiError):
    """The body is over the size limit."""

    status_code = 413
    default_message = "The request body is too large."


class Unprocessable(ApiError):
    """Valid JSON of the wrong shape."""

    status_code = 422
    default_message = "The request body has the wrong shape."


class TooManyRequests(ApiError):
    """Throttled; says when to come back."""

    status_code = 429
    default_message = "Too many attempts; try again later."

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(ApiError):
    """A dependency (Postgres, Google's certificates) is down."""

    status_code = 503
    default_message = "Service temporarily unavailable; try again shortly."

    def __init__(self, message: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})


_BY_STATUS: dict[int, type[ApiError]] = {
    cls.status_code: cls
    for cls in (BadRequest, NotFound, MethodNotAllowed, PayloadTooLarge, Forbidden, Conflict, Unprocessable)
}


def from_http_exception(exc: web.HTTPException) -> ApiError:
    """Re-render one of aiohttp's own HTTP errors (404, 405, 413, …) as the contract's JSON."""
    cls = _BY_STATUS.get(exc.status)
    message = cls.default_message if cls else (exc.reason or "Error.")
    error = ApiError(message, headers={k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}})
    error.set_status(exc.status, exc.reason)
    return error
