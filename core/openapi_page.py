"""The OpenAPI description of what the web page reads: chatts that say whether they are signed (the objects of GET
/chatts), and GET /account."""

from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

from core.openapi_parts import errors, ok, ref
from core.shapes import SESSION_KINDS, Chatt

JSON_TYPES = {str: "string", bool: "boolean", int: "integer"}

# What each field of a Chatt holds, beyond its type (which the dataclass gives).
CHATT_FIELDS: dict[str, dict[str, Any]] = {
    "id": {"format": "uuid"},
    "username": {"description": "The signed-in poster's name when `signed`; else whatever name the poster typed."},
    "message": {},
    "timestamp": {"format": "date-time", "description": "ISO 8601, UTC."},
    "signed": {
        "description": "Posted by a signed-in user (POST /postauth/), under that user's name; false: posted "
        "anonymously (POST /postchatt/), under any name, a registered one included."
    },
}


def dataclass_schema(cls: type[Any], notes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The schema of an answer declared as a dataclass: every field required, typed as the dataclass types it."""
    hints = get_type_hints(cls)
    names = [field.name for field in dataclasses.fields(cls)]
    return {
        "type": "object",
        "required": names,
        "properties": {name: {"type": JSON_TYPES[hints[name]], **notes[name]} for name in names},
    }


SCHEMAS: dict[str, Any] = {
    "PageChatt": {
        **dataclass_schema(Chatt, CHATT_FIELDS),
        "example": {
            "id": "0b7e1c5e-8c1f-4a63-9d6e-1f2b3c4d5e6f",
            "username": "alice",
            "message": "hello",
            "timestamp": "2025-01-01T12:00:00.000000Z",
            "signed": True,
        },
    },
    "PageChatts": {
        "type": "object",
        "required": ["chatts"],
        "properties": {"chatts": {"type": "array", "items": ref("PageChatt")}},
    },
    "Account": {
        "type": "object",
        "description": "Only `signed_in` for an anonymous caller (or invalid credentials); every field when signed in.",
        "required": ["signed_in"],
        "properties": {
            "signed_in": {"type": "boolean"},
            "sign_in_kind": {
                "type": "string",
                "nullable": True,
                "enum": [*SESSION_KINDS, None],
                "description": "How the session of the credential used was signed in (a kind of GET /sessions).",
            },
            "has_password": {
                "type": "boolean",
                "description": "Whether the account has a password; two-factor sign-in (TOTP) needs one.",
            },
            "totp_enabled": {"type": "boolean"},
            "recovery_codes_left": {
                "type": "integer",
                "minimum": 0,
                "description": "Unused recovery codes (POST /totp/recovery-codes makes ten new ones).",
            },
        },
        "additionalProperties": False,
    },
}

PATHS: dict[str, Any] = {
    "/account": {
        "get": {
            "tags": ["page"],
            "summary": "Whether the caller is signed in; then how, and how two-factor sign-in stands",
            "description": "Answers anonymous callers too (with `signed_in` false), so the page asks it without a 401.",
            "operationId": "account",
            "responses": {**ok("The caller's account, as the page shows it.", ref("Account")), **errors(503)},
        }
    },
}
