"""The audit log of auth events, for admins."""

from __future__ import annotations

from aiohttp import web

import models
from core.bodies import int_param, json_response
from core.keys import db_key
from core.shapes import AUDIT_BEFORE, AUDIT_LIMIT, AUDIT_USER_ID
from middlewares import requires


@requires("admin")
async def list_events(request: web.Request) -> web.Response:
    """GET /audit: auth events, newest first; `limit` (1..1000), `before` (an event id) and `user_id` narrow it."""
    limit = int_param(request, AUDIT_LIMIT)
    before = int_param(request, AUDIT_BEFORE)
    user_id = int_param(request, AUDIT_USER_ID)
    events = await models.list_events(request.app[db_key], limit=limit, before=before, user_id=user_id)
    return json_response({"events": events})
