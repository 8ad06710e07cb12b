"""The OpenAPI document: valid, complete against the contract, and true of the running app (statuses and bodies)."""

from __future__ import annotations

import re
import secrets
from typing import Any

import openapi_spec_validator
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from openapi_schema_validator import OAS30Validator

from core.openapi import DOCUMENT
from views.docs import SWAGGER_UI_PREFIX

# Every endpoint of shared/API.md, the additions, and the page's own.
CONTRACT = {
    ("get", "/getchatts/"),
    ("post", "/postchatt/"),
    ("post", "/adduser/"),
    ("post", "/postauth/"),
    ("post", "/register"),
    ("post", "/login"),
    ("get", "/get-user"),
    ("post", "/logout"),
    ("post", "/totp/setup"),
    ("post", "/totp/enable"),
    ("delete", "/chatts/{id}"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("get", "/"),
    ("get", "/config.json"),
    ("post", "/totp/qr"),
    # sessions, recovery codes and the audit log
    ("post", "/token/refresh"),
    ("post", "/totp/recovery-codes"),
    ("post", "/totp/disable"),
    ("get", "/audit"),
    ("get", "/auth/google/login"),
    ("get", "/auth/google/callback"),
}
METHODS = {"get", "post", "put", "patch", "delete"}
# Operations whose documented example cannot succeed here (a made-up Google token, an unknown account,
# a made-up one-time code, a plain user deleting, a made-up refresh token, TOTP not on, a plain user reading the
# audit log, Google web sign-in (off here, and a redirect when on)); every other one must answer 2xx to it at least
# once.
NO_SUCCESS_FROM_EXAMPLE = {
    "addUser",
    "login",
    "totpEnable",
    "deleteChatt",
    "refreshToken",
    "totpRecoveryCodes",
    "totpDisable",
    "audit",
    "googleWebLogin",
    "googleWebCallback",
}
OPERATIONS = [
    pytest.param(path, method, id=op["operationId"])
    for path, item in DOCUMENT["paths"].items()
    for method, op in item.items()
    if method in METHODS
]


def test_document_is_valid_openapi_3():
    openapi_spec_validator.validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.")


def test_document_covers_the_contract():
    documented = {(m, p) for p, item in DOCUMENT["paths"].items() for m in item if m in METHODS}
    assert documented == CONTRACT


def test_every_served_route_is_documented(client):
    documented = {(m.upper(), p.rstrip("/") or "/") for m, p in CONTRACT}
    for resource in client.app.router.resources():
        if isinstance(resource, web.StaticResource) or resource.canonical.startswith(SWAGGER_UI_PREFIX + "/"):
            continue  # files, not API operations
        for route in resource:
            if route.method in {"HEAD", "OPTIONS"}:
                continue
            served = (route.method, resource.canonical.rstrip("/") or "/")
            assert served in documented, f"{served} is served but not in openapi.py"


async def test_openapi_json_is_the_document(client):
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert await resp.json() == DOCUMENT


async def test_docs_page_loads_swagger_ui_from_the_package(client):
    resp = await client.get("/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    for asset in re.findall(r'(?:src|href)="(/docs/static/[^"]+|/static/[^"]+)"', html):
        asset_resp = await client.get(asset)
        assert asset_resp.status == 200, asset
    assert "/docs/static/swagger-ui-bundle.js" in html
    bundle = await client.get("/docs/static/swagger-ui-bundle.js")
    assert bundle.content_type in {"application/javascript", "text/javascript"}


# ---- the running app against the document ------------------------------------------------------------------------


def _validate(schema: dict[str, Any], instance: Any) -> None:
    # The document's components ride along so that "#/components/..." references resolve.
    OAS30Validator({**schema, "components": DOCUMENT["components"]}).validate(instance)


def _concrete(path: str, op: dict[str, Any]) -> str:
    for param in op.get("parameters", []):
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", str(param["example"]))
    return path


def _requests(op: dict[str, Any], headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The calls to make: the documented example, then broken variants that must give documented errors."""
    headers = headers or {}
    query = {p["name"]: str(p["example"]) for p in op.get("parameters", []) if p["in"] == "query" and "example" in p}
    calls: list[dict[str, Any]] = [{"params": query, "headers": headers}]
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None:
        example = body.get("example", {})
        calls[0]["json"] = example
        calls += [
            {"data": b"{", "headers": {**headers, "Content-Type": "application/json"}},
            {"json": {}, "headers": headers},
            {"json": [], "headers": headers},
            {"json": {key: 12345 for key in example}, "headers": headers},
        ]
    return calls


async def _sign_in(client: Any) -> str | None:
    """A JWT for a fresh password account, when /register and /login are built; None otherwise."""
    credentials = {"username": f"doc-{secrets.token_hex(4)}", "password": "correct horse battery"}
    resp = await client.post("/register", json=credentials)
    if resp.status == 404:
        return None
    assert resp.status == 201, await resp.text()
    resp = await client.post("/login", json=credentials)
    assert resp.status == 200, await resp.text()
    client.session.cookie_jar.clear()  # the Bearer header alone, so that nothing else is authenticated by accident
    token: str = (await resp.json())["token"]
    return token


def _check_response(op: dict[str, Any], status: int, content_type: str, headers: Any, body: bytes, what: str) -> None:
    responses = op["responses"]
    assert str(status) in responses, f"{what}: status {status} is not documented"
    response = responses[str(status)]
    if "$ref" in response:
        response = DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    content = response.get("content")
    if not content:
        assert body == b"", f"{what}: {status} must have no body"
        return
    assert content_type in content, f"{what}: {content_type} is not documented for {status}"
    for name in response.get("headers", {}):
        if name not in {"Set-Cookie"}:
            assert name in headers, f"{what}: {status} lacks the {name} header"
    if content_type == "application/json":
        _validate(content[content_type]["schema"], orjson.loads(body))


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
async def test_operation_answers_as_documented(client, path, method):
    op = DOCUMENT["paths"][path][method]
    url = _concrete(path, op)
    match = await client.app.router.resolve(make_mocked_request(method.upper(), url, app=client.app))
    assert not isinstance(match.http_exception, web.HTTPNotFound), f"{method.upper()} {path} is documented, not routed"
    # Something to read, so the chatt schema is checked on a real row.
    assert (await client.post("/postchatt/", json={"username": "doc", "message": "seed"})).status == 200
    calls = _requests(op)
    if op.get("security"):
        calls.append({**calls[0], "headers": {"Authorization": "Bearer not-a-real-token"}})
        token = await _sign_in(client)
        if token is not None:
            calls += _requests(op, {"Authorization": f"Bearer {token}"})
    statuses = []
    for call in calls:
        resp = await client.request(method.upper(), url, **call)
        body = await resp.read()
        what = f"{method.upper()} {url} {call}"
        _check_response(op, resp.status, resp.content_type, resp.headers, body, what)
        assert "X-Request-ID" in resp.headers
        statuses.append(resp.status)
    if op["operationId"] not in NO_SUCCESS_FROM_EXAMPLE:
        assert any(200 <= status < 300 for status in statuses), f"no call succeeded: {statuses}"
