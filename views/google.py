"""Google Sign-In: trade a Google ID token for chatterd's own credentials."""

from __future__ import annotations

from aiohttp import web

from auth.throttling import request_address, request_user_agent
from core.bodies import json_response, parse, read_body
from core.shapes import AddUser
from google_signin import signin


async def add_user(request: web.Request) -> web.Response:
    """POST /adduser/: verify the ID token, find or create the user, and issue a chatterID and a JWT."""
    address = request_address(request)
    signin.refuse_if_flooding(request.app, address)
    data = await read_body(request)
    client_id, id_token = parse(AddUser, data)
    signed_in = await signin.with_id_token(
        request.app,
        client_id=client_id,
        id_token=id_token,
        address=address,
        user_agent=request_user_agent(request),
    )
    return json_response(
        {
            "username": signed_in.issued.user.username,
            "chatterID": signed_in.chatter_id,
            "lifetime": signed_in.lifetime,
            "token": signed_in.issued.token,
            "refresh_token": signed_in.issued.refresh_token,
        }
    )
