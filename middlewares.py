"""The middleware chain: JSON errors first, then authentication; and the decorators that guard views."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from db import DatabaseUnavailable
from errors import ApiError, ServiceUnavailable, from_http_exception
from keys import settings_key

logger = logging.getLogger(__name__)


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
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        raise ApiError() from None
