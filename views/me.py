"""The caller's own account: everything kept about them, and deleting it."""

from __future__ import annotations

from aiohttp import web

import models
from auth.cookies import clear_login_cookie
from core.bodies import json_response
from core.errors import Conflict, Unauthorized
from core.keys import authenticator_key, db_key, settings_key
from middlewares import current_user, login_required, requires_recent_auth

GONE = "This account no longer exists."


@login_required
async def export(request: web.Request) -> web.Response:
    """GET /me/export: one JSON document of everything kept about the caller, as a download."""
    user = current_user(request)
    try:
        document = await models.export_user(request.app[db_key], user_id=user.id)
    except models.UnknownUser:
        raise Unauthorized(GONE) from None
    headers = {"Content-Disposition": 'attachment; filename="chatterd-export.json"', "Cache-Control": "no-store"}
    return json_response(document, headers=headers)


@requires_recent_auth
async def delete_account(request: web.Request) -> web.Response:
    """DELETE /me: the account and its personal data go, every credential stops at once everywhere; chatts stay,
    under "[deleted]". 409 for the only admin."""
    user = current_user(request)
    try:
        await models.delete_user(request.app[db_key], user_id=user.id)
    except models.UnknownUser:
        raise Unauthorized(GONE) from None
    except models.LastAdmin:
        raise Conflict("You are the only admin: make someone else an admin before deleting your account.") from None
    request.app[authenticator_key].standing_changed(user.id)
    response = web.Response(status=204)
    clear_login_cookie(response, secure=request.app[settings_key].cookie_secure)
    return response
