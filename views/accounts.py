"""Password accounts: register, log in (JSON, form, cookie), who am I, log out, TOTP, and moderation."""

from __future__ import annotations

import uuid

from aiohttp import web

import models
from auth import totp
from auth.throttling import LoginThrottle, client_address, limit_rate
from core.bodies import json_response, parse, read_json_or_form
from core.errors import Conflict, NotFound, TooManyRequests, Unauthorized, Unprocessable
from core.keys import (
    authenticator_key,
    credential_key,
    db_key,
    feed_key,
    password_hasher_key,
    settings_key,
    token_codec_key,
    user_key,
)
from core.metrics import SIGN_INS
from core.shapes import Login, Otp, OtpOrRecoveryCode, Register
from db.pool import Database
from middlewares import COOKIE_NAME, login_required, requires, set_login_cookie
from views.refresh import new_refresh_family, token_response

BAD_LOGIN = "Wrong username or password."


async def register(request: web.Request) -> web.Response:
    """POST /register: create a password account."""
    settings = request.app[settings_key]
    data = await read_json_or_form(request)
    username, password = parse(Register, data)
    await limit_rate(request, "register", limit=settings.signup_max_per_address, window=settings.signup_window_seconds)
    password_hash = await request.app[password_hasher_key].hash(password)
    try:
        user = await models.create_password_user(request.app[db_key], username, password_hash)
    except models.UsernameTaken:
        raise Conflict("That username is already taken.") from None
    return json_response({"id": user.id, "username": user.username}, status=201)


async def login(request: web.Request) -> web.Response:
    """POST /login: check the password (and one-time code), then issue a JWT in the body and a cookie."""
    app = request.app
    settings, db = app[settings_key], app[db_key]
    data = await read_json_or_form(request)
    username, password, otp = parse(Login, data)
    throttle = LoginThrottle(db, settings, request, username)
    account = await models.account_for_login(db, username, throttle.keys)
    try:
        throttle.check(account.locked_for)
    except TooManyRequests:
        SIGN_INS.labels("password", "throttled").inc()
        raise

    # Unknown users are checked against a dummy hash: the same time and the same answer as a wrong password.
    ok, new_hash = await app[password_hasher_key].verify(account.password_hash, password)
    user = account.user
    if not ok or user is None:
        SIGN_INS.labels("password", "failure").inc()
        await throttle.failed(user.id if user else None, "password")
        raise Unauthorized(BAD_LOGIN)
    if account.totp_enabled and account.totp_secret:
        if otp in (None, ""):
            raise Unauthorized("A one-time code is needed: send it as 'otp'.")
        if not await _second_factor_ok(db, user.id, account.totp_secret, account.totp_last_step, otp):
            SIGN_INS.labels("password", "failure").inc()
            await throttle.failed(user.id, "one-time code")
            raise Unauthorized("A valid one-time code is needed: that 'otp' is wrong or was already used.")
    refresh_token, refresh = new_refresh_family(settings)
    await models.complete_login(
        db,
        user_id=user.id,
        throttle_key=throttle.account_key,
        new_hash=new_hash,
        refresh=refresh,
        address=throttle.address,
    )
    SIGN_INS.labels("password", "success").inc()

    response, token = token_response(request, user, refresh.family_id, refresh_token)
    codec = app[token_codec_key]
    set_login_cookie(response, token, max_age=codec.lifetime, secure=settings.cookie_secure)
    return response


async def _second_factor_ok(db: Database, user_id: int, secret: str, last_step: int | None, otp: object) -> bool:
    """A TOTP code (each time step once) or an unused recovery code."""
    recovery_hash = totp.hash_recovery_code(otp)
    if recovery_hash is not None:
        return await models.use_recovery_code(db, user_id, recovery_hash)
    step = totp.verify_code(secret, otp, last_step)
    return step is not None and await models.use_totp_step(db, user_id, secret, step)


@login_required
async def get_user(request: web.Request) -> web.Response:
    """GET /get-user: the caller, straight from the verified credential (no database query for a JWT)."""
    user = request[user_key]
    assert user is not None
    return json_response({"user": {"id": user.id, "username": user.username, "role": user.role}})


