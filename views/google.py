"""Google Sign-In: trade a Google ID token for chatterd's own credentials."""

from __future__ import annotations

import math
import time

from aiohttp import web

import models
from auth.throttling import client_address
from auth.tokens import new_chatter_id
from core.bodies import json_response, parse, read_json
from core.errors import TooManyRequests, Unauthorized
from core.keys import db_key, google_certs_key, settings_key, token_codec_key
from core.metrics import SIGN_INS, THROTTLES
from core.shapes import AddUser
from google_signin.idtoken import InvalidIdToken, verify_id_token
from views.refresh import new_refresh_family

CLOCK_SKEW = 50
NO_NAME = "Profile NA"


async def add_user(request: web.Request) -> web.Response:
    """POST /adduser/: verify the ID token, find or create the user, and issue a chatterID and a JWT."""
    settings = request.app[settings_key]
    data = await read_json(request)
    client_id, id_token = parse(AddUser, data)
    if settings.google_client_ids:
        if client_id not in settings.google_client_ids:
            raise Unauthorized("This clientID is not accepted here.")
        audiences: tuple[str, ...] = settings.google_client_ids
    else:
        audiences = (client_id,)  # the original lab's behaviour; a warning at start says so
    try:
        identity = await verify_id_token(
            id_token,
            request.app[google_certs_key],
            audiences=audiences,
            hosted_domain=settings.google_hosted_domain,
            clock_skew=CLOCK_SKEW,
        )
    except InvalidIdToken:
        SIGN_INS.labels("google", "failure").inc()
        raise
    # A chatterID never outlives the ID token it came from, nor CHATTERID_LIFETIME.
    lifetime = min(identity.expires_at - int(time.time()) + 1, settings.chatterid_lifetime)
    if lifetime <= 0:
        raise Unauthorized("The ID token has expired.")
    chatter_id, session_hash = new_chatter_id()
    refresh_token, refresh = new_refresh_family(settings)
    address = client_address(request, settings.trusted_proxies)
    try:
        user = await models.sign_in_google_user(
            request.app[db_key],
            sub=identity.sub,
            username=(identity.name or NO_NAME)[:255],
            email=identity.email,
            session_hash=session_hash,
            lifetime=lifetime,
            refresh=refresh,
            address=address,
            rate_key=f"adduser:addr:{address}",
            rate_limit=settings.adduser_max_per_address,
            rate_window=settings.adduser_window_seconds,
        )
    except models.RateLimited as exc:
        THROTTLES.labels("adduser").inc()
        raise TooManyRequests(
            "Too many adduser attempts from your address; try again later.", retry_after=math.ceil(exc.retry_after)
        ) from None
    SIGN_INS.labels("google", "success").inc()
    token, _ = request.app[token_codec_key].mint(user.id, user.username, user.role, session_id=refresh.family_id)
    return json_response(
        {
            "username": user.username,
            "chatterID": chatter_id,
            "lifetime": lifetime,
            "token": token,
            "refresh_token": refresh_token,
        }
    )
