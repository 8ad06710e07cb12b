"""The OpenAPI 3.0 description of every chatterd endpoint in the HTTP contract, served at /openapi.json."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from auth.cookies import COOKIE_NAME, HOST_COOKIE_NAME
from core import openapi_email as email
from core import openapi_identities as identities
from core import openapi_page as page
from core import openapi_parts as parts
from core import openapi_passkeys as passkeys
from core.openapi_parts import COMMON, NO_CONTENT, SIGNED_IN, STEP_UP, query_parameter
from core.shapes import (
    AUDIT_BEFORE,
    AUDIT_LIMIT,
    AUDIT_USER_ID,
    CHATTS_LIMIT,
    REQUEST_BODIES,
    ROLES,
    SESSION_KINDS,
    SESSIONS_LISTED,
    AddUser,
    JsonObject,
    Login,
    Otp,
    OtpauthUri,
    OtpOrRecoveryCode,
    PostAuth,
    PostChatt,
    Refresh,
    Register,
    Text,
    fields_of,
)
from settings import VERSION

# Short local names for the shared pieces, as every path below is written with them.
_ref, _json, _ok, _errors, _body = parts.ref, parts.json_content, parts.ok, parts.errors, parts.body


def _text(text: Text) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": text.min_length, "maxLength": text.max_length}
    if text.prefix or text.ascii:
        schema["pattern"] = "^" + re.escape(text.prefix) + ("[\\x00-\\x7F]*$" if text.ascii else "")
    if text.format:
        schema["format"] = text.format
    if text.description:
        schema["description"] = text.description
    return schema


def _object(spec: JsonObject) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "allOf": [_ref(spec.schema)]}
    if spec.description:
        schema["description"] = spec.description
    return schema


def body_schema(shape: type[NamedTuple]) -> dict[str, Any]:
    """The component schema of a request body, from its shape."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    notes: list[str] = []
    for field in fields_of(shape):
        spec = field.spec
        properties[field.name] = _object(spec) if isinstance(spec, JsonObject) else _text(spec)
        if not field.required:
            properties[field.name]["nullable"] = True  # null is taken as absent
        aliases = spec.aliases if isinstance(spec, Text) else ()
        for alias in aliases:
            # Untyped: while the field itself is present the alias is never read, whatever it holds.
            properties[alias] = {
                "description": f"Alias of `{field.name}` (a string with the same limits) when `{field.name}` is absent."
            }
            notes.append(
                f"`{alias}` is accepted in place of `{field.name}` (and ignored when `{field.name}` is given)."
            )
        if field.required and not aliases:
            required.append(field.name)
    schema: dict[str, Any] = {"type": "object"}
    if notes:
        schema["description"] = " ".join(notes)
    if required:
        schema["required"] = required
    schema["properties"] = properties
    return schema


