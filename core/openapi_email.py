"""The OpenAPI description of email addresses, their codes, and password recovery and change."""

from __future__ import annotations

from typing import Any

from core.openapi_parts import COMMON, NO_CONTENT, SIGNED_IN, STEP_UP, body, errors, ok, ref
from core.shapes import ChangePassword, ForgotPassword, ResetPassword, SetEmail, VerifyEmail

PATHS: dict[str, Any] = {
    "/email": {
        "post": {
            "tags": ["accounts"],
            "summary": "Set or change the caller's email address; a 6-digit code goes to it",
            "description": (
                "The address is unverified until /email/verify. A verified address it replaces is told of the change. "
                "Nothing changes when it already is the caller's verified address. " + STEP_UP
            ),
            "operationId": "setEmail",
            "security": SIGNED_IN,
            "requestBody": body(SetEmail, {"email": "alice@example.com"}, form=True),
            "responses": {**NO_CONTENT, **errors(400, 401, 403, 409, 422, 429, *COMMON)},
        }
    },
    "/email/verify": {
        "post": {
            "tags": ["accounts"],
            "summary": "Verify the caller's address with the code mailed to it",
            "description": "A code works once, for 15 minutes, and at most 5 tries; then ask /email for a new one.",
            "operationId": "verifyEmail",
            "security": SIGNED_IN,
            "requestBody": body(VerifyEmail, {"code": "123456"}, form=True),
            "responses": {**NO_CONTENT, **errors(400, 401, 403, 409, 422, *COMMON)},
        }
    },
    "/password/forgot": {
        "post": {
            "tags": ["accounts"],
            "summary": "Mail a password reset code to the account's verified address",
            "description": (
                "Always 202, whether or not the account exists or has a verified address (and in the same time). "
                "Counted per account named and per client address: 429 past the limits."
            ),
            "operationId": "forgotPassword",
            "requestBody": body(ForgotPassword, {"email": "alice@example.com"}, form=True),
            "responses": {**ok("Accepted.", ref("Empty"), status="202"), **errors(400, 422, 429, *COMMON)},
        }
    },
    "/password/reset": {
        "post": {
            "tags": ["accounts"],
            "summary": "Set a new password with the code from /password/forgot; every session of the user ends",
            "operationId": "resetPassword",
            "requestBody": body(
                ResetPassword,
                {"email": "alice@example.com", "code": "123456", "password": "a new long passphrase"},
                form=True,
            ),
            "responses": {**NO_CONTENT, **errors(400, 422, 429, *COMMON)},
        }
    },
    "/password/change": {
        "post": {
            "tags": ["accounts"],
            "summary": "Change the caller's password, given the current one",
            "description": (
                "Every other session of the user ends. A wrong current password is a 403, counted as a failed sign-in. "
                + STEP_UP
            ),
            "operationId": "changePassword",
            "security": SIGNED_IN,
            "requestBody": body(
                ChangePassword,
                {"current_password": "correct horse battery", "password": "a new long passphrase"},
                form=True,
            ),
            "responses": {**NO_CONTENT, **errors(400, 401, 403, 422, 429, *COMMON)},
        }
    },
}
