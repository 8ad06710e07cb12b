"""Password and refresh-token sign-in, each one call: throttle, verify, second factor, issue."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from aiohttp import web

import models
from auth import totp
from auth.cookies import login_cookie_name, set_login_cookie
from auth.credentials import notice_session
from auth.sessions import PASSWORD, Client, access_lifetime, new_session, session_policy
from auth.throttling import LoginThrottle
from auth.tokens import hash_refresh_token, new_refresh_token, refresh_successor
from core.bodies import json_response
from core.errors import ApiError, Forbidden, TooManyRequests, Unauthorized
from core.keys import (
    authenticator_key,
    credential_key,
    db_key,
    password_hasher_key,
    settings_key,
    token_codec_key,
    user_key,
)
from core.metrics import SESSIONS_OPENED, SIGN_INS, THROTTLES
from db.pool import Database, DatabaseUnavailable
from mail.messages import notice
from models.records import NewRefreshToken, NotAdmitted, User
from settings import Settings

logger = logging.getLogger(__name__)

BAD_LOGIN = "Wrong username or password."
REFRESH_REFUSED = "The refresh token is unknown, expired or revoked."
OTP_REQUIRED = "otp_required"  # the contract's error code for a missing or wrong one-time code at /login
BANNED = "banned"  # the contract's error code of every sign-in by a banned user


def refusal(exc: NotAdmitted) -> ApiError:
    """The answer to a sign-in whose user is banned (403 banned) or deleted (401), as the database found it."""
    if exc.banned:
        return Forbidden("This account is banned.", error=BANNED)
    return Unauthorized("This account was deleted.")


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


def new_refresh(settings: Settings) -> tuple[str, NewRefreshToken]:
    """The first refresh token of a sign-in's session, and what the database keeps of it."""
    token = new_refresh_token()
    token_hash = hash_refresh_token(token)
    assert token_hash is not None
    return token, NewRefreshToken(token_hash, settings.refresh_token_lifetime)


def mint_for_session(
    app: web.Application, user: User, session_id: str, session_left: float, *, standing_version: int | None = None
) -> tuple[str, int]:
    """An access JWT of a stored session (`sid`) and its lifetime, which ends no later than the session may."""
    lifetime = access_lifetime(app[settings_key], session_left)
    token, claims = app[token_codec_key].mint(
        user.id, user.username, user.role, lifetime=lifetime, session_id=session_id, standing_version=standing_version
    )
    # A sign-in or refresh wrote the session's last use just now: this worker need not write it again for a while.
    app[authenticator_key].activity.written(session_id, claims.issued_at)
    return token, lifetime


def issue(
    app: web.Application,
    user: User,
    session_id: str,
    refresh_token: str,
    session_left: float,
    *,
    standing_version: int | None = None,
) -> Issued:
    """The answer of a sign-in (or refresh) whose session is already stored: its JWT and refresh token."""
    token, lifetime = mint_for_session(app, user, session_id, session_left, standing_version=standing_version)
    return Issued(user, token, lifetime, refresh_token)


