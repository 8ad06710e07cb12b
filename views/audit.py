"""The audit log of auth events, for admins."""

from __future__ import annotations

from aiohttp import web

import models
from core.bodies import int_query, json_response
from core.keys import db_key
from middlewares import requires


@requires("admin")
async def list_events(request: web.Request) -> web.Response:
    """GET /audit: auth events, newest first; `limit` (1..1000), `before` (an event id) and `user_id` narrow it."""
    limit = int_query(request, "limit", default=100, minimum=1, maximum=1000)
    before = int_query(request, "before", default=0, minimum=1, maximum=2**62) if "before" in request.query else None
    user_id = int_query(request, "user_id", default=0, minimum=1, maximum=2**62) if "user_id" in request.query else None
    events = await models.list_events(request.app[db_key], limit=limit, before=before, user_id=user_id)
    return json_response({"events": events})
