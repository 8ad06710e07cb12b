"""Reading request bodies (JSON or form) and checking their fields against the contract's limits."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from core.errors import BadRequest, Unprocessable
from core.keys import json_body_key

_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response serialised with orjson."""
    return web.Response(body=orjson.dumps(data), status=status, headers=headers, content_type="application/json")


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object: 400 when it is not JSON, 422 when it is JSON but not an object."""
    cached: dict[str, Any] | None = request.get(json_body_key)
    if cached is not None:
        return cached
    body = await request.read()  # over client_max_size: aiohttp raises 413
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise Unprocessable("The request body must be a JSON object.")
    request[json_body_key] = data
    return data


async def read_json_or_form(request: web.Request) -> dict[str, Any]:
    """The body as JSON, or as form data when the client sent a form (as `http -f` does)."""
    if request.content_type not in FORM_TYPES:
        return await read_json(request)
    try:
        form = await request.post()
    except (ValueError, UnicodeDecodeError, AssertionError, LookupError):  # LookupError: an unknown charset
        raise BadRequest("The request body is not valid form data.") from None
    return {key: value for key, value in form.items() if isinstance(value, str)}


def text_field(
    data: Mapping[str, Any], name: str, *, max_length: int, min_length: int = 1, aliases: tuple[str, ...] = ()
) -> str:
    """A required string field within the given length, in characters; 422 with the limit otherwise."""
    for key in (name, *aliases):
        if key in data:
            value = data[key]
            break
    else:
        raise Unprocessable(f"'{name}' is required.")
    if not isinstance(value, str):
        raise Unprocessable(f"'{name}' must be a string.")
    if not min_length <= len(value) <= max_length:
        raise Unprocessable(f"'{name}' must be {min_length} to {max_length} characters long.")
    if "\x00" in value:
        raise Unprocessable(f"'{name}' must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Unprocessable(f"'{name}' must be valid Unicode text.") from None
    return value


def int_query(request: web.Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within bounds; 422 otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or not minimum <= int(raw) <= maximum:
        raise Unprocessable(f"'{name}' must be a whole number from {minimum} to {maximum}.")
    return int(raw)


def canonical_uuid(value: str) -> str | None:
    """`value` lowercased when it is a UUID in the canonical 8-4-4-4-12 hex form (any case), else None.

    Python's uuid.UUID also takes braces, `urn:uuid:` and undashed hex, and Postgres some of those but not all:
    an id is only ever taken in the one form both read alike.
    """
    return value.lower() if _CANONICAL_UUID.fullmatch(value) else None


def uuid_query(request: web.Request, name: str) -> str | None:
    """A UUID query parameter in canonical text form, or None when absent; 422 when it is not one."""
    raw = request.query.get(name)
    if raw is None:
        return None
    value = canonical_uuid(raw)
    if value is None:
        raise Unprocessable(f"'{name}' must be the id of a chatt (8-4-4-4-12 hexadecimal digits).")
    return value