ERROR_TEXT = {
    400: (
        "The body is not valid JSON (or form data where form data is accepted); or an emailed code that is wrong, "
        'used, expired or out of tries (`"error": "invalid_code"`).'
    ),
    401: (
        "No credentials where they are required, or unknown, expired, revoked or forged ones; for a sensitive action, "
        'no sign-in within REAUTH_MAX_AGE seconds (`"error": "reauth_required"`).'
    ),
    403: (
        "Valid credentials without the needed role, a cross-site request signed in by cookie alone, a sign-in "
        "posted from another site (Origin or Referer neither this site nor CORS_ORIGINS), a feature off, or a sign-in "
        'by a banned user (`"error": "banned"`).'
    ),
    404: "Unknown path or record.",
    408: "The body did not arrive within BODY_TIMEOUT; the connection is closed.",
    409: (
        "The username is already taken, or the email address is verified by another account; or what the "
        "operation's description says."
    ),
    413: "The body is over the size limit.",
    422: "Valid JSON of the wrong shape: a missing field, a wrong type, an empty or over-long value, a NUL character.",
    429: "Too many attempts; come back after Retry-After seconds.",
    503: "A dependency (Postgres, Google's certificates) is down; come back after Retry-After seconds.",
}
RETRY_AFTER = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer", "minimum": 1}}
WWW_AUTHENTICATE = {"description": "Always `Bearer`.", "schema": {"type": "string"}}
REQUEST_ID = {"description": "The request's id, echoed or generated.", "schema": {"type": "string"}}


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": ERROR_TEXT[status], "content": _json(_ref("Error"))}
    headers: dict[str, Any] = {"X-Request-ID": REQUEST_ID}
    if status in {429, 503}:
        headers["Retry-After"] = RETRY_AFTER
    if status == 401:
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    response["headers"] = headers
    return response


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["message"],
        "properties": {
            "message": {"type": "string", "description": "What went wrong, for a person."},
            "error": {
                "type": "string",
                "description": (
                    "A code for programs, where one is defined (`otp_required` at /login, `invalid_code` for emailed "
                    "codes, `reauth_required` where a recent sign-in is needed, `banned` for a banned user's sign-in)."
                ),
            },
        },
        "additionalProperties": False,
    },
    "Empty": {"type": "object", "maxProperties": 0},
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["ok"]}},
    },
    "Health": {
        "type": "object",
        "required": ["status", "version"],
        "properties": {
            "status": {"type": "string", "enum": ["ok"]},
            "version": {"type": "string", "description": "chatterd's version (pyproject.toml's)", "example": VERSION},
        },
    },
    "Chatt": {
        "type": "array",
        "description": "[username, message, id (UUID), timestamp (ISO 8601 UTC)]",
        "items": {"type": "string"},
        "minItems": 4,
        "maxItems": 4,
        "example": ["alice", "hello", "0b7e1c5e-8c1f-4a63-9d6e-1f2b3c4d5e6f", "2025-01-01T12:00:00.000000Z"],
    },
    "Chatts": {"type": "array", "items": _ref("Chatt")},
    **{shape.__name__: body_schema(shape) for shape in REQUEST_BODIES},
    **identities.SCHEMAS,
    **passkeys.SCHEMAS,
    **page.SCHEMAS,
    "AddedUser": {
        "type": "object",
        "required": ["username", "chatterID", "lifetime", "token"],
        "properties": {
            "username": {"type": "string"},
            "chatterID": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "lifetime": {"type": "integer", "minimum": 1},
            "token": {"type": "string", "description": "A JWT for the same user."},
            "refresh_token": {"type": "string", "description": "Opaque; trade it at /token/refresh."},
        },
    },
    "Registered": {
        "type": "object",
        "required": ["id", "username"],
        "properties": {"id": {"type": "integer"}, "username": {"type": "string"}},
    },
    "Token": {
        "type": "object",
        "required": ["token", "token_type", "expires_in"],
        "properties": {
            "token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer", "minimum": 1},
            "refresh_token": {"type": "string", "description": "Opaque; trade it at /token/refresh."},
        },
    },
    "RecoveryCodes": {
        "type": "object",
        "required": ["codes"],
        "properties": {"codes": {"type": "array", "items": {"type": "string"}, "minItems": 10, "maxItems": 10}},
    },
    "AuditEvents": {
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "at", "user_id", "event", "kind", "address", "detail"],
                    "properties": {
                        "id": {"type": "integer"},
                        "at": {"type": "string", "format": "date-time"},
                        "user_id": {"type": "integer", "nullable": True},
                        "event": {"type": "string"},
                        "kind": {"type": "string", "nullable": True},
                        "address": {"type": "string", "nullable": True},
                        "detail": {"type": "object"},
                    },
                },
            }
        },
    },
    "Sessions": {
        "type": "object",
        "required": ["sessions"],
        "properties": {
            "sessions": {
                "type": "array",
                "description": f"The caller's live sessions, newest first (at most {SESSIONS_LISTED}).",
                "maxItems": SESSIONS_LISTED,
                "items": {
                    "type": "object",
                    "required": ["id", "kind", "created_at", "last_seen_at", "ip", "user_agent", "device", "current"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid", "description": "Opaque: not a credential."},
                        "kind": {"type": "string", "enum": list(SESSION_KINDS)},
                        "created_at": {"type": "string", "format": "date-time"},
                        "last_seen_at": {
                            "type": "string",
                            "format": "date-time",
                            "description": "May lag real use by up to 60 s.",
                        },
                        "ip": {"type": "string", "nullable": True, "description": "Where it was last refreshed from."},
                        "user_agent": {"type": "string", "nullable": True},
                        "device": {
                            "type": "string",
                            "nullable": True,
                            "description": "Read from the user agent: `Chrome 131 on macOS`, `chatter iOS app`, ...",
                        },
                        "current": {"type": "boolean", "description": "The session of the credential used."},
                    },
                },
            }
        },
    },
    "CurrentUser": {
        "type": "object",
        "required": ["user"],
        "properties": {
            "user": {
                "type": "object",
                "required": ["id", "username", "role", "email", "email_verified"],
                "properties": {
                    "id": {"type": "integer"},
                    "username": {"type": "string"},
                    "role": {"type": "string", "enum": list(ROLES)},
                    "email": {"type": "string", "nullable": True, "description": "As typed; null when none."},
                    "email_verified": {
                        "type": "boolean",
                        "description": "Whether the address was confirmed with a mailed code (only then does mail "
                        "other than that code go to it).",
                    },
                },
            }
        },
    },
    "TotpSecret": {
        "type": "object",
        "required": ["secret", "uri"],
        "properties": {"secret": {"type": "string"}, "uri": {"type": "string", "pattern": "^otpauth://"}},
    },
    "Jwk": {
        "type": "object",
        "description": "A public key (RFC 7517): EC P-256 for ES256, OKP Ed25519 for EdDSA.",
        "required": ["kty", "crv", "x", "kid", "alg", "use"],
        "properties": {
            "kty": {"type": "string", "enum": ["EC", "OKP"]},
            "crv": {"type": "string", "enum": ["P-256", "Ed25519"]},
            "x": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
            "y": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "description": "EC keys only."},
            "kid": {"type": "string", "description": "The key's RFC 7638 thumbprint; JWTs name it in their header."},
            "alg": {"type": "string", "enum": ["ES256", "EdDSA"]},
            "use": {"type": "string", "enum": ["sig"]},
        },
    },
    "Jwks": {
        "type": "object",
        "required": ["keys"],
        "properties": {"keys": {"type": "array", "items": _ref("Jwk")}},
        "example": {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                    "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
                    "alg": "EdDSA",
                    "use": "sig",
                }
            ]
        },
    },
    "PageConfig": {
        "type": "object",
        "required": ["googleClientIds"],
        "properties": {
            "googleClientIds": {"type": "array", "items": {"type": "string"}},
            "googleLoginUrl": {
                "type": "string",
                "nullable": True,
                "description": "Where Google web sign-in starts (`/auth/google/login`); null when it is off.",
            },
        },
    },
}


