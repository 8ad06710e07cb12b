"""The OpenAPI description of passkeys (WebAuthn), their Level 3 JSON forms, and step-up (POST /reauthenticate)."""

from __future__ import annotations

from typing import Any

from core.openapi_parts import COMMON, NO_CONTENT, SIGNED_IN, STEP_UP, body, errors, json_content, ok, ref
from core.shapes import PasskeyAssertion, PasskeyLoginOptions, PasskeyRegistration, Reauthenticate

B64URL = {"type": "string", "pattern": "^[A-Za-z0-9_-]*$", "description": "Base64url, without padding."}
ISO = {"type": "string", "format": "date-time"}
DESCRIPTOR = {
    "type": "object",
    "required": ["type", "id"],
    "properties": {
        "type": {"type": "string", "enum": ["public-key"]},
        "id": B64URL,
        "transports": {"type": "array", "items": {"type": "string"}},
    },
}
CREDENTIAL_TYPE = {"type": "string", "enum": ["public-key"]}
CLIENT_RESULTS = {"type": "object", "description": "The client's extension results (none are asked for)."}


def _credential(description: str, *, required: list[str], **response: Any) -> dict[str, Any]:
    """A PublicKeyCredential in its JSON form, whose `response` holds the client data and `response`."""
    return {
        "type": "object",
        "description": description,
        "required": ["id", "rawId", "type", "response"],
        "properties": {
            "id": B64URL,
            "rawId": B64URL,
            "type": CREDENTIAL_TYPE,
            "response": {
                "type": "object",
                "required": required,
                "properties": {"clientDataJSON": B64URL, **response},
            },
            "authenticatorAttachment": {"type": "string", "nullable": True},
            "clientExtensionResults": CLIENT_RESULTS,
        },
    }


