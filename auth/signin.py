"""Password and refresh-token sign-in, each one call: throttle, verify, second factor, issue."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from aiohttp import web

import models
from auth import totp
from auth.cookies import set_login_cookie
from auth.credentials import notice_family
from auth.throttling import LoginThrottle
from auth.tokens import hash_refresh_token, new_refresh_token, refresh_successor
from core.bodies import json_response
from core.errors import TooManyRequests, Unauthorized
from core.keys import authenticator_key, db_key, password_hasher_key, settings_key, token_codec_key
from core.metrics import SIGN_INS
from db.pool import Database
from mail.messages import notice
from models.records import NewRefreshToken, User
from settings import Settings

BAD_LOGIN = "Wrong username or password."
REFRESH_REFUSED = "The refresh token is unknown, expired or revoked."
OTP_REQUIRED = "otp_required"  # the contract's error code for a missing or wrong one-time code at /login


@dataclass(frozen=True, slots=True)
class Issued:
    """What a sign-in hands out: the user, an access JWT (with its lifetime) and the refresh token."""

    user: User
    token: str
    expires_in: int
    refresh_token: str

    def response(self, settings: Settings, *, cookie: bool = False) -> web.Response:
        """The contract's token answer; with `cookie`, the JWT also goes into the login cookie."""
        body = {
            "token": self.token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }
        response = json_response(body)
        if cookie:
            set_login_cookie(response, self.token, max_age=self.expires_in, secure=settings.cookie_secure)
        return response


def new_refresh_family(settings: Settings) -> tuple[str, NewRefreshToken]:
    """A new refresh token for a sign-in, starting a new family, and what the database keeps of it."""
    token = new_refresh_token()
    token_hash = hash_refresh_token(token)
    assert token_hash is not None
    return token, NewRefreshToken(token_hash, str(uuid.uuid4()), settings.refresh_token_lifetime)


def issue(app: web.Application, user: User, family_id: str, refresh_token: str) -> Issued:
    """Mint the access JWT of a sign-in (or refresh) whose refresh family is already stored."""
    codec = app[token_codec_key]
    token, _ = codec.mint(user.id, user.username, user.role, session_id=family_id)
    return Issued(user, token, codec.lifetime, refresh_token)


async def with_password(app: web.Application, *, username: str, password: str, otp: object, address: str) -> Issued:
    """Sign in with username, password and (when TOTP is on) a one-time or recovery code."""
    settings, db = app[settings_key], app[db_key]
    throttle = LoginThrottle(db, settings, address, username)
    try:
        await throttle.attempt()
    except TooManyRequests:
        SIGN_INS.labels("password", "throttled").inc()
        raise
    with throttle.evaluating():
        account = await models.account_for_login(db, username)
        # Unknown users are checked against a dummy hash: the same time and the same answer as a wrong password.
        ok, new_hash = await app[password_hasher_key].verify(account.password_hash, password)
    user = account.user
    if not ok or user is None:
        SIGN_INS.labels("password", "failure").inc()
        await throttle.failed(user.id if user else None, "password")
        raise Unauthorized(BAD_LOGIN)
    if account.totp_enabled and account.totp_secret:
        if otp in (None, ""):
            # Counted (before the hash, as every attempt) and audited like a wrong code: this answer, which only a
            # right password gets, must not be free to ask for.
            SIGN_INS.labels("password", "failure").inc()
            await throttle.failed(user.id, "one-time code missing")
            raise Unauthorized("A one-time code is needed: send it as 'otp'.", error=OTP_REQUIRED)
        if not await second_factor_ok(db, user.id, account.totp_secret, account.totp_last_step, otp):
            SIGN_INS.labels("password", "failure").inc()
            await throttle.failed(user.id, "one-time code")
            raise Unauthorized(
                "A valid one-time code is needed: that 'otp' is wrong or was already used.", error=OTP_REQUIRED
            )
    refresh_token, refresh = new_refresh_family(settings)
    await models.complete_login(
        db,
        user_id=user.id,
        throttle_key=throttle.account_key,
        address_key=throttle.address_key,
        new_hash=new_hash,
        refresh=refresh,
        address=address,
    )
    SIGN_INS.labels("password", "success").inc()
    return issue(app, user, refresh.family_id, refresh_token)


async def second_factor_ok(db: Database, user_id: int, secret: str, last_step: int | None, otp: object) -> bool:
    """A TOTP code (each time step once) or an unused recovery code."""
    recovery_hash = totp.hash_recovery_code(otp)
    if recovery_hash is not None:
        return await models.use_recovery_code(db, user_id, recovery_hash)
    step = totp.verify_code(secret, otp, last_step)
    return step is not None and await models.use_totp_step(db, user_id, secret, step)


async def with_refresh_token(app: web.Application, *, presented: str, address: str) -> Issued:
    """Trade a refresh token for a new access JWT and its successor; a reused token ends its whole family."""
    settings = app[settings_key]
    token_hash = hash_refresh_token(presented)
    if token_hash is None:
        raise Unauthorized(REFRESH_REFUSED)
    successor = refresh_successor(presented, settings.secret_key)
    successor_hash = hash_refresh_token(successor)
    assert successor_hash is not None
    outcome = await models.rotate_refresh_token(
        app[db_key],
        token_hash=token_hash,
        successor_hash=successor_hash,
        lifetime=settings.refresh_token_lifetime,
        grace=settings.refresh_grace_seconds,
        address=address,
        notice_for=notice_family,
        reuse_notice=notice(settings.secret_key, "refresh_reuse", ip=address),
    )
    if outcome.reuse_detected and outcome.family_id is not None:
        app[authenticator_key].family_reused(outcome.family_id)
        SIGN_INS.labels("refresh", "reuse").inc()
        raise Unauthorized("This refresh token was already used; every session it belongs to has been ended.")
    if outcome.user is None or outcome.family_id is None:
        SIGN_INS.labels("refresh", "failure").inc()
        raise Unauthorized(REFRESH_REFUSED)
    SIGN_INS.labels("refresh", "success").inc()
    return issue(app, outcome.user, outcome.family_id, successor)
