"""A bare aiohttp "hello" app, served by the same gunicorn settings as chatterd, as the bench's baseline."""

from __future__ import annotations

import logging
import os

from aiohttp import web

logger = logging.getLogger(__name__)


async def hello(request: web.Request) -> web.Response:
    """GET /: a constant text body."""
    return web.Response(text="hello")


async def announce_ready(app: web.Application) -> None:
    """Log that this worker serves, so the bench can wait for every worker."""
    logger.info("hello worker %d ready", os.getpid())


async def create_app() -> web.Application:
    """The baseline application: one route, no middleware, no database."""
    app = web.Application()
    app.router.add_get("/", hello)
    app.on_startup.append(announce_ready)
    return app
