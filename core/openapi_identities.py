"""The OpenAPI description of identities, the account itself (export, deletion) and the admins' user API."""

from __future__ import annotations

from typing import Any

from core.openapi_parts import COMMON, NO_CONTENT, SIGNED_IN, STEP_UP, body, errors, ok, query_parameter, ref
from core.shapes import (
    ADMIN_SEARCH_MAX,
    ADMIN_SESSIONS_LISTED,
    ADMIN_USERS_LIMIT,
    GOOGLE_ACCOUNTS_PER_USER,
    IDENTITY_KINDS,
    ROLES,
    AddPassword,
    AddUser,
    Ban,
    RoleChange,
)

ISO = {"type": "string", "format": "date-time"}
NULLABLE_ISO = {**ISO, "nullable": True}
BANNED_UNTIL = {
    "type": "string",
    "nullable": True,
    "description": 'When the ban ends (ISO 8601 UTC), `"infinity"` for a ban without end; null when not banned.',
}
# What every view of a user shows.
USER = {
    "id": {"type": "integer"},
    "username": {"type": "string"},
    "email": {"type": "string", "nullable": True},
    "role": {"type": "string", "enum": list(ROLES)},
    "created_at": ISO,
}
IDENTITY_ID = {
    "name": "id",
    "in": "query",
    "description": "The identity's `id`, as GET /identities lists it.",
    "schema": {"type": "string", "format": "uuid"},
}
USER_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "A user's id.",
    "schema": {"type": "integer", "minimum": 1},
    "example": 1,
}

SCHEMAS: dict[str, Any] = {
    "Identity": {
        "type": "object",
        "description": "A way to sign in. `password`: its `username`. `google`: the linked Google account's `sub` "
        "and `email`, and the link's `id` and `created_at`. `passkey`: its `id`, `name`, `created_at` and "
        "`last_used_at`, as GET /passkeys lists it.",
        "required": ["kind"],
        "properties": {
            "kind": {"type": "string", "enum": list(IDENTITY_KINDS)},
            "username": {"type": "string", "description": "The login name (password)."},
            "id": {"type": "string", "format": "uuid", "description": "Names it in DELETE /identities/{kind}?id=."},
            "sub": {"type": "string", "description": "The Google account's subject (google)."},
            "email": {"type": "string", "nullable": True, "description": "The Google account's address (google)."},
            "name": {"type": "string", "description": "What the passkey is called (passkey)."},
            "created_at": ISO,
            "last_used_at": {**NULLABLE_ISO, "description": "When the passkey last signed in (passkey)."},
        },
    },
    "Identities": {
        "type": "object",
        "required": ["identities"],
        "properties": {"identities": {"type": "array", "items": ref("Identity")}},
    },
    "AdminUser": {
        "type": "object",
        "required": [*USER, "banned_until"],
        "properties": {**USER, "banned_until": BANNED_UNTIL},
    },
    "AdminUsers": {
        "type": "object",
        "required": ["users", "next_cursor"],
        "properties": {
            "users": {"type": "array", "items": ref("AdminUser")},
            "next_cursor": {
                "type": "string",
                "nullable": True,
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        },
    },
    "AdminUserDetails": {
        "allOf": [
            ref("AdminUser"),
            {
                "type": "object",
                "required": ["ban_reason", "totp_enabled", "identities", "sessions"],
                "properties": {
                    "ban_reason": {"type": "string", "nullable": True},
                    "totp_enabled": {"type": "boolean"},
                    "identities": {"type": "array", "items": ref("Identity")},
                    "sessions": {
                        "type": "array",
                        "description": f"Live sessions, newest first (at most {ADMIN_SESSIONS_LISTED}), as GET "
                        "/sessions lists them without `current`.",
                        "items": {"type": "object"},
                    },
                },
            },
        ]
    },
    "AccountExport": {
        "type": "object",
        "description": "Everything kept about the caller. Secrets (password and TOTP hashes, credentials) are not "
        "in it, only whether they exist.",
        "required": ["profile", "identities", "sessions", "passkeys", "chatts", "audit_events", "devices", "messages"],
        "properties": {
            "profile": {
                "type": "object",
                "required": [*USER, "has_password", "totp_enabled"],
                "properties": {
                    **USER,
                    "email_verified": {"type": "boolean"},
                    "has_password": {"type": "boolean"},
                    "totp_enabled": {"type": "boolean"},
                    "banned_until": BANNED_UNTIL,
                    "ban_reason": {"type": "string", "nullable": True},
                    "unused_recovery_codes": {"type": "integer"},
                },
            },
            "identities": {"type": "array", "items": ref("Identity")},
            "sessions": {
                "type": "array",
                "description": "Every session kept, ended ones too, oldest first: with `authenticated_at`, "
                "`expires_at`, `ended_at` and `end_reason` beside what GET /sessions shows.",
                "items": {"type": "object"},
            },
            "passkeys": {
                "type": "array",
                "description": "As GET /passkeys lists them.",
                "items": {"type": "object", "required": ["id", "name", "created_at", "last_used_at"]},
            },
            "chatts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "username", "message", "created_at"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "username": {"type": "string"},
                        "message": {"type": "string"},
                        "created_at": ISO,
                    },
                },
            },
            "audit_events": {"type": "array", "items": {"type": "object"}},
            "devices": {
                "type": "array",
                "description": "The devices signed in from, as new-device notices know them (`device`, `network`, "
                "`first_seen_at`, `last_seen_at`).",
                "items": {"type": "object"},
            },
            "messages": {
                "type": "array",
                "description": "The messages mailed to the caller (`kind`, `recipient`, `created_at`, `sent_at`); "
                "what they said is not kept once sent.",
                "items": {"type": "object"},
            },
        },
    },
}

