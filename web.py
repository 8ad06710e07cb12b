"""The application factory used alike by gunicorn, adev and the tests."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

import aiopg
from aiohttp import web

from cors import setup_cors
from db import Database, DatabaseUnavailable, create_pool
from embedded_db import EmbeddedPostgres
from keys import db_key, settings_key
from metrics import metrics_middleware
from middlewares import error_middleware
from migrations import migrate
from observability import install_access_redactor, request_id_middleware
from settings import Settings
from views import add_routes

logger = logging.getLogger(__name__)

STARTUP_DB_WAIT = 30.0  # seconds to keep trying to reach Postgres before a worker gives up starting


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the pool (starting the embedded Postgres when no DATABASE_URL is set), migrate, and close it all after."""
    settings = app[settings_key]
    loop = asyncio.get_running_loop()
    embedded: EmbeddedPostgres | None = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.var_dir)
        url = await loop.run_in_executor(None, embedded.start)
    try:
        pool = await _connect_with_retry(url, settings)
        try:
            db = Database(pool, acquire_timeout=settings.db_acquire_timeout)
            applied = await migrate(db)
            if applied:
                logger.info("database migrated: %s", ", ".join(applied))
            app[db_key] = db
            yield
        finally:
            pool.close()
            await pool.wait_closed()
    finally:
        if embedded is not None:
            await loop.run_in_executor(None, embedded.stop)


async def _connect_with_retry(url: str, settings: Settings) -> aiopg.Pool:
    deadline = asyncio.get_running_loop().time() + STARTUP_DB_WAIT
    delay = 0.2
    while True:
        try:
            return await create_pool(
                url,
                minsize=settings.db_pool_min,
                maxsize=settings.db_pool_max,
                connect_timeout=settings.db_connect_timeout,
                statement_timeout=settings.db_statement_timeout,
            )
        except Exception as exc:
            if asyncio.get_running_loop().time() + delay > deadline:
                raise DatabaseUnavailable(f"could not reach Postgres: {exc}") from exc
            logger.warning("Postgres not reachable yet (%s); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def announce_ready(app: web.Application) -> None:
    """Log that this process serves; runs after every cleanup context has started."""
    logger.info("chatterd worker %d ready", os.getpid())


async def create_app(settings: Settings | None = None) -> web.Application:
    """Build the chatterd application; it does no I/O until it starts."""
    settings = settings or Settings.from_env()
    install_access_redactor()
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware, metrics_middleware],
        client_max_size=settings.max_body_size,
    )
    app[settings_key] = settings
    app.cleanup_ctx.append(database_ctx)
    app.on_startup.append(announce_ready)
    add_routes(app)
    setup_cors(app)  # after every route: it enables CORS per resource
    return app
