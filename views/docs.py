"""The OpenAPI document at /openapi.json and Swagger UI at /docs, served from the swagger-ui-bundle package."""

from __future__ import annotations

import functools
from pathlib import Path

import orjson
from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from core import openapi
from core.errors import NotFound
from core.headers import set_page_headers
from settings import STATIC_DIR

SWAGGER_UI_PREFIX = "/docs/static"
# Only what docs.html loads. The package also ships a demo page that fetches a remote spec, an OAuth redirect page,
# other builds and source maps: none of them is served.
SWAGGER_UI_FILES = frozenset(
    {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"}
)
# Swagger UI and its stylesheet come from here, and it reads /openapi.json and tries requests here: nothing from
# elsewhere (test_browser opens an operation and runs it under this policy). Its icons are data: images.
DOCS_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
# A JSON document or an asset is never a page: it may run, load or frame nothing.
DOCUMENT_POLICY = "default-src 'none'; frame-ancestors 'none'"
# "Try it out" posts to this site; with no-referrer a browser would send `Origin: null`, which the CSRF check of
# cookie-authenticated requests refuses. same-origin still sends nothing to other sites.
DOCS_REFERRER_POLICY = "same-origin"


@functools.cache
def _document_bytes() -> bytes:
    return orjson.dumps(openapi.document())


async def openapi_json(request: web.Request) -> web.Response:
    """GET /openapi.json: the OpenAPI 3 description of every endpoint."""
    response = web.Response(body=_document_bytes(), content_type="application/json")
    set_page_headers(response, DOCUMENT_POLICY)
    return response


async def docs_page(request: web.Request) -> web.FileResponse:
    """GET /docs: Swagger UI over /openapi.json."""
    response = web.FileResponse(STATIC_DIR / "docs.html")
    set_page_headers(response, DOCS_POLICY, referrer_policy=DOCS_REFERRER_POLICY)
    return response


async def swagger_ui_asset(request: web.Request) -> web.FileResponse:
    """GET /docs/static/{name}: one of the Swagger UI files the docs page loads; 404 for the package's others."""
    name = request.match_info["name"]
    if name not in SWAGGER_UI_FILES:
        raise NotFound()
    response = web.FileResponse(Path(str(swagger_ui_path)) / name)
    set_page_headers(response, DOCUMENT_POLICY)
    return response


def add_static_routes(app: web.Application) -> None:
    """Serve static/ (the page's own files) and the Swagger UI files the docs page needs."""
    app.router.add_static("/static", STATIC_DIR, name="static")
    app.router.add_get(SWAGGER_UI_PREFIX + "/{name}", swagger_ui_asset, name="swagger_ui")
