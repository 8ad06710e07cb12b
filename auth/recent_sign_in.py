"""Step-up: sensitive actions need a sign-in within REAUTH_MAX_AGE seconds in the session of the credential used."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

import models
from core.errors import Unauthorized
from core.keys import authenticator_key, credential_key, db_key, settings_key
from middlewares import login_required

REAUTH_REQUIRED = "reauth_required"  # the contract's error code

View = Callable[[web.Request], Awaitable[web.StreamResponse]]


def recent_sign_in_required(view: View) -> View:
    """Let the view run only for a caller signed in within REAUTH_MAX_AGE seconds in this session: 401 with
    `"error": "reauth_required"` otherwise (and the plain 401 of login_required without credentials)."""

    @functools.wraps(view)
    async def guarded(request: web.Request) -> web.StreamResponse:
        credential = request[credential_key]
        session_id = None if credential is None else credential.session_id
        authenticated_at = None
        if session_id is not None:  # a JWT of no session (minted before sessions existed) cannot tell
            authenticated_at = await models.session_authenticated_at(
                request.app[db_key], session_id=session_id, policy=request.app[authenticator_key].policy
            )
        max_age = request.app[settings_key].reauth_max_age
        if authenticated_at is None or time.time() - authenticated_at > max_age:
            raise Unauthorized(
                f"Sign in again first: this needs a sign-in within the last {max_age} seconds.", error=REAUTH_REQUIRED
            )
        return await view(request)

    return login_required(guarded)
