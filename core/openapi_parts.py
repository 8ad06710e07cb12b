"""The pieces every part of the OpenAPI document is written with: references, JSON bodies, answers, security."""

from __future__ import annotations

from typing import Any, NamedTuple

from core.shapes import IntQuery

JSON = "application/json"
SIGNED_IN: list[dict[str, list[str]]] = [{"bearer": []}, {"cookie": []}]
NO_CONTENT = {"204": {"description": "Done; no body."}}
# Errors any endpoint may give: a 408 for a body slower than BODY_TIMEOUT, a 413 for a body over the limit, a 503
# when Postgres is down.
COMMON = (408, 413, 503)
# What every sensitive action's description says (the contract's "Step-up").
STEP_UP = (
    "Step-up: needs a sign-in, or POST /reauthenticate, within the last REAUTH_MAX_AGE seconds (default 300) in the "
    'session of the credential used; otherwise 401 with `"error": "reauth_required"`.'
)


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema `name`."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    """A JSON body of `schema`, with an example when given."""
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {JSON: media}


def ok(description: str, schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    """A successful answer with a JSON body."""
    return {status: {"description": description, "content": json_content(schema)}}


def errors(*statuses: int) -> dict[str, Any]:
    """The shared error answers of these statuses."""
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def body(shape: type[NamedTuple], example: dict[str, Any], *, form: bool = False) -> dict[str, Any]:
    """A request body of `shape` (whose component schema has its name), as JSON and, with `form`, as form data."""
    content = json_content(ref(shape.__name__), example)
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": ref(shape.__name__)}
    return {"required": True, "content": content}


def query_parameter(param: IntQuery[Any]) -> dict[str, Any]:
    """The description of a whole-number query parameter, from its declaration."""
    schema: dict[str, Any] = {"type": "integer", "minimum": param.minimum, "maximum": param.maximum}
    if param.default is not None:
        schema["default"] = param.default
    parameter: dict[str, Any] = {"name": param.name, "in": "query"}
    if param.description:
        parameter["description"] = param.description
    parameter["schema"] = schema
    if param.example is not None:
        parameter["example"] = param.example
    return parameter
