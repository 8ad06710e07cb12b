"""Refresh tokens: rotated on every use, with reuse detection that revokes the whole family."""

from __future__ import annotations

from aiohttp import web

from auth import signin
from auth.throttling import request_address
from core.bodies import accepts_form, parse, read_body
from core.keys import settings_key
from core.shapes import Refresh


@accepts_form
async def refresh(request: web.Request) -> web.Response:
    """POST /token/refresh: trade a refresh token for a new access JWT and the next refresh token."""
    data = await read_body(request)
    presented = parse(Refresh, data).refresh_token
    issued = await signin.with_refresh_token(request.app, presented=presented, address=request_address(request))
    return issued.response(request.app[settings_key])
