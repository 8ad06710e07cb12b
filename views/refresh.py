"""Refresh tokens: rotated on every use, with reuse detection that revokes the whole family."""

from __future__ import annotations

from aiohttp import web

from auth import signin
from auth.throttling import request_address
from core.bodies import read_json_or_form, text_field
from core.keys import settings_key


async def refresh(request: web.Request) -> web.Response:
    """POST /token/refresh: trade a refresh token for a new access JWT and the next refresh token."""
    data = await read_json_or_form(request)
    presented = text_field(data, "refresh_token", max_length=256)
    issued = await signin.with_refresh_token(request.app, presented=presented, address=request_address(request))
    return issued.response(request.app[settings_key])
