"""The caller's email address: set or change it (a code goes to it), and verify it with that code."""

from __future__ import annotations

from aiohttp import web

from auth import email_addresses
from auth.throttling import request_address
from core.bodies import accepts_form, parse, read_body
from core.shapes import SetEmail, VerifyEmail
from middlewares import current_user, login_required, requires_recent_auth


@accepts_form
@requires_recent_auth
async def set_email(request: web.Request) -> web.Response:
    """POST /email (step-up): make an address the caller's (unverified until /email/verify) and mail it a code."""
    email = email_addresses.check_address(parse(SetEmail, await read_body(request)).email)
    await email_addresses.set_address(request.app, current_user(request), email, address=request_address(request))
    return web.Response(status=204)


@accepts_form
@login_required
async def verify_email(request: web.Request) -> web.Response:
    """POST /email/verify: the code mailed to the caller's address verifies it."""
    code = parse(VerifyEmail, await read_body(request)).code
    await email_addresses.verify_address(request.app, current_user(request), code, address=request_address(request))
    return web.Response(status=204)
