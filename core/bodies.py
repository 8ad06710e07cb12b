"""Reading request bodies (JSON or form) and query parameters, and checking them against the shapes in shapes.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

import orjson
from aiohttp import web

from core.errors import ApiError, BadRequest, RequestTimeout, Unprocessable
from core.keys import body_key, settings_key
from core.shapes import DefaultT, IntQuery, JsonObject, Shape, Text, fields_of

_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
FORM_MARK = "_chatterd_accepts_form"  # the attribute accepts_form sets on a view
ViewT = TypeVar("ViewT", bound=Callable[..., Any])


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response serialised with orjson."""
    return web.Response(body=orjson.dumps(data), status=status, headers=headers, content_type="application/json")


def accepts_form(view: ViewT) -> ViewT:
    """Mark a view whose body may also be form data (as `http -f` and HTML forms send); the reader asks the route."""
    setattr(view, FORM_MARK, True)
    return view


def form_accepted(request: web.Request) -> bool:
    """Whether the route the request matched takes form data as well as JSON."""
    return bool(getattr(request.match_info.handler, FORM_MARK, False))


async def read_body(request: web.Request) -> dict[str, Any]:
    """The body's fields, read the one way the contract gives, by the auth middleware and the view alike.

    JSON whatever the Content-Type says (older course apps label JSON `application/x-www-form-urlencoded`, or not at
    all); else form data when it is labelled so and the route accepts forms; else 400 (422 for JSON that is not an
    object). The body is read and parsed once per request: the outcome, a failure included, is kept for the next
    caller. Over the size limit aiohttp raises 413, and a body slower than BODY_TIMEOUT is a 408 that closes the
    connection (slowloris); neither is kept, as they end the request.
    """
    outcome = request.get(body_key)
    if outcome is None:
        if request.content.is_eof():
            outcome = await _read(request)  # all of it has arrived (most bodies come with their headers): no wait
        else:
            body_timeout = request.app[settings_key].body_timeout
            try:
                async with asyncio.timeout(body_timeout):
                    outcome = await _read(request)
            except TimeoutError:
                raise RequestTimeout(f"The request body did not arrive within {body_timeout:g} s.") from None
        request[body_key] = outcome
    if isinstance(outcome, ApiError):
        raise outcome
    return outcome


async def _read(request: web.Request) -> dict[str, Any] | ApiError:
    form = request.content_type in FORM_TYPES and form_accepted(request)
    if form and request.content_type == "multipart/form-data":
        # Its parts are framed by a boundary, so it is never one JSON document; and aiohttp reads it part by part
        # from the stream, which a read() of the whole body first would leave empty.
        return await _form(request)
    body = await request.read()  # over client_max_size: aiohttp raises 413
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        if form:
            return await _form(request)  # aiohttp parses the bytes read above: no second read
        return BadRequest("The request body is not valid JSON.")
    if not isinstance(data, dict):
        return Unprocessable("The request body must be a JSON object.")
    return data


async def _form(request: web.Request) -> dict[str, Any] | ApiError:
    try:
        form = await request.post()  # bounded by aiohttp: client_max_size bytes, client_max_fields fields
    except (ValueError, UnicodeDecodeError, AssertionError, LookupError):  # LookupError: an unknown charset
        return BadRequest("The request body is not valid form data.")
    fields: dict[str, Any] = {}
    for key, value in form.items():
        if isinstance(value, str):
            fields[key] = value  # the last of a repeated field, as for a repeated key in JSON
        elif isinstance(value, web.FileField):
            value.file.close()  # no field of ours is a file
    return fields


_MISSING: Any = object()
_PARSERS: dict[type[NamedTuple], Callable[[Mapping[str, Any]], Any]] = {}


def parse(shape: type[Shape], data: Mapping[str, Any]) -> Shape:
    """The body's fields as `shape` declares them; 422 with the first problem, in the contract's order, otherwise."""
    parsed: Shape = (_PARSERS.get(shape) or _compile(shape))(data)
    return parsed


def check_text(name: str, text: Text, value: Any) -> str:
    """`value` when it is a string the field allows; 422 with its first problem, in the contract's order, otherwise."""
    if not isinstance(value, str):
        raise Unprocessable(f"'{name}' must be a string.")
    if not text.min_length <= len(value) <= text.max_length:
        raise Unprocessable(f"'{name}' must be {text.min_length} to {text.max_length} characters long.")
    if "\x00" in value:
        raise Unprocessable(f"'{name}' must not contain NUL characters.")
    try:
        value.encode("utf-8")  # fails on a lone surrogate: str can hold one, UTF-8 (and Postgres) cannot
    except UnicodeEncodeError:
        raise Unprocessable(f"'{name}' must be valid Unicode text.") from None
    if text.ascii and not value.isascii():
        raise Unprocessable(f"'{name}' must be ASCII text.")
    if not value.startswith(text.prefix):
        raise Unprocessable(f"'{name}' must start with '{text.prefix}'.")
    return value


