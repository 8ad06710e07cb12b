"""The course's chatter API: read chatts (and the page's read, which tells signed ones), post them, moderation."""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

import models
from chatter.feed import Form
from core.bodies import canonical_uuid, int_param, json_response, parse, read_body, uuid_query
from core.errors import Forbidden, NotFound, Unauthorized, Unprocessable
from core.keys import credential_key, db_key, feed_key, settings_key, writer_key
from core.shapes import CHATTS_LIMIT, PostAuth, PostChatt
from middlewares import current_user, login_required, requires


async def get_chatts(request: web.Request) -> web.Response:
    """GET /getchatts/: the newest chatts, oldest first, optionally only those after a given one."""
    return await _read(request, Form.ARRAYS)


async def list_chatts(request: web.Request) -> web.Response:
    """GET /chatts: what /getchatts/ answers, as objects that also say whether each chatt is signed (the page's)."""
    return await _read(request, Form.OBJECTS)


async def _read(request: web.Request, form: Form) -> web.Response:
    limit = int_param(request, CHATTS_LIMIT)
    after = uuid_query(request, "after")
    feed = request.app[feed_key]
    try:
        body = await (feed.newest_json(limit, form) if after is None else feed.after_json(after, limit, form))
    except models.UnknownChatt:
        raise Unprocessable("'after' is not the id of a chatt.") from None
    return web.Response(body=body, content_type="application/json")


async def post_chatt(request: web.Request) -> web.Response:
    """POST /postchatt/: store a chatt under the username the client gives (the original lab's open posting)."""
    if not request.app[settings_key].open_posting:
        raise Forbidden("Anonymous posting is turned off; sign in and use /postauth/.")
    data = await read_body(request)
    username, message = parse(PostChatt, data)
    await _stored(request.app[writer_key].add(username, message))
    return json_response({})


@login_required
async def post_auth(request: web.Request) -> web.Response:
    """POST /postauth/: store a chatt under the signed-in caller's username."""
    data = await read_body(request)
    message = parse(PostAuth, data).message
    user, credential = current_user(request), request[credential_key]
    assert credential is not None  # set with the user by the auth middleware
    writer = request.app[writer_key]
    # Checked again in the same statement as the insert: a chatterID ended, or a user deleted or banned, elsewhere a
    # moment ago is refused.
    if credential.chatter_id_hash is not None:
        if not await _stored(writer.add_for_chatter_id(credential.chatter_id_hash, message)):
            raise Unauthorized("The chatterID is unknown or expired.")
    elif not await _stored(writer.add(user.username, message, user.id)):
        raise Unauthorized("The credentials are invalid, expired or revoked.")
    return json_response({})


async def _stored(adding: Awaitable[bool]) -> bool:
    """Whether the writer stored the chatt; 422 when the database refused it (a constraint it breaks)."""
    try:
        return await adding
    except models.ChattRefused:
        raise Unprocessable("The database refused this chatt: it breaks one of its rules.") from None


@requires("admin", "moderator")
async def delete_chatt(request: web.Request) -> web.Response:
    """DELETE /chatts/{id}: remove a chatt (moderators and admins)."""
    chatt_id = canonical_uuid(request.match_info["id"])
    if chatt_id is None or not await models.delete_chatt(request.app[db_key], chatt_id):
        raise NotFound("No chatt has that id.")
    return web.Response(status=204)