def _google_web_error(description: str) -> dict[str, Any]:
    """An error of the web sign-in flow, whose meaning differs from the shared responses' (the flow has no body)."""
    return {"description": description, "content": _json(_ref("Error")), "headers": {"X-Request-ID": REQUEST_ID}}


GOOGLE_WEB_OFF = _google_web_error("Google web sign-in is off: no `GOOGLE_CLIENT_SECRET` is configured.")
GOOGLE_WEB_REDIRECT = {
    "description": "A redirect; no body.",
    "headers": {
        "Location": {"description": "Where the browser goes next.", "schema": {"type": "string"}},
        "Set-Cookie": {"schema": {"type": "string"}},
    },
}


def _query(name: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string"}, **extra}


CHATT_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
    "example": "0b7e1c5e-8c1f-4a63-9d6e-1f2b3c4d5e6f",
}

SESSION_ID = {**CHATT_ID, "description": "A session's `id`, as GET /sessions lists it."}

# The query of both reads of chatts (GET /getchatts/ and the page's GET /chatts).
CHATTS_QUERY = [
    query_parameter(CHATTS_LIMIT),
    {
        "name": "after",
        "in": "query",
        "description": "Only chatts posted after the one with this id.",
        "schema": {"type": "string", "format": "uuid"},
    },
]