PATHS: dict[str, Any] = {
    "/identities": {
        "get": {
            "tags": ["identities"],
            "summary": "The caller's ways to sign in: a password, Google accounts, passkeys",
            "operationId": "listIdentities",
            "security": SIGNED_IN,
            "responses": {**ok("The identities.", ref("Identities")), **errors(401, 503)},
        }
    },
    "/identities/google": {
        "post": {
            "tags": ["identities"],
            "summary": "Link a Google account: from then on its /adduser/ signs in to the caller's account",
            "description": "The ID token is checked exactly as /adduser/ checks it (401 otherwise). A Google account "
            f"that is already a user of its own, or past {GOOGLE_ACCOUNTS_PER_USER} linked accounts: 409. Accounts "
            "are never linked by matching email addresses. " + STEP_UP,
            "operationId": "linkGoogle",
            "security": SIGNED_IN,
            "requestBody": body(AddUser, {"clientID": "1234.apps.googleusercontent.com", "idToken": "eyJ..."}),
            "responses": {
                **ok("Linked before, to the caller: nothing changed.", ref("Identity")),
                **ok("Linked.", ref("Identity"), status="201"),
                **errors(400, 401, 403, 409, 422, *COMMON),
            },
        },
        "delete": {
            "tags": ["identities"],
            "summary": "Unlink a Google account (never the last way to sign in)",
            "description": "With several Google accounts linked, `?id=` names the one (422 without it). None such: "
            "404. The last way to sign in: 409. " + STEP_UP,
            "operationId": "unlinkGoogle",
            "security": SIGNED_IN,
            "parameters": [IDENTITY_ID],
            "responses": {**NO_CONTENT, **errors(401, 403, 404, 409, 422, 503)},
        },
    },
    "/identities/password": {
        "post": {
            "tags": ["identities"],
            "summary": "Add a login name and password to an account that signs in with Google only",
            "description": "The login name becomes the account's username. An account with a password already, or "
            "a name taken: 409. " + STEP_UP,
            "operationId": "addPassword",
            "security": SIGNED_IN,
            "requestBody": body(AddPassword, {"username": "ann", "password": "correct horse battery"}),
            "responses": {
                **ok("Added.", ref("Identity"), status="201"),
                **errors(400, 401, 403, 409, 422, *COMMON),
            },
        },
        "delete": {
            "tags": ["identities"],
            "summary": "Stop signing in with a password (never the last way to sign in)",
            "description": "The login name and TOTP go with it. No password: 404. The last way to sign in: 409. "
            + STEP_UP,
            "operationId": "removePassword",
            "security": SIGNED_IN,
            "responses": {**NO_CONTENT, **errors(401, 403, 404, 409, 503)},
        },
    },
    "/identities/passkey": {
        "delete": {
            "tags": ["identities"],
            "summary": "Remove a passkey (never the last way to sign in)",
            "description": "With several passkeys, `?id=` names the one (422 without it). None such: 404. The last "
            "way to sign in: 409. " + STEP_UP,
            "operationId": "removePasskey",
            "security": SIGNED_IN,
            "parameters": [IDENTITY_ID],
            "responses": {**NO_CONTENT, **errors(401, 403, 404, 409, 422, 503)},
        }
    },
    "/me/export": {
        "get": {
            "tags": ["identities"],
            "summary": "Everything kept about the caller, in one JSON document (a download)",
            "operationId": "exportAccount",
            "security": SIGNED_IN,
            "responses": {**ok("The document.", ref("AccountExport")), **errors(401, 503)},
        }
    },
    "/me": {
        "delete": {
            "tags": ["identities"],
            "summary": "Delete the caller's account: every credential stops at once everywhere",
            "description": "The personal data goes; the chatts stay, shown under the name `[deleted]`; the audit "
            "log keeps its events without addresses. The only admin cannot (409). " + STEP_UP,
            "operationId": "deleteAccount",
            "security": SIGNED_IN,
            "responses": {**NO_CONTENT, **errors(401, 403, 409, 503)},
        }
    },
    "/admin/users": {
        "get": {
            "tags": ["admin"],
            "summary": "Users, newest first, a page at a time (admin)",
            "operationId": "adminListUsers",
            "security": SIGNED_IN,
            "parameters": [
                {
                    "name": "q",
                    "in": "query",
                    "description": "Text in the username or an email address, or a user's id.",
                    "schema": {"type": "string", "maxLength": ADMIN_SEARCH_MAX},
                },
                query_parameter(ADMIN_USERS_LIMIT),
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "The `next_cursor` of the page before.",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {**ok("A page of users.", ref("AdminUsers")), **errors(401, 403, 422, 503)},
        }
    },
    "/admin/users/{id}": {
        "get": {
            "tags": ["admin"],
            "summary": "One user, with identities and live sessions (admin)",
            "operationId": "adminGetUser",
            "security": SIGNED_IN,
            "parameters": [USER_ID],
            "responses": {**ok("The user.", ref("AdminUserDetails")), **errors(401, 403, 404, 503)},
        }
    },
    "/admin/users/{id}/role": {
        "put": {
            "tags": ["admin"],
            "summary": "Change a user's role, in force at once on every worker and server (admin)",
            "description": "A role outside " + ", ".join(ROLES) + ": 422. Demoting the only admin: 409.",
            "operationId": "adminSetRole",
            "security": SIGNED_IN,
            "parameters": [USER_ID],
            "requestBody": body(RoleChange, {"role": "moderator"}),
            "responses": {**NO_CONTENT, **errors(400, 401, 403, 404, 409, 422, *COMMON)},
        }
    },
    "/admin/users/{id}/ban": {
        "post": {
            "tags": ["admin"],
            "summary": "Ban a user: every session ends at once, every sign-in answers 403 banned until then (admin)",
            "description": "Without `until` the ban has no end. An `until` in the past, or not an ISO 8601 time "
            "with its offset: 422. Banning the only admin: 409.",
            "operationId": "adminBan",
            "security": SIGNED_IN,
            "parameters": [USER_ID],
            "requestBody": body(Ban, {"until": "2030-01-31T12:00:00Z", "reason": "spam"}),
            "responses": {**NO_CONTENT, **errors(400, 401, 403, 404, 409, 422, *COMMON)},
        },
        "delete": {
            "tags": ["admin"],
            "summary": "Lift a user's ban (admin)",
            "operationId": "adminUnban",
            "security": SIGNED_IN,
            "parameters": [USER_ID],
            "responses": {**NO_CONTENT, **errors(401, 403, 404, 503)},
        },
    },
}

TAGS = [
    {"name": "identities", "description": "The caller's ways to sign in, and the account itself."},
    {"name": "admin", "description": "Users, roles and bans, for admins."},
]