def _utf8(value: str) -> bool:
    """Whether the text has no lone surrogate, and so can be stored."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _object_lines(name: str, value: str, required: bool) -> list[str]:
    """The parser's lines for an object field: present (when required) and an object; what is inside is its reader's."""
    wrong = f"'{name}' must be a JSON object."
    if not required:  # absent or null: None
        return [
            f"    {value} = data.get({name!r})",
            f"    if {value} is not None and {value}.__class__ is not dict: raise Unprocessable({wrong!r})",
        ]
    missing = f"'{name}' is required."
    return [
        f"    {value} = data.get({name!r}, MISSING)",
        f"    if {value} is MISSING: raise Unprocessable({missing!r})",
        f"    if {value}.__class__ is not dict: raise Unprocessable({wrong!r})",
    ]


def _compile(shape: type[NamedTuple]) -> Callable[[Mapping[str, Any]], Any]:
    """The shape's parser: straight-line code made from its declarations, one field after the other.

    A field that passes every check at once (a str within its limits, without NUL or lone surrogate, with its prefix)
    is taken as it is; anything else goes through check_text, which names the first problem. The code is generated,
    as namedtuple and dataclasses generate theirs, because a loop over the fields costs as much as the checks do.
    """
    lines = ["def parse(data):"]
    names = []
    namespace: dict[str, Any] = {
        "MISSING": _MISSING,
        "Unprocessable": Unprocessable,
        "check": check_text,
        "utf8": _utf8,
        "new": tuple.__new__,
        "shape": shape,
    }
    for i, (name, text, required) in enumerate(fields_of(shape)):
        value, limits = f"v{i}", f"text{i}"
        names.append(value)
        if isinstance(text, JsonObject):
            lines += _object_lines(name, value, required)
            continue
        namespace[limits] = text
        # Non-ASCII text is fine unless it holds a lone surrogate, or the field is ASCII only.
        unicode = f"{value}.isascii()" if text.ascii else f"({value}.isascii() or utf8({value}))"
        plain = (
            f"{value}.__class__ is str and {text.min_length} <= len({value}) <= {text.max_length}"
            f" and '\\x00' not in {value} and {unicode}"
        )
        if text.prefix:
            plain += f" and {value}.startswith({text.prefix!r})"
        if required:
            lines.append(f"    {value} = data.get({name!r}, MISSING)")
            for alias in text.aliases:
                lines.append(f"    if {value} is MISSING: {value} = data.get({alias!r}, MISSING)")
            missing = f"'{name}' is required."
            lines.append(f"    if {value} is MISSING: raise Unprocessable({missing!r})")
            lines.append(f"    if not ({plain}): {value} = check({name!r}, {limits}, {value})")
        else:  # absent or null: None
            lines.append(f"    {value} = data.get({name!r})")
            for alias in text.aliases:
                lines.append(f"    if {value} is None: {value} = data.get({alias!r})")
            lines.append(f"    if {value} is not None and not ({plain}): {value} = check({name!r}, {limits}, {value})")
    lines.append(f"    return new(shape, ({', '.join(names)},))")
    # The source is made from our own declarations only, never from a request.
    exec(compile("\n".join(lines), f"<parser of {shape.__name__}>", "exec"), namespace)  # noqa: S102
    parser: Callable[[Mapping[str, Any]], Any] = namespace["parse"]
    _PARSERS[shape] = parser
    return parser


def int_query(request: web.Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within bounds; 422 otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return default
    # The length is bounded before int(), whose cost grows with the digits; 20 hold any bigint, leading zeros aside.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20 or not minimum <= int(raw) <= maximum:
        raise Unprocessable(f"'{name}' must be a whole number from {minimum} to {maximum}.")
    return int(raw)


def canonical_uuid(value: str) -> str | None:
    """`value` lowercased when it is a UUID in the canonical 8-4-4-4-12 hex form (any case), else None.

    Python's uuid.UUID also takes braces, `urn:uuid:` and undashed hex, and Postgres some of those but not all:
    an id is only ever taken in the one form both read alike.
    """
    return value.lower() if _CANONICAL_UUID.fullmatch(value) else None


def int_param(request: web.Request, param: IntQuery[DefaultT]) -> int | DefaultT:
    """The query parameter `param` declares, within its bounds, or its default when absent; 422 when out of bounds."""
    if param.name not in request.query:
        return param.default
    return int_query(request, param.name, default=param.minimum, minimum=param.minimum, maximum=param.maximum)


def uuid_query(request: web.Request, name: str) -> str | None:
    """A UUID query parameter in canonical text form, or None when absent; 422 when it is not one."""
    raw = request.query.get(name)
    if raw is None:
        return None
    value = canonical_uuid(raw)
    if value is None:
        raise Unprocessable(f"'{name}' must be the id of a chatt (8-4-4-4-12 hexadecimal digits).")
    return value