SCHEMAS: dict[str, Any] = {
    "PublicKeyCredentialCreationOptionsJSON": {
        "type": "object",
        "description": "Pass to `PublicKeyCredential.parseCreationOptionsFromJSON()`, then `navigator.credentials"
        ".create()`.",
        "required": ["rp", "user", "challenge", "pubKeyCredParams"],
        "properties": {
            "rp": {"type": "object", "required": ["name"], "properties": {"id": {"type": "string"}, "name": {}}},
            "user": {
                "type": "object",
                "required": ["id", "name", "displayName"],
                "properties": {"id": B64URL, "name": {"type": "string"}, "displayName": {"type": "string"}},
            },
            "challenge": B64URL,
            "pubKeyCredParams": {
                "type": "array",
                "description": "ES256 (-7) and EdDSA (-8).",
                "items": {
                    "type": "object",
                    "required": ["type", "alg"],
                    "properties": {"type": CREDENTIAL_TYPE, "alg": {"type": "integer", "enum": [-7, -8]}},
                },
            },
            "timeout": {"type": "integer", "description": "Milliseconds: the challenge's five minutes."},
            "excludeCredentials": {"type": "array", "items": DESCRIPTOR, "description": "The caller's passkeys."},
            "authenticatorSelection": {
                "type": "object",
                "properties": {
                    "residentKey": {"type": "string", "enum": ["preferred"]},
                    "requireResidentKey": {"type": "boolean"},
                    "userVerification": {"type": "string", "enum": ["preferred"]},
                },
            },
            "attestation": {"type": "string", "enum": ["none"]},
        },
    },
    "PublicKeyCredentialRequestOptionsJSON": {
        "type": "object",
        "description": "Pass to `PublicKeyCredential.parseRequestOptionsFromJSON()`, then `navigator.credentials"
        ".get()`.",
        "required": ["challenge"],
        "properties": {
            "challenge": B64URL,
            "timeout": {"type": "integer", "description": "Milliseconds: the challenge's five minutes."},
            "rpId": {"type": "string"},
            "allowCredentials": {
                "type": "array",
                "items": DESCRIPTOR,
                "description": "The named account's passkeys; empty: any discoverable passkey of this site.",
            },
            "userVerification": {"type": "string", "enum": ["preferred"]},
        },
    },
    "RegistrationResponseJSON": _credential(
        "What `navigator.credentials.create()` returned, as its `toJSON()` writes it.",
        required=["clientDataJSON", "attestationObject"],
        attestationObject=B64URL,
        transports={"type": "array", "items": {"type": "string"}},
    ),
    "AuthenticationResponseJSON": _credential(
        "What `navigator.credentials.get()` returned, as its `toJSON()` writes it.",
        required=["clientDataJSON", "authenticatorData", "signature"],
        authenticatorData=B64URL,
        signature=B64URL,
        userHandle={**B64URL, "nullable": True},
    ),
    "NewPasskey": {
        "type": "object",
        "required": ["id", "name", "created_at"],
        "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}, "created_at": ISO},
    },
    "Passkeys": {
        "type": "object",
        "required": ["passkeys"],
        "properties": {
            "passkeys": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "name", "created_at", "last_used_at"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "name": {"type": "string"},
                        "created_at": ISO,
                        "last_used_at": {**ISO, "nullable": True},
                    },
                },
            }
        },
    },
    "AssetLinks": {
        "type": "array",
        "description": "Digital Asset Links: the Android apps (WEBAUTHN_ANDROID_APPS) that may use the passkeys.",
        "items": {
            "type": "object",
            "required": ["relation", "target"],
            "properties": {
                "relation": {"type": "array", "items": {"type": "string"}},
                "target": {
                    "type": "object",
                    "properties": {
                        "namespace": {"type": "string", "enum": ["android_app"]},
                        "package_name": {"type": "string"},
                        "sha256_cert_fingerprints": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    },
    "AppleAppSiteAssociation": {
        "type": "object",
        "description": "The Apple apps (WEBAUTHN_APPLE_APP_IDS) that may use this site's passkeys.",
        "required": ["webcredentials"],
        "properties": {
            "webcredentials": {
                "type": "object",
                "required": ["apps"],
                "properties": {"apps": {"type": "array", "items": {"type": "string"}}},
            }
        },
    },
}

PASSKEY_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
    "example": "5f0c4c8e-1b7a-4a61-9a55-3d2c1e0f9b8a",
}
# An example of the forms; a real one comes from the authenticator.
REGISTRATION_EXAMPLE = {
    "credential": {
        "id": "AAAA",
        "rawId": "AAAA",
        "type": "public-key",
        "response": {"clientDataJSON": "e30", "attestationObject": "oA"},
        "clientExtensionResults": {},
    },
    "name": "My phone",
}
ASSERTION_EXAMPLE = {
    "credential": {
        "id": "AAAA",
        "rawId": "AAAA",
        "type": "public-key",
        "response": {"clientDataJSON": "e30", "authenticatorData": "AA", "signature": "AA"},
        "clientExtensionResults": {},
    }
}
ASSERTION_REFUSED = (
    "401: a replayed assertion, an unknown, used or expired challenge, a wrong origin or RP ID, a bad signature, a "
    "signature counter that did not move forward, or a passkey that is unknown or another account's."
)
APP_DOCUMENT = {"Cache-Control": {"description": "`public, max-age=3600`.", "schema": {"type": "string"}}}

PATHS: dict[str, Any] = {
    "/reauthenticate": {
        "post": {
            "tags": ["passkeys"],
            "summary": "Step-up: prove again who you are, with your password (and one-time code) or a passkey",
            "description": "On success the session of the credential used counts as signed in just now, for every "
            "credential of the session, for the sensitive actions (email, password, TOTP off, recovery codes, "
            "passkeys, identities, deleting the account). A password is counted and throttled as at /login "
            "(`otp_required` when TOTP is on and the code is missing or wrong); a passkey's `credential` answers "
            "options from /passkeys/login/options and must be the caller's (with user verification when TOTP is on). "
            'A credential of no live session: 401 `"error": "reauth_required"`.',
            "operationId": "reauthenticate",
            "security": SIGNED_IN,
            "requestBody": body(Reauthenticate, {"password": "correct horse battery"}),
            "responses": {**NO_CONTENT, **errors(400, 401, 403, 404, 422, 429, *COMMON)},
        }
    },
    "/passkeys/register/options": {
        "post": {
            "tags": ["passkeys"],
            "summary": "Start adding a passkey: creation options with a challenge valid 5 minutes",
            "description": STEP_UP,
            "operationId": "passkeyRegisterOptions",
            "security": SIGNED_IN,
            "responses": {
                **ok("The options.", ref("PublicKeyCredentialCreationOptionsJSON")),
                **errors(401, 403, 404, 503),
            },
        }
    },
    "/passkeys/register": {
        "post": {
            "tags": ["passkeys"],
            "summary": "Finish adding a passkey: the authenticator's answer to the creation options",
            "description": "The challenge is spent by its first answer, right or wrong. "
            + ASSERTION_REFUSED
            + " 409: the passkey is already registered, or the account has 20. "
            + STEP_UP,
            "operationId": "passkeyRegister",
            "security": SIGNED_IN,
            "requestBody": body(PasskeyRegistration, REGISTRATION_EXAMPLE),
            "responses": {
                **ok("Added.", ref("NewPasskey"), status="201"),
                **errors(400, 401, 403, 404, 409, 422, *COMMON),
            },
        }
    },
    "/passkeys": {
        "get": {
            "tags": ["passkeys"],
            "summary": "The caller's passkeys, oldest first",
            "operationId": "passkeys",
            "security": SIGNED_IN,
            "responses": {**ok("The passkeys.", ref("Passkeys")), **errors(401, 503)},
        }
    },
    "/passkeys/{id}": {
        "delete": {
            "tags": ["passkeys"],
            "summary": "Delete one of the caller's passkeys (never the last way to sign in)",
            "description": "The last way to sign in to the account: 409 (as DELETE /identities/passkey). " + STEP_UP,
            "operationId": "deletePasskey",
            "security": SIGNED_IN,
            "parameters": [PASSKEY_ID],
            "responses": {**NO_CONTENT, **errors(401, 403, 404, 409, 503)},
        }
    },
    "/passkeys/login/options": {
        "post": {
            "tags": ["passkeys"],
            "summary": "Start a passkey sign-in: request options with a challenge valid 5 minutes",
            "description": "With `username`, that account's passkeys (username-first); without it (or with an empty "
            "body), any discoverable passkey of this site. Limited per address (429).",
            "operationId": "passkeyLoginOptions",
            "requestBody": {**body(PasskeyLoginOptions, {"username": "alice"}), "required": False},
            "responses": {
                **ok("The options.", ref("PublicKeyCredentialRequestOptionsJSON")),
                **errors(400, 404, 422, 429, *COMMON),
            },
        }
    },
    "/passkeys/login": {
        "post": {
            "tags": ["passkeys"],
            "summary": "Sign in with a passkey; get a JWT, a refresh token and the login cookie, as /login gives",
            "description": "A passkey that verified its user (PIN, biometrics) counts as two factors: no one-time "
            "code is asked. " + ASSERTION_REFUSED + " 403: posted from another site, or the account is banned.",
            "operationId": "passkeyLogin",
            "requestBody": body(PasskeyAssertion, ASSERTION_EXAMPLE),
            "responses": {
                "200": {
                    "description": "Signed in; the same token is also set as an HttpOnly cookie.",
                    "headers": {"Set-Cookie": {"schema": {"type": "string"}}},
                    "content": json_content(ref("Token")),
                },
                **errors(400, 401, 403, 404, 422, *COMMON),
            },
        }
    },
    "/.well-known/assetlinks.json": {
        "get": {
            "tags": ["passkeys"],
            "summary": "Digital Asset Links: the Android apps that may use this site's passkeys",
            "operationId": "assetLinks",
            "responses": {
                "200": {
                    "description": "The links.",
                    "headers": APP_DOCUMENT,
                    "content": json_content(ref("AssetLinks")),
                }
            },
        }
    },
    "/.well-known/apple-app-site-association": {
        "get": {
            "tags": ["passkeys"],
            "summary": "The Apple apps that may use this site's passkeys (webcredentials)",
            "operationId": "appleAppSiteAssociation",
            "responses": {
                "200": {
                    "description": "The association.",
                    "headers": APP_DOCUMENT,
                    "content": json_content(ref("AppleAppSiteAssociation")),
                }
            },
        }
    },
}