async def renew_login_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Slide a cookie sign-in: when the login cookie's JWT is past half its life and its session lives on (not ended,
    idle or at its limit), the response carries a fresh JWT of the same session in the cookie.

    So a browser signed in by cookie alone (Google web sign-in) stays signed in while it is used, within
    SESSION_IDLE_TIMEOUT and SESSION_MAX_AGE, and a session ended anywhere is never renewed.
    """
    credential = request[credential_key]
    claims = None if credential is None else credential.claims
    cookie_name = login_cookie_name(secure=request.app[settings_key].cookie_secure)
    if claims is None or claims.session_id is None or response.prepared or cookie_name in response.cookies:
        return
    now = time.time()
    if claims.expires_at - now > (claims.expires_at - claims.issued_at) / 2:
        return
    app, user = request.app, request[user_key]
    settings, authenticator = app[settings_key], app[authenticator_key]
    if user is None or authenticator.store.session_ended(claims.session_id):
        return
    try:
        left = await models.session_time_left(
            app[db_key], session_id=claims.session_id, user_id=user.id, policy=authenticator.policy
        )
    except DatabaseUnavailable as exc:
        logger.warning("could not renew a login cookie: %s", exc)  # the request itself was answered; it keeps that
        return
    if left is None or left < 1:
        return
    lifetime = access_lifetime(settings, left)
    token, _ = app[token_codec_key].mint(
        user.id, user.username, user.role, lifetime=lifetime, session_id=claims.session_id
    )
    set_login_cookie(response, token, max_age=lifetime, secure=settings.cookie_secure)


async def check_password(
    app: web.Application, throttle: LoginThrottle, *, username: str, password: str, otp: object, kind: str
) -> tuple[User, str | None]:
    """Count the attempt (before any work), then check the password and, when TOTP is on, the one-time or recovery
    code: the account's user, and its new hash when the hashing parameters changed. 429 past the throttle's limits,
    401 otherwise; each outcome is counted under `kind` and each failure audited."""
    db = app[db_key]
    try:
        await throttle.attempt()
    except TooManyRequests:
        SIGN_INS.labels(kind, "throttled").inc()
        raise
    with throttle.evaluating():
        account = await models.account_for_login(db, username)
        # Unknown users are checked against a dummy hash: the same time and the same answer as a wrong password.
        ok, new_hash = await app[password_hasher_key].verify(account.password_hash, password)
    user = account.user
    if not ok or user is None:
        SIGN_INS.labels(kind, "failure").inc()
        await throttle.failed(user.id if user else None, "password")
        raise Unauthorized(BAD_LOGIN)
    if account.totp_enabled and account.totp_secret:
        if otp in (None, ""):
            # Counted (before the hash, as every attempt) and audited like a wrong code: this answer, which only a
            # right password gets, must not be free to ask for.
            SIGN_INS.labels(kind, "failure").inc()
            await throttle.failed(user.id, "one-time code missing")
            raise Unauthorized("A one-time code is needed: send it as 'otp'.", error=OTP_REQUIRED)
        if not await second_factor_ok(db, user.id, account.totp_secret, account.totp_last_step, otp):
            SIGN_INS.labels(kind, "failure").inc()
            await throttle.failed(user.id, "one-time code")
            raise Unauthorized(
                "A valid one-time code is needed: that 'otp' is wrong or was already used.", error=OTP_REQUIRED
            )
    if account.banned:
        SIGN_INS.labels(kind, "banned").inc()
        await models.settle_password(db, throttle_key=throttle.account_key, address_key=throttle.address_key)
        raise refusal(NotAdmitted(banned=True))
    return user, new_hash


async def with_password(
    app: web.Application, *, username: str, password: str, otp: object, address: str, user_agent: str = ""
) -> Issued:
    """Sign in with username, password and (when TOTP is on) a one-time or recovery code; open a session."""
    settings, db = app[settings_key], app[db_key]
    throttle = LoginThrottle(db, settings, address, username)
    user, new_hash = await check_password(app, throttle, username=username, password=password, otp=otp, kind=PASSWORD)
    refresh_token, refresh = new_refresh(settings)
    session = await new_session(PASSWORD, Client(address, user_agent), secret_key=settings.secret_key)
    admitted = await models.complete_login(
        db,
        user_id=user.id,
        throttle_key=throttle.account_key,
        address_key=throttle.address_key,
        new_hash=new_hash,
        session=session,
        policy=session_policy(settings),
        refresh=refresh,
        address=address,
    )
    if not admitted:  # banned or deleted since the account was read
        SIGN_INS.labels("password", "banned").inc()
        standing = await models.user_standing(db, user.id)
        raise refusal(NotAdmitted(banned=standing is not None and not standing.deleted))
    # The name and role are read again, now: the password check took a while, and a demotion or rename answered
    # meanwhile must not be minted into the token (clients and JWKS verifiers read its claims). The token carries
    # the standing's version, so no worker lets it act on an older copy of the standing than it was minted from.
    standing = await models.user_standing(db, user.id)
    if standing is None:  # deleted meanwhile
        SIGN_INS.labels("password", "failure").inc()
        raise Unauthorized(BAD_LOGIN)
    SIGN_INS.labels("password", "success").inc()
    SESSIONS_OPENED.labels(PASSWORD).inc()
    return issue(
        app, standing.user, session.id, refresh_token, settings.session_max_age, standing_version=standing.version
    )


async def second_factor_ok(db: Database, user_id: int, secret: str, last_step: int | None, otp: object) -> bool:
    """A TOTP code (each time step once) or an unused recovery code."""
    recovery_hash = totp.hash_recovery_code(otp)
    if recovery_hash is not None:
        return await models.use_recovery_code(db, user_id, recovery_hash)
    step = totp.verify_code(secret, otp, last_step)
    return step is not None and await models.use_totp_step(db, user_id, secret, step)


async def with_refresh_token(app: web.Application, *, presented: str, address: str) -> Issued:
    """Trade a refresh token for a new access JWT and its successor; a reused token ends its whole session."""
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
        max_per_window=settings.refresh_max_per_session,
        window=settings.refresh_window_seconds,
        policy=session_policy(settings),
        address=address,
        notice_for=notice_session,
        reuse_notice=notice(settings.secret_key, "refresh_reuse", ip=address),
    )
    if outcome.reuse_detected and outcome.session_id is not None:
        app[authenticator_key].session_reused(outcome.session_id)
        SIGN_INS.labels("refresh", "reuse").inc()
        raise Unauthorized("This refresh token was already used; the session it belongs to has been ended.")
    if outcome.banned:
        SIGN_INS.labels("refresh", "banned").inc()
        raise refusal(NotAdmitted(banned=True))
    if outcome.retry_after is not None:
        SIGN_INS.labels("refresh", "throttled").inc()
        THROTTLES.labels("refresh").inc()
        raise TooManyRequests(
            "This session refreshed too often; try again later.", retry_after=math.ceil(outcome.retry_after)
        )
    if outcome.user is None or outcome.session_id is None:
        SIGN_INS.labels("refresh", "failure").inc()
        raise Unauthorized(REFRESH_REFUSED)
    SIGN_INS.labels("refresh", "success").inc()
    return issue(app, outcome.user, outcome.session_id, successor, outcome.expires_in)
