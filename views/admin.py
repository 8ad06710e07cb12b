"""Admins' view of users: search and page through them, read one, change a role, ban and lift a ban."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from datetime import UTC, datetime

from aiohttp import web

import models
from auth.credentials import Authenticator
from auth.throttling import request_address
from core.bodies import int_param, json_response, parse, read_body
from core.errors import Conflict, NotFound, Unprocessable
from core.keys import authenticator_key, db_key
from core.shapes import ADMIN_SEARCH_MAX, ADMIN_SESSIONS_LISTED, ADMIN_USERS_LIMIT, ROLES, Ban, RoleChange
from middlewares import current_user, requires

NO_SUCH_USER = "No such user."
LAST_ADMIN = "That would leave no admin: make another admin first."
BANNED = "banned"  # why a ban's sessions end, as they keep it
# Ids are Postgres bigints; anything longer than this is no user's.
MAX_ID_DIGITS = 18


def _user_id(request: web.Request) -> int:
    """The user id in the path (digits, by the route); 404 for one too long to be any user's."""
    raw = request.match_info["id"]
    if len(raw) > MAX_ID_DIGITS:
        raise NotFound(NO_SUCH_USER)
    return int(raw)


def _search_text(request: web.Request) -> str | None:
    """`q`: text to look for in names and addresses (None: every user)."""
    q = request.query.get("q") or None
    if q is not None and (len(q) > ADMIN_SEARCH_MAX or "\x00" in q):
        raise Unprocessable(f"'q' must be at most {ADMIN_SEARCH_MAX} characters, without NUL.")
    return q


def _cursor(request: web.Request) -> int | None:
    """`cursor`: the next_cursor of the page before (None: the first page)."""
    raw = request.query.get("cursor")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_ID_DIGITS:
        raise Unprocessable("'cursor' must be a next_cursor this endpoint gave.")
    return int(raw)


def ban_end(until: str | None, now: datetime) -> str:
    """When a ban ends, for the database: the given ISO 8601 time (with its offset, after `now`), or "infinity"."""
    if until is None:
        return "infinity"
    try:
        when = datetime.fromisoformat(until)
    except ValueError:
        raise Unprocessable("The ban's end (until) must be an ISO 8601 time, such as 2030-01-31T12:00:00Z.") from None
    if when.tzinfo is None:
        raise Unprocessable("The ban's end (until) needs its offset: Z for UTC, or +hh:mm.")
    if when <= now:
        raise Unprocessable("The ban's end (until) must be in the future.")
    return when.isoformat()


@requires("admin")
async def list_users(request: web.Request) -> web.Response:
    """GET /admin/users?q=&limit=&cursor=: users, newest first, a page at a time; `next_cursor` (null on the last
    page) is the `cursor` of the next."""
    limit = int_param(request, ADMIN_USERS_LIMIT)
    users, last = await models.search_users(
        request.app[db_key], q=_search_text(request), limit=limit, before=_cursor(request)
    )
    return json_response({"users": users, "next_cursor": None if last is None else str(last)})


@requires("admin")
async def get_user(request: web.Request) -> web.Response:
    """GET /admin/users/{id}: one user, with identities and live sessions."""
    found = await models.user_details(
        request.app[db_key],
        user_id=_user_id(request),
        policy=request.app[authenticator_key].policy,
        sessions=ADMIN_SESSIONS_LISTED,
    )
    if found is None:
        raise NotFound(NO_SUCH_USER)
    return json_response(found)


@requires("admin")
async def set_role(request: web.Request) -> web.Response:
    """PUT /admin/users/{id}/role {role}: in force at once on every worker and server."""
    user_id = _user_id(request)
    role = parse(RoleChange, await read_body(request)).role
    if role not in ROLES:
        raise Unprocessable(f"The role must be one of {', '.join(ROLES)}.")
    change = models.change_user_role(
        request.app[db_key], user_id=user_id, role=role, by=current_user(request).id, address=request_address(request)
    )
    return await _apply(request, user_id, change)


@requires("admin")
async def ban(request: web.Request) -> web.Response:
    """POST /admin/users/{id}/ban {until?, reason?}: every session of the user ends at once, and every sign-in is
    refused (403 banned) until then."""
    user_id = _user_id(request)
    until, reason = parse(Ban, await read_body(request) if request.body_exists else {})
    end = ban_end(until, datetime.now(UTC))
    change = models.ban_user(
        request.app[db_key],
        user_id=user_id,
        until=end,
        reason=reason,
        by=current_user(request).id,
        cutoff=time.time(),
        ending=Authenticator.ending(request_address(request), BANNED),
    )
    return await _apply(request, user_id, change)


@requires("admin")
async def unban(request: web.Request) -> web.Response:
    """DELETE /admin/users/{id}/ban: the user may sign in again."""
    user_id = _user_id(request)
    change = models.unban_user(
        request.app[db_key], user_id=user_id, by=current_user(request).id, address=request_address(request)
    )
    return await _apply(request, user_id, change)


async def _apply(request: web.Request, user_id: int, change: Awaitable[list[str] | None]) -> web.Response:
    """Make an admin's change to a user (404 for no such user, 409 when it would leave no admin): 204, and in force
    on this worker at once (the users row's trigger tells every other), the sessions it ended (a ban's) too."""
    try:
        ended = await change
    except models.UnknownUser:
        raise NotFound(NO_SUCH_USER) from None
    except models.LastAdmin:
        raise Conflict(LAST_ADMIN) from None
    authenticator = request.app[authenticator_key]
    if ended is None:
        authenticator.standing_changed(user_id)
    else:
        authenticator.ended(user_id, ended, BANNED, cut_off=True)
    return web.Response(status=204)
