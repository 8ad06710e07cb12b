"""Refresh tokens: rotated on every use, with reuse detection that revokes the whole family."""

from __future__ import annotations

import uuid

from aiohttp import web

import models
from auth.credentials import notice_family
from auth.throttling import client_address
from auth.tokens import hash_refresh_token, new_refresh_token, refresh_successor
from core.bodies import json_response, parse, read_json_or_form
from core.errors import Unauthorized
from core.keys import authenticator_key, db_key, settings_key, token_codec_key
from core.metrics import SIGN_INS
from core.shapes import Refresh
from settings import Settings

REFRESH_REFUSED = "The refresh token is unknown, expired or revoked."


def new_refresh_family(settings: Settings) -> tuple[str, models.NewRefreshToken]:
    """A new refresh token for a sign-in, starting a new family, and what the database keeps of it."""
    token = new_refresh_token()
    token_hash = hash_refresh_token(token)
    assert token_hash is not None
    return token, models.NewRefreshToken(token_hash, str(uuid.uuid4()), settings.refresh_token_lifetime)


def token_response(
    request: web.Request, user: models.User, family_id: str, refresh_token: str
) -> tuple[web.Response, str]:
    """The answer every password sign-in and refresh gives (a new access JWT and the refresh token), and the JWT."""
    codec = request.app[token_codec_key]
    token, _ = codec.mint(user.id, user.username, user.role, session_id=family_id)
    body = {"token": token, "token_type": "Bearer", "expires_in": codec.lifetime, "refresh_token": refresh_token}
    return json_response(body), token


async def refresh(request: web.Request) -> web.Response:
    """POST /token/refresh: trade a refresh token for a new access JWT and the next refresh token."""
    settings = request.app[settings_key]
    data = await read_json_or_form(request)
    presented = parse(Refresh, data).refresh_token
    token_hash = hash_refresh_token(presented)
    if token_hash is None:
        raise Unauthorized(REFRESH_REFUSED)
    successor = refresh_successor(presented, settings.secret_key)
    successor_hash = hash_refresh_token(successor)
    assert successor_hash is not None
    outcome = await models.rotate_refresh_token(
        request.app[db_key],
        token_hash=token_hash,
        successor_hash=successor_hash,
        lifetime=settings.refresh_token_lifetime,
        grace=settings.refresh_grace_seconds,
        address=client_address(request, settings.trusted_proxies),
        notice_for=notice_family,
    )
    if outcome.reuse_detected and outcome.family_id is not None:
        request.app[authenticator_key].family_reused(outcome.family_id)
        SIGN_INS.labels("refresh", "reuse").inc()
        raise Unauthorized("This refresh token was already used; every session it belongs to has been ended.")
    if outcome.user is None or outcome.family_id is None:
        SIGN_INS.labels("refresh", "failure").inc()
        raise Unauthorized(REFRESH_REFUSED)
    SIGN_INS.labels("refresh", "success").inc()
    response, _ = token_response(request, outcome.user, outcome.family_id, successor)
    return response
