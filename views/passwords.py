"""Passwords: forgotten (a code to the verified address), reset with that code, and changed by the signed-in user."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from auth import email_addresses, recovery
from auth.throttling import request_address
from core.bodies import accepts_form, json_response, parse, read_body
from core.errors import Unprocessable
from core.keys import credential_key
from core.shapes import ChangePassword, ForgotPassword, ResetPassword
from middlewares import current_user, requires_recent_auth


def _account_named(email: str | None, username: str | None) -> tuple[str | None, str | None]:
    """The account a body names: by `email` or by `username`, exactly one of them (422 otherwise)."""
    if (email is None) == (username is None):
        raise Unprocessable("Give either 'email' or 'username'.")
    return (email_addresses.check_address(email) if email is not None else None), username


@accepts_form
async def forgot(request: web.Request) -> web.Response:
    """POST /password/forgot: 202 whatever exists; a reset code goes to the account's verified address, if any."""
    body = parse(ForgotPassword, await read_body(request))
    email, username = _account_named(body.email, body.username)
    await recovery.forgot(request.app, email=email, username=username, address=request_address(request))
    accepted: dict[str, Any] = {}
    return json_response(accepted, status=202)


@accepts_form
async def reset(request: web.Request) -> web.Response:
    """POST /password/reset: a new password with the mailed code; every session of the user ends."""
    body = parse(ResetPassword, await read_body(request))
    email, username = _account_named(body.email, body.username)
    await recovery.reset(
        request.app,
        email=email,
        username=username,
        code=body.code,
        password=body.password,
        address=request_address(request),
    )
    return web.Response(status=204)


@accepts_form
@requires_recent_auth
async def change(request: web.Request) -> web.Response:
    """POST /password/change (step-up): a new password, given the current one; the user's other sessions end."""
    body = parse(ChangePassword, await read_body(request))
    credential = request[credential_key]
    await recovery.change(
        request.app,
        current_user(request),
        current_password=body.current_password,
        password=body.password,
        session_id=None if credential is None else credential.session_id,
        address=request_address(request),
    )
    return web.Response(status=204)
