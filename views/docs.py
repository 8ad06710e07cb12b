"""The OpenAPI document at /openapi.json and Swagger UI at /docs, served from the swagger-ui-bundle package."""

from __future__ import annotations

import functools
from pathlib import Path

import orjson
from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from core import openapi
from settings import STATIC_DIR

SWAGGER_UI_PREFIX = "/docs/static"


@functools.cache
def _document_bytes() -> bytes:
    return orjson.dumps(openapi.document())


async def openapi_json(request: web.Request) -> web.Response:
    """GET /openapi.json: the OpenAPI 3 description of every endpoint."""
    return web.Response(body=_document_bytes(), content_type="application/json")


async def docs_page(request: web.Request) -> web.FileResponse:
    """GET /docs: Swagger UI over /openapi.json."""
    return web.FileResponse(STATIC_DIR / "docs.html")


def add_static_routes(app: web.Application) -> None:
    """Serve static/ (the page's own files) and Swagger UI's installed assets."""
    app.router.add_static("/static", STATIC_DIR, name="static")
    app.router.add_static(SWAGGER_UI_PREFIX, Path(str(swagger_ui_path)), name="swagger_ui")
