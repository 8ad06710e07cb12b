"""The course's chatter API: read chatts, post them anonymously."""

from __future__ import annotations

from aiohttp import web

import models
from core.bodies import int_param, json_response, parse, read_json, uuid_query
from core.errors import Forbidden, Unauthorized, Unprocessable
from core.keys import credential_key, feed_key, settings_key, user_key, writer_key
from core.shapes import CHATTS_LIMIT, PostAuth, PostChatt
from middlewares import login_required


async def get_chatts(request: web.Request) -> web.Response:
    """GET /getchatts/: the newest chatts, oldest first, optionally only those after a given one."""
    limit = int_param(request, CHATTS_LIMIT)
    after = uuid_query(request, "after")
    feed = request.app[feed_key]
    try:
        body = await (feed.newest_json(limit) if after is None else feed.after_json(after, limit))
    except models.UnknownChatt:
        raise Unprocessable("'after' is not the id of a chatt.") from None
    return web.Response(body=body, content_type="application/json")


async def post_chatt(request: web.Request) -> web.Response:
    """POST /postchatt/: store a chatt under the username the client gives (the original lab's open posting)."""
    if not request.app[settings_key].open_posting:
        raise Forbidden("Anonymous posting is turned off; sign in and use /postauth/.")
    data = await read_json(request)
    username, message = parse(PostChatt, data)
    await request.app[writer_key].add(username, message)
    request.app[feed_key].changed_here()  # this worker reads its own write at once; the others on the notice
    return json_response({})


@login_required
async def post_auth(request: web.Request) -> web.Response:
    """POST /postauth/: store a chatt under the signed-in caller's username."""
    data = await read_json(request)
    message = parse(PostAuth, data).message
    credential = request[credential_key]
    user = request[user_key]
    assert credential is not None and user is not None
    writer = request.app[writer_key]
    if credential.session_hash is not None:
        # Checked again in the same statement as the insert: a chatterID ended elsewhere a moment ago is refused.
        if not await writer.add_for_session(credential.session_hash, message):
            raise Unauthorized("The chatterID is unknown or expired.")
    else:
        await writer.add(user.username, message, user.id)
    request.app[feed_key].changed_here()
    return json_response({})