@login_required
async def logout(request: web.Request) -> web.Response:
    """POST /logout: the credential used stops working everywhere; `?everywhere=true` ends every one of the user's."""
    credential, user = request[credential_key], request[user_key]
    assert credential is not None and user is not None
    authenticator = request.app[authenticator_key]
    address = _address(request)
    if request.query.get("everywhere", "").lower() in {"1", "true", "yes"}:
        await authenticator.revoke_all(user.id, address=address, reason="logout")
    else:
        await authenticator.revoke(credential, user.id, address)
    response = web.Response(status=204)
    response.del_cookie(COOKIE_NAME, path="/")
    return response


@login_required
async def totp_setup(request: web.Request) -> web.Response:
    """POST /totp/setup: a new secret and its otpauth:// URI; TOTP turns on once /totp/enable sees a code."""
    user = request[user_key]
    assert user is not None
    secret = totp.new_secret()
    if not await models.set_totp_secret(request.app[db_key], user.id, secret):
        raise Unprocessable("TOTP is already enabled, or this account signs in with Google.")
    return json_response({"secret": secret, "uri": totp.provisioning_uri(secret, user.username)})


@login_required
async def totp_enable(request: web.Request) -> web.Response:
    """POST /totp/enable: turn TOTP on with a code from the secret /totp/setup gave."""
    user = request[user_key]
    assert user is not None
    data = await read_json_or_form(request)
    otp = parse(Otp, data).otp
    db = request.app[db_key]
    secret, enabled, last_step = await models.totp_state(db, user.id)
    if enabled:
        raise Unprocessable("TOTP is already enabled.")
    if secret is None:
        raise Unprocessable("Call /totp/setup first.")
    step = totp.verify_code(secret, otp, last_step)
    if step is None or not await models.use_totp_step(db, user.id, secret, step):
        raise Unprocessable("That one-time code is not valid for the secret from /totp/setup.")
    await models.record_event(db, user_id=user.id, event="totp_on", address=_address(request))
    return web.Response(status=204)


@login_required
async def totp_recovery_codes(request: web.Request) -> web.Response:
    """POST /totp/recovery-codes: ten new single-use codes for when the authenticator is lost, shown this once."""
    user = request[user_key]
    assert user is not None
    db = request.app[db_key]
    _, enabled, _ = await models.totp_state(db, user.id)
    if not enabled:
        raise Unprocessable("Turn TOTP on first.")
    codes = totp.new_recovery_codes()
    hashes = [totp.hash_recovery_code(code) for code in codes]
    await models.replace_recovery_codes(db, user.id, [h for h in hashes if h is not None])
    return json_response({"codes": codes})


@login_required
async def totp_disable(request: web.Request) -> web.Response:
    """POST /totp/disable: turn TOTP off, given a current code (or a recovery code)."""
    user = request[user_key]
    assert user is not None
    data = await read_json_or_form(request)
    otp = parse(OtpOrRecoveryCode, data).otp
    db = request.app[db_key]
    secret, enabled, last_step = await models.totp_state(db, user.id)
    if not enabled or secret is None:
        raise Unprocessable("TOTP is not enabled.")
    if not await _second_factor_ok(db, user.id, secret, last_step, otp):
        raise Unprocessable("That one-time code is not valid.")
    await models.disable_totp(db, user.id, _address(request))
    return web.Response(status=204)


def _address(request: web.Request) -> str:
    return client_address(request, request.app[settings_key].trusted_proxies)


@requires("admin", "moderator")
async def delete_chatt(request: web.Request) -> web.Response:
    """DELETE /chatts/{id}: remove a chatt (moderators and admins)."""
    chatt_id = request.match_info["id"]
    if not _is_uuid(chatt_id) or not await models.delete_chatt(request.app[db_key], chatt_id):
        raise NotFound("No chatt has that id.")
    request.app[feed_key].changed_here()
    return web.Response(status=204)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
