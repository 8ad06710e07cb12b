"""The OpenAPI document: valid, complete, made from the shapes, and true of the running app (statuses, limits)."""

from __future__ import annotations

import re
import secrets
from typing import Any

import hypothesis
import openapi_spec_validator
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator

import models
from core.bodies import FORM_MARK, parse
from core.errors import Unprocessable
from core.keys import db_key
from core.openapi import DOCUMENT, body_schema, query_parameter
from core.shapes import (
    ADMIN_USERS_LIMIT,
    AUDIT_BEFORE,
    AUDIT_LIMIT,
    AUDIT_USER_ID,
    CHATTS_LIMIT,
    REQUEST_BODIES,
    ROLES,
    JsonObject,
    Text,
    fields_of,
)
from views import ROUTES
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
    # email, verification and recovery
    ("post", "/email"),
    ("post", "/email/verify"),
    ("post", "/password/forgot"),
    ("post", "/password/reset"),
    ("post", "/password/change"),
    # sessions and devices
    ("get", "/sessions"),
    ("delete", "/sessions/{id}"),
    ("post", "/sessions/revoke-others"),
    # passkeys and step-up
    ("post", "/reauthenticate"),
    ("post", "/passkeys/register/options"),
    ("post", "/passkeys/register"),
    ("get", "/passkeys"),
    ("delete", "/passkeys/{id}"),
    ("post", "/passkeys/login/options"),
    ("post", "/passkeys/login"),
    ("get", "/.well-known/assetlinks.json"),
    ("get", "/.well-known/apple-app-site-association"),
    # the page's reads
    ("get", "/chatts"),
    ("get", "/account"),
    # identities, the account, admin
    ("get", "/identities"),
    ("post", "/identities/google"),
    ("post", "/identities/password"),
    ("delete", "/identities/password"),
    ("delete", "/identities/google"),
    ("delete", "/identities/passkey"),
    ("get", "/me/export"),
    ("delete", "/me"),
    ("get", "/admin/users"),
    ("get", "/admin/users/{id}"),
    ("put", "/admin/users/{id}/role"),
    ("post", "/admin/users/{id}/ban"),
    ("delete", "/admin/users/{id}/ban"),
}
METHODS = {"get", "post", "put", "patch", "delete"}
# Operations whose documented example cannot succeed here (a made-up Google token, an unknown account,
# a made-up one-time code, a plain user deleting, a made-up refresh token, TOTP not on, a plain user reading the
# audit log, Google web sign-in (off here, and a redirect when on), a made-up session id, a made-up passkey and an
# unknown passkey id, a made-up emailed code, a made-up Google token to link, a password added to or removed from an
# account whose only way in it is); every other one must answer 2xx to it at least once (the admin's operations signed
# in as an admin).
NO_SUCCESS_FROM_EXAMPLE = {
    "linkGoogle",
    "addPassword",
    "removePassword",
    "unlinkGoogle",
    "removePasskey",
    "deleteSession",
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
    "verifyEmail",
    "resetPassword",
    "passkeyRegister",
    "passkeyLogin",
    "deletePasskey",
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


def test_form_bodies_are_documented_where_the_views_accept_them():
    documented = {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method, op in item.items()
        if method in METHODS and "application/x-www-form-urlencoded" in op.get("requestBody", {}).get("content", {})
    }
    assert documented == {(method, path) for method, path, view in ROUTES if getattr(view, FORM_MARK, False)}


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
        token = await _sign_in(client)  # a plain user: the examples' user 1, which admins' examples act on
        if token is not None:
            calls += _requests(op, {"Authorization": f"Bearer {token}"})
        if "admin" in op["tags"]:
            calls += _requests(op, {"Authorization": f"Bearer {await _admin_token(client)}"})
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


# ---- the shapes: one source for the checks and the document ------------------------------------------------------

# Every whole-number query parameter the document gives, with the declaration the view reads it by.
QUERY_PARAMETERS = {
    ("/getchatts/", "limit"): CHATTS_LIMIT,
    ("/chatts", "limit"): CHATTS_LIMIT,
    ("/admin/users", "limit"): ADMIN_USERS_LIMIT,
    ("/audit", "limit"): AUDIT_LIMIT,
    ("/audit", "before"): AUDIT_BEFORE,
    ("/audit", "user_id"): AUDIT_USER_ID,
}
SHAPES = {shape.__name__: shape for shape in REQUEST_BODIES}


def _body_operations() -> list[tuple[str, str, dict[str, Any], type[Any]]]:
    """(method, path, operation, shape) of every operation that takes a body, by the schema its JSON body refers to."""
    found = []
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            if method in METHODS and "requestBody" in op:
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                found.append((method, path, op, SHAPES[ref.rsplit("/", 1)[1]]))
    return found


async def test_documented_request_schemas_are_the_generated_ones(client):
    served = await (await client.get("/openapi.json")).json()
    used = set()
    for path, item in served["paths"].items():
        for method, op in item.items():
            if method not in METHODS or "requestBody" not in op:
                continue
            for media in op["requestBody"]["content"].values():
                name = media["schema"]["$ref"].rsplit("/", 1)[1]
                assert name in SHAPES, f"{method.upper()} {path}: {name} is not a shape in core/shapes.py"
                used.add(name)
    assert used == set(SHAPES), "every shape is some operation's body"
    for name, shape in SHAPES.items():
        assert served["components"]["schemas"][name] == body_schema(shape), name


async def test_documented_query_bounds_are_the_declared_ones(client):
    served = await (await client.get("/openapi.json")).json()
    seen = set()
    for path, item in served["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []) if method in METHODS else []:
                if param["in"] == "query" and param["schema"].get("type") == "integer":
                    assert param == query_parameter(QUERY_PARAMETERS[(path, param["name"])])
                    seen.add((path, param["name"]))
    assert seen == set(QUERY_PARAMETERS)
    user = served["components"]["schemas"]["CurrentUser"]["properties"]["user"]
    assert user["properties"]["role"]["enum"] == list(ROLES)


def _length_cases() -> list[Any]:
    """For every body field (and alias): its documented limits, at them and one character past them."""
    cases = []
    for method, path, op, shape in _body_operations():
        properties = DOCUMENT["components"]["schemas"][shape.__name__]["properties"]
        for field in fields_of(shape):
            if not isinstance(field.spec, Text):
                continue  # an object: what is inside is its reader's to check
            low, high = properties[field.name]["minLength"], properties[field.name]["maxLength"]
            lengths = [(high, True), (high + 1, False)] + ([(low, True), (low - 1, False)] if low > 0 else [])
            for key in (field.name, *field.spec.aliases):
                for length, ok in lengths:
                    param = (method, path, op, field.name, key, field.spec.prefix, (low, high), length, ok)
                    cases.append(pytest.param(*param, id=f"{op['operationId']}-{key}-{length}"))
    return cases


def properties_of(op: dict[str, Any]) -> dict[str, Any]:
    """The documented properties of an operation's JSON body."""
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    properties: dict[str, Any] = DOCUMENT["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    return properties


def email_of_length(length: int) -> str:
    """A well-formed address of exactly `length` characters (at least 3): labels of at most 63 characters."""
    labels, left = [], length - 2  # "a@" and the domain
    while left > 0:
        label = "0" * min(63, left if left <= 63 else min(63, left - 2))
        labels.append(label)
        left -= len(label) + 1
    return "a@" + ".".join(labels)


@pytest.mark.parametrize(("method", "path", "op", "field", "key", "prefix", "limits", "length", "ok"), _length_cases())
async def test_documented_lengths_are_the_enforced_ones(
    client, method, path, op, field, key, prefix, limits, length, ok
):
    """At a documented limit the field passes the checks at the real endpoint; one character past it, a 422 says so."""
    body = {**op["requestBody"]["content"]["application/json"]["example"]}
    if key != field:
        del body[field]  # the alias is read only when the field itself is absent
    # Digits: the QR code of an otpauth:// URI once failed on long runs of them.
    body[key] = (prefix + "0" * length)[:length] if length >= len(prefix) else "0" * length
    if properties_of(op)[field].get("format") == "email" and length >= 3:
        body[key] = email_of_length(length)
    headers = {}
    if op.get("security"):
        token = await (_admin_token(client) if "admin" in op["tags"] else _sign_in(client))
        headers["Authorization"] = f"Bearer {token}"
    resp = await client.request(method.upper(), _concrete(path, op), json=body, headers=headers)
    message = (await resp.json())["message"] if resp.content_type == "application/json" and resp.status >= 400 else ""
    if ok:
        assert not message.startswith(f"'{field}' "), (resp.status, message)
        assert resp.status < 500
    else:
        assert (resp.status, message) == (422, f"'{field}' must be {limits[0]} to {limits[1]} characters long.")


async def _admin_token(client: Any) -> str:
    credentials = {"username": "doc-admin", "password": "correct horse battery"}
    assert (await client.post("/register", json=credentials)).status == 201
    await models.set_role(client.app[db_key], "doc-admin", "admin")
    resp = await client.post("/login", json=credentials)  # after the role change, so that the JWT carries it
    assert resp.status == 200
    client.session.cookie_jar.clear()
    token: str = (await resp.json())["token"]
    return token


@pytest.mark.parametrize(
    ("path", "name"), [pytest.param(path, name, id=f"{path}-{name}") for path, name in QUERY_PARAMETERS]
)
async def test_documented_query_bounds_are_the_enforced_ones(client, path, name):
    param = next(p for p in DOCUMENT["paths"][path]["get"]["parameters"] if p["name"] == name)["schema"]
    admin = path.startswith(("/audit", "/admin/"))
    headers = {"Authorization": f"Bearer {await _admin_token(client)}"} if admin else {}
    for value, status in [
        (param["minimum"], 200),
        (param["maximum"], 200),
        (param["minimum"] - 1, 422),
        (param["maximum"] + 1, 422),
    ]:
        resp = await client.get(path, params={name: str(value)}, headers=headers)
        assert resp.status == status, (value, await resp.text())


def _reference(shape: type[Any], data: dict[str, Any]) -> tuple[Any, ...] | str:
    """What parse must answer, checked field by field in the plainest way: the values, or the 422's message."""
    values = []
    for name, spec, required in fields_of(shape):
        keys = [key for key in (name, *(spec.aliases if isinstance(spec, Text) else ())) if key in data]
        value = data[keys[0]] if keys else None
        if not keys or (value is None and not required):
            if required:
                return f"'{name}' is required."
            values.append(None)
            continue
        if isinstance(spec, JsonObject):
            if not isinstance(value, dict):
                return f"'{name}' must be a JSON object."
            values.append(value)
            continue
        text = spec
        if not isinstance(value, str):
            return f"'{name}' must be a string."
        if not text.min_length <= len(value) <= text.max_length:
            return f"'{name}' must be {text.min_length} to {text.max_length} characters long."
        if "\x00" in value:
            return f"'{name}' must not contain NUL characters."
        if any(0xD800 <= ord(char) <= 0xDFFF for char in value):
            return f"'{name}' must be valid Unicode text."
        if text.ascii and any(ord(char) > 127 for char in value):
            return f"'{name}' must be ASCII text."
        if not value.startswith(text.prefix):
            return f"'{name}' must start with '{text.prefix}'."
        values.append(value)
    return tuple(values)


@st.composite
def _text_values(draw: st.DrawFn, text: Text) -> str:
    """Strings at and around the limits, mostly with the prefix, some with NUL, a lone surrogate or non-ASCII."""
    edges = [text.min_length - 1, text.min_length, text.max_length, text.max_length + 1]
    length = max(draw(st.sampled_from(edges) | st.integers(0, 40)), 0)
    start = text.prefix if draw(st.integers(0, 3)) else draw(st.text(max_size=3))
    value = (start + draw(st.text(alphabet="az09 -", max_size=5)) + "y" * length)[:length]
    if value and draw(st.booleans()):
        at = draw(st.integers(0, len(value) - 1))
        value = value[:at] + draw(st.sampled_from(["\x00", "\ud800", "\udfff", "é", "👋", "\x7f"])) + value[at + 1 :]
    return value


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[type[Any], dict[str, Any]]:
    shape = draw(st.sampled_from(REQUEST_BODIES))
    body: dict[str, Any] = {}
    for field in fields_of(shape):
        spec = field.spec
        for key in (field.name, *(spec.aliases if isinstance(spec, Text) else ())):
            if draw(st.integers(0, 4)):
                odd = st.none() | st.integers() | st.lists(st.text(max_size=3), max_size=2)
                if isinstance(spec, JsonObject):
                    odd = odd | st.text(max_size=3)
                    good = st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)
                else:
                    good = _text_values(spec)
                body[key] = draw(good if draw(st.integers(0, 5)) else odd)
    if draw(st.booleans()):
        body[draw(st.text(max_size=5))] = draw(st.text(max_size=5))
    return shape, body


@hypothesis.settings(max_examples=1000, deadline=None, database=None)
@hypothesis.given(_bodies())
def test_parse_answers_as_the_field_by_field_checks(case):
    """The generated parsers take exactly the values, and give exactly the first error, the declarations call for."""
    shape, body = case
    expected = _reference(shape, body)
    try:
        got: tuple[Any, ...] | str = tuple(parse(shape, body))
    except Unprocessable as exc:
        got = exc.message
    assert got == expected
    if not isinstance(got, str):
        assert type(parse(shape, body)) is shape