PATHS: dict[str, Any] = {
    "/getchatts/": {
        "get": {
            "tags": ["chatter"],
            "summary": "Read chatts, oldest first",
            "operationId": "getChatts",
            "parameters": CHATTS_QUERY,
            "responses": {**_ok("The chatts.", _ref("Chatts")), **_errors(422, 503)},
        }
    },
    "/chatts": {
        "get": {
            "tags": ["page"],
            "summary": "Read chatts, oldest first, as objects that say whether each is signed (the web page's)",
            "description": (
                "The chatts GET /getchatts/ answers for the same query, as fresh (a post or deletion answered before "
                "is in it), each an object: the same four fields by name, and `signed`."
            ),
            "operationId": "listChatts",
            "parameters": CHATTS_QUERY,
            "responses": {**_ok("The chatts.", _ref("PageChatts")), **_errors(422, 503)},
        }
    },
    "/postchatt/": {
        "post": {
            "tags": ["chatter"],
            "summary": "Post a chatt anonymously (the original lab's open posting)",
            "operationId": "postChatt",
            "requestBody": _body(PostChatt, {"username": "alice", "message": "Hello, world"}),
            "responses": {**_ok("Stored.", _ref("Empty")), **_errors(400, 403, 422, *COMMON)},
        }
    },
    "/adduser/": {
        "post": {
            "tags": ["chatter"],
            "summary": "Sign in with a Google ID token; get a chatterID and a JWT",
            "operationId": "addUser",
            "requestBody": _body(AddUser, {"clientID": "1234.apps.googleusercontent.com", "idToken": "eyJ..."}),
            "responses": {**_ok("Signed in.", _ref("AddedUser")), **_errors(400, 401, 403, 422, 429, *COMMON)},
        }
    },
    "/postauth/": {
        "post": {
            "tags": ["chatter"],
            "summary": "Post a chatt as the user a chatterID (or JWT) belongs to",
            "operationId": "postAuth",
            "security": [{"bearer": []}, {"cookie": []}, {}],
            "requestBody": _body(PostAuth, {"chatterID": "0" * 64, "message": "Hello, signed in"}),
            "responses": {**_ok("Stored.", _ref("Empty")), **_errors(400, 401, 403, 422, *COMMON)},
        }
    },
    "/register": {
        "post": {
            "tags": ["accounts"],
            "summary": "Create a password account",
            "operationId": "register",
            "description": "With `email`, a 6-digit code goes to that address; /email/verify confirms it.",
            "requestBody": _body(
                Register,
                {"username": "alice", "password": "correct horse battery", "email": "alice@example.com"},
                form=True,
            ),
            "responses": {
                **_ok("Created.", _ref("Registered"), status="201"),
                **_errors(400, 409, 422, 429, *COMMON),
            },
        }
    },
    "/login": {
        "post": {
            "tags": ["accounts"],
            "summary": "Sign in with a password (and a TOTP code when enabled); get a JWT and a cookie",
            "operationId": "login",
            "requestBody": _body(Login, {"username": "alice", "password": "correct horse"}, form=True),
            "responses": {
                "200": {
                    "description": "Signed in; the same token is also set as an HttpOnly cookie.",
                    "headers": {"Set-Cookie": {"schema": {"type": "string"}}},
                    "content": _json(_ref("Token")),
                },
                **_errors(400, 401, 403, 422, 429, *COMMON),
            },
        }
    },
    "/get-user": {
        "get": {
            "tags": ["accounts"],
            "summary": "Who the caller is",
            "operationId": "getUser",
            "security": SIGNED_IN,
            "responses": {**_ok("The caller.", _ref("CurrentUser")), **_errors(401, 503)},
        }
    },
    "/logout": {
        "post": {
            "tags": ["accounts"],
            "summary": "End the session of the credential used (all its credentials), on every worker and server",
            "description": "`?everywhere=true` ends every session of the user, and every JWT issued until now.",
            "operationId": "logout",
            "security": SIGNED_IN,
            "responses": {**NO_CONTENT, **_errors(401, 403, 503)},
        }
    },
    "/totp/setup": {
        "post": {
            "tags": ["accounts"],
            "summary": "Make a TOTP secret for the caller (not active until enabled)",
            "operationId": "totpSetup",
            "security": SIGNED_IN,
            "responses": {
                **_ok("The secret and its otpauth:// URI.", _ref("TotpSecret")),
                **_errors(401, 403, 422, 503),
            },
        }
    },
    "/totp/enable": {
        "post": {
            "tags": ["accounts"],
            "summary": "Turn TOTP on with a code from the secret",
            "operationId": "totpEnable",
            "security": SIGNED_IN,
            "requestBody": _body(Otp, {"otp": "123456"}, form=True),
            "responses": {**NO_CONTENT, **_errors(400, 401, 403, 422, *COMMON)},
        }
    },
    "/totp/recovery-codes": {
        "post": {
            "tags": ["accounts"],
            "summary": "Ten new single-use recovery codes (replacing any earlier ones), shown this once",
            "description": STEP_UP,
            "operationId": "totpRecoveryCodes",
            "security": SIGNED_IN,
            "responses": {**_ok("The codes.", _ref("RecoveryCodes")), **_errors(401, 403, 422, 503)},
        }
    },
    "/totp/disable": {
        "post": {
            "tags": ["accounts"],
            "summary": "Turn TOTP off, given a current code or a recovery code",
            "description": "Attempts are counted before the code is checked, as at /login: past LOGIN_MAX_FAILURES "
            "within LOGIN_LOCKOUT_SECONDS, 429. Each wrong code is written to the audit log. " + STEP_UP,
            "operationId": "totpDisable",
            "security": SIGNED_IN,
            "requestBody": _body(OtpOrRecoveryCode, {"otp": "123456"}, form=True),
            "responses": {**NO_CONTENT, **_errors(400, 401, 403, 422, 429, *COMMON)},
        }
    },
    "/token/refresh": {
        "post": {
            "tags": ["accounts"],
            "summary": "Rotate a refresh token: a new access JWT and the next refresh token",
            "description": "Presenting a refresh token that was already rotated ends its whole session (every "
            "credential of the same sign-in), except for a repeat by the same client within a few seconds, which gets "
            "the same successor. A session may rotate REFRESH_MAX_PER_SESSION times per REFRESH_WINDOW_SECONDS "
            "(429 past that).",
            "operationId": "refreshToken",
            "requestBody": _body(Refresh, {"refresh_token": "x" * 43}, form=True),
            "responses": {**_ok("Rotated.", _ref("Token")), **_errors(400, 401, 403, 422, 429, *COMMON)},
        }
    },
    "/audit": {
        "get": {
            "tags": ["operations"],
            "summary": "The audit log of auth events, newest first (admin)",
            "operationId": "audit",
            "security": SIGNED_IN,
            "parameters": [
                query_parameter(AUDIT_LIMIT),
                query_parameter(AUDIT_BEFORE),
                query_parameter(AUDIT_USER_ID),
            ],
            "responses": {**_ok("Events.", _ref("AuditEvents")), **_errors(401, 403, 422, 503)},
        }
    },
    "/sessions": {
        "get": {
            "tags": ["sessions"],
            "summary": "Where the caller is signed in: every live session, the current one marked",
            "operationId": "listSessions",
            "security": SIGNED_IN,
            "responses": {**_ok("The sessions.", _ref("Sessions")), **_errors(401, 503)},
        }
    },
    "/sessions/{id}": {
        "delete": {
            "tags": ["sessions"],
            "summary": "Sign out one device: every credential of that session stops working at once, everywhere",
            "description": "Any id that is not one of the caller's live sessions (malformed, unknown, ended, another "
            "user's) is a 404.",
            "operationId": "deleteSession",
            "security": SIGNED_IN,
            "parameters": [SESSION_ID],
            "responses": {**NO_CONTENT, **_errors(401, 403, 404, 503)},
        }
    },
    "/sessions/revoke-others": {
        "post": {
            "tags": ["sessions"],
            "summary": "Sign out everywhere else: every session of the caller but the current one ends at once",
            "operationId": "revokeOtherSessions",
            "security": SIGNED_IN,
            "responses": {**NO_CONTENT, **_errors(401, 403, 503)},
        }
    },
    "/totp/qr": {
        "post": {
            "tags": ["page"],
            "summary": "An otpauth:// URI as a QR code (SVG), for the web page; POST so the secret stays out of URLs",
            "operationId": "totpQr",
            "security": SIGNED_IN,
            "requestBody": _body(OtpauthUri, {"uri": "otpauth://totp/chatterd:alice?secret=JBSWY3DPEHPK3PXP"}),
            "responses": {
                "200": {
                    "description": "The QR code.",
                    "content": {"image/svg+xml": {"schema": {"type": "string"}}},
                },
                **_errors(400, 401, 403, 422, 413, 503),
            },
        }
    },
    "/chatts/{id}": {
        "delete": {
            "tags": ["chatter"],
            "summary": "Delete a chatt (admin or moderator)",
            "operationId": "deleteChatt",
            "security": SIGNED_IN,
            "parameters": [CHATT_ID],
            "responses": {**NO_CONTENT, **_errors(401, 403, 404, 503)},
        }
    },
    "/.well-known/jwks.json": {
        "get": {
            "tags": ["accounts"],
            "summary": "The public keys JWTs are verified with (JWK Set); empty under HS256, whose key is secret",
            "description": (
                "With JWT_ALGORITHM ES256 or EdDSA, every key that still verifies tokens, the signing one first. "
                "Pick the key whose `kid` matches the JWT header's `kid` and check `alg` against the key's own "
                "`alg`; on an unknown `kid`, fetch this again (keys rotate)."
            ),
            "operationId": "jwks",
            "responses": {
                "200": {
                    "description": "The key set.",
                    "headers": {
                        "Cache-Control": {"description": "`public, max-age=300`.", "schema": {"type": "string"}}
                    },
                    "content": _json(_ref("Jwks")),
                }
            },
        }
    },
    "/auth/google/login": {
        "get": {
            "tags": ["accounts"],
            "summary": "Start Google web sign-in: redirect to Google with state, nonce and PKCE (S256)",
            "description": (
                "Sets the short-lived (10 min) signed flow cookie `chatterd_google_flow` (HttpOnly, SameSite=Lax, "
                "Path=/auth/google) and redirects to Google's authorization endpoint, taken from its discovery "
                "document. For browsers: open it, do not call it with fetch."
            ),
            "operationId": "googleWebLogin",
            "parameters": [
                _query(
                    "next",
                    "A path on this site to return to after sign-in (default `/`); anything else is ignored.",
                    example="/",
                )
            ],
            "responses": {
                "302": GOOGLE_WEB_REDIRECT,
                "404": GOOGLE_WEB_OFF,
                **_errors(503),
            },
        }
    },
    "/auth/google/callback": {
        "get": {
            "tags": ["accounts"],
            "summary": "Where Google returns: trade the code, verify the ID token and nonce, set the login cookie",
            "description": (
                "Checks `state` against the flow cookie, exchanges `code` (with the PKCE verifier and the client "
                "secret) at Google's token endpoint, verifies the ID token as /adduser/ does plus its `nonce`, sets "
                "the login cookie as /login does, and redirects to the `next` path given to "
                "/auth/google/login. When Google answers with `error` (the user cancelled), it redirects to "
                "`/#google-error=<code>` instead."
            ),
            "operationId": "googleWebCallback",
            "parameters": [
                _query("state", "The state the sign-in started with."),
                _query("code", "The authorization code from Google."),
                _query("error", "Google's error code, when it did not grant the sign-in."),
            ],
            "responses": {
                "302": GOOGLE_WEB_REDIRECT,
                "400": _google_web_error(
                    "No flow cookie (expired, tampered with, or another browser), a `state` that is not the "
                    "cookie's, or no `code`: start again."
                ),
                "404": GOOGLE_WEB_OFF,
                **_errors(401, 403, 429, 503),
            },
        }
    },
    "/healthz": {
        "get": {
            "tags": ["operations"],
            "summary": "Liveness: the process is up",
            "operationId": "healthz",
            "responses": _ok("Up, and which version.", _ref("Health")),
        }
    },
    "/readyz": {
        "get": {
            "tags": ["operations"],
            "summary": "Readiness: Postgres answers and every migration is applied",
            "operationId": "readyz",
            "responses": {**_ok("Ready.", _ref("Status")), **_errors(503)},
        }
    },
    "/metrics": {
        "get": {
            "tags": ["operations"],
            "summary": "Prometheus metrics, in the text exposition format",
            "operationId": "metrics",
            "responses": {
                "200": {"description": "The metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}
            },
        }
    },
    "/openapi.json": {
        "get": {
            "tags": ["page"],
            "summary": "This document",
            "operationId": "openapi",
            "responses": _ok("The OpenAPI document.", {"type": "object"}),
        }
    },
    "/docs": {
        "get": {
            "tags": ["page"],
            "summary": "This document, browsable (Swagger UI)",
            "operationId": "docs",
            "responses": {"200": {"description": "HTML.", "content": {"text/html": {"schema": {"type": "string"}}}}},
        }
    },
    "/": {
        "get": {
            "tags": ["page"],
            "summary": "The chatter web page",
            "operationId": "index",
            "responses": {"200": {"description": "HTML.", "content": {"text/html": {"schema": {"type": "string"}}}}},
        }
    },
    "/config.json": {
        "get": {
            "tags": ["page"],
            "summary": "What the web page needs to know (the Google client IDs it may offer sign-in with)",
            "operationId": "pageConfig",
            "responses": _ok("The page's configuration.", _ref("PageConfig")),
        }
    },
}
PATHS.update(passkeys.PATHS)
PATHS.update(page.PATHS)
PATHS.update(email.PATHS)
PATHS.update(identities.PATHS)

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "chatterd",
        "version": VERSION,
        "description": (
            "The chatter back end: the course's chatter API, Google and password sign-in, chatterIDs and JWTs. "
            'Paths are served with and without the trailing slash. Every error is JSON `{"message"}`.'
        ),
    },
    "tags": [
        {"name": "chatter", "description": "The course's chatter API (mobile clients)."},
        {"name": "accounts", "description": "Password accounts, JWTs and TOTP."},
        {"name": "sessions", "description": "Sessions and devices: where the caller is signed in."},
        {"name": "passkeys", "description": "Passkeys (WebAuthn): add, list, delete, sign in; and step-up."},
        *identities.TAGS,
        {"name": "operations", "description": "Health, readiness and metrics for operators."},
        {"name": "page", "description": "The web page and these docs."},
    ],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "responses": {f"E{status}": _error_response(status) for status in ERROR_TEXT},
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A JWT from /login or /adduser/, or a chatterID (a bare token without 'Bearer' works).",
            },
            "cookie": {
                "type": "apiKey",
                "in": "cookie",
                "name": HOST_COOKIE_NAME,
                "description": (
                    f"Set by /login; `{COOKIE_NAME}` when the server runs with COOKIE_SECURE=0 (plain-HTTP"
                    " development). Sent twice, it is refused (401)."
                ),
            },
        },
    },
}


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy is not needed: callers only serialise it)."""
    return DOCUMENT
