"""Sessions and devices: where the caller is signed in; sign out one device, or every other one."""

from __future__ import annotations

from aiohttp import web

import models
from auth.cookies import clear_login_cookie
from auth.throttling import request_address
from core.bodies import canonical_uuid, json_response
from core.errors import NotFound
from core.keys import authenticator_key, credential_key, db_key, settings_key
from core.metrics import REVOCATIONS
from core.shapes import SESSIONS_LISTED
from middlewares import current_user, login_required

NO_SUCH_SESSION = "No such session."


def _current_session(request: web.Request) -> str | None:
    """The session of the credential the caller presented (None for a JWT issued before sessions existed)."""
    credential = request[credential_key]
    return None if credential is None else credential.session_id


@login_required
async def list_sessions(request: web.Request) -> web.Response:
    """GET /sessions: the caller's live sessions, newest first, the current one marked."""
    user = current_user(request)
    policy = request.app[authenticator_key].policy
    sessions = await models.list_sessions(request.app[db_key], user_id=user.id, policy=policy, limit=SESSIONS_LISTED)
    current = _current_session(request)
    return json_response({"sessions": [{**session, "current": session["id"] == current} for session in sessions]})


@login_required
async def delete_session(request: web.Request) -> web.Response:
    """DELETE /sessions/{id}: end one of the caller's sessions everywhere; 404 for any id that is not a live one of
    theirs (malformed, unknown, ended, another user's), so nobody can probe others' ids."""
    user = current_user(request)
    session_id = canonical_uuid(request.match_info["id"])
    if session_id is None:
        raise NotFound(NO_SUCH_SESSION)
    authenticator = request.app[authenticator_key]
    if not await authenticator.end_session(user.id, session_id, address=request_address(request), live_only=True):
        raise NotFound(NO_SUCH_SESSION)
    REVOCATIONS.labels("session").inc()
    response = web.Response(status=204)
    if session_id == _current_session(request):
        clear_login_cookie(response, secure=request.app[settings_key].cookie_secure)
    return response


@login_required
async def revoke_others(request: web.Request) -> web.Response:
    """POST /sessions/revoke-others: end every session of the caller but the current one, everywhere."""
    user = current_user(request)
    await request.app[authenticator_key].end_other_sessions(
        user.id, _current_session(request), address=request_address(request), reason="revoke_others"
    )
    REVOCATIONS.labels("others").inc()
    return web.Response(status=204)
