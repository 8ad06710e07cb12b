"""Operator endpoints: liveness, readiness (Postgres answers and is fully migrated) and Prometheus metrics."""

from __future__ import annotations

import functools
import logging

import orjson
from aiohttp import web

from core import metrics
from core.bodies import json_response
from core.errors import ServiceUnavailable
from core.keys import db_key, settings_key
from db import migrations
from db.pool import DatabaseUnavailable
from settings import VERSION

logger = logging.getLogger(__name__)


@functools.cache
def _known_migrations() -> list[migrations.Migration]:
    return migrations.load_migrations()


HEALTHY = orjson.dumps({"status": "ok", "version": VERSION})  # the same answer every time: encoded once


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process is up and its event loop answers (and which version it runs); touches nothing else."""
    return web.Response(body=HEALTHY, content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: 200 when Postgres answers and every migration in sql/ is applied, else 503 with Retry-After."""
    retry_after = request.app[settings_key].retry_after
    try:
        missing = await migrations.pending(request.app[db_key], _known_migrations())
    except DatabaseUnavailable as exc:
        logger.warning("not ready: database unavailable: %s", exc)
        raise ServiceUnavailable("The database is unavailable.", retry_after=retry_after) from None
    if missing:
        logger.warning("not ready: migrations not applied: %s", ", ".join(missing))
        raise ServiceUnavailable(f"Migrations not applied yet: {', '.join(missing)}.", retry_after=retry_after)
    return json_response({"status": "ok"})


async def metrics_view(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus' text exposition format."""
    response = web.Response(body=metrics.exposition())
    response.headers["Content-Type"] = metrics.CONTENT_TYPE_LATEST
    return response
