"""Step-up: POST /reauthenticate, where a signed-in user proves again who they are before sensitive actions."""

from __future__ import annotations

from aiohttp import web

from auth import step_up
from auth.ceremonies import relying_party
from auth.throttling import request_address
from core.bodies import parse, read_body
from core.errors import Unprocessable
from core.keys import credential_key
from core.shapes import Reauthenticate
from middlewares import current_user, login_required


@login_required
async def reauthenticate(request: web.Request) -> web.Response:
    """POST /reauthenticate: the password (+ otp) or a passkey assertion; the session counts as freshly signed in."""
    password, otp, assertion = parse(Reauthenticate, await read_body(request))
    if (password is None) == (assertion is None):
        raise Unprocessable("Send either 'password' (with 'otp' when TOTP is on) or a passkey's 'credential'.")
    user, credential, address = current_user(request), request[credential_key], request_address(request)
    if assertion is not None:
        rp = relying_party(request)
        await step_up.with_passkey(request.app, rp, user, credential, assertion=assertion, address=address)
    else:
        assert password is not None
        await step_up.with_password(request.app, user, credential, password=password, otp=otp, address=address)
    return web.Response(status=204)
