"""Google Sign-In: trade a Google ID token for chatterd's own credentials."""

from __future__ import annotations

from aiohttp import web

from auth.throttling import request_address
from core.bodies import json_response, read_json, text_field
from google_signin import signin

MAX_CLIENT_ID = 512
MAX_ID_TOKEN = 8192


async def add_user(request: web.Request) -> web.Response:
    """POST /adduser/: verify the ID token, find or create the user, and issue a chatterID and a JWT."""
    data = await read_json(request)
    client_id = text_field(data, "clientID", max_length=MAX_CLIENT_ID)
    id_token = text_field(data, "idToken", max_length=MAX_ID_TOKEN)
    signed_in = await signin.with_id_token(
        request.app, client_id=client_id, id_token=id_token, address=request_address(request)
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
