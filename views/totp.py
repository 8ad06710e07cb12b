"""Two-factor sign-in with TOTP: set up, turn on, recovery codes, turn off."""

from __future__ import annotations

from aiohttp import web

import models
from auth import totp
from auth.signin import second_factor_ok
from auth.throttling import claim_code_attempt, request_address
from core.bodies import accepts_form, json_response, parse, read_body
from core.errors import Unprocessable
from core.keys import db_key, settings_key
from core.shapes import Otp, OtpOrRecoveryCode
from mail.messages import notice
from middlewares import current_user, login_required, requires_recent_auth


@login_required
async def totp_setup(request: web.Request) -> web.Response:
    """POST /totp/setup: a new secret and its otpauth:// URI; TOTP turns on once /totp/enable sees a code."""
    user = current_user(request)
    secret = totp.new_secret()
    if not await models.set_totp_secret(request.app[db_key], user.id, secret):
        raise Unprocessable("TOTP is already enabled, or this account signs in with Google.")
    return json_response({"secret": secret, "uri": totp.provisioning_uri(secret, user.username)})


@accepts_form
@login_required
async def totp_enable(request: web.Request) -> web.Response:
    """POST /totp/enable: turn TOTP on with a code from the secret /totp/setup gave."""
    user = current_user(request)
    data = await read_body(request)
    otp = parse(Otp, data).otp
    db = request.app[db_key]
    secret, enabled, last_step = await models.totp_state(db, user.id)
    if enabled:
        raise Unprocessable("TOTP is already enabled.")
    if secret is None:
        raise Unprocessable("Call /totp/setup first.")
    step = totp.verify_code(secret, otp, last_step)
    address = request_address(request)
    letter = notice(request.app[settings_key].secret_key, "totp_enabled", ip=address)
    if step is None or not await models.enable_totp(
        db, user_id=user.id, secret=secret, step=step, address=address, notice=letter
    ):
        raise Unprocessable("That one-time code is not valid for the secret from /totp/setup.")
    return web.Response(status=204)


@requires_recent_auth
async def totp_recovery_codes(request: web.Request) -> web.Response:
    """POST /totp/recovery-codes: ten new single-use codes for when the authenticator is lost, shown this once."""
    user = current_user(request)
    db = request.app[db_key]
    _, enabled, _ = await models.totp_state(db, user.id)
    if not enabled:
        raise Unprocessable("Turn TOTP on first.")
    codes = totp.new_recovery_codes()
    hashes = [totp.hash_recovery_code(code) for code in codes]
    await models.replace_recovery_codes(db, user.id, [h for h in hashes if h is not None])
    return json_response({"codes": codes})


@accepts_form
@requires_recent_auth
async def totp_disable(request: web.Request) -> web.Response:
    """POST /totp/disable: turn TOTP off, given a current code (or a recovery code)."""
    user = current_user(request)
    data = await read_body(request)
    otp = parse(OtpOrRecoveryCode, data).otp
    db, address = request.app[db_key], request_address(request)
    secret, enabled, last_step = await models.totp_state(db, user.id)
    if not enabled or secret is None:
        raise Unprocessable("TOTP is not enabled.")
    # Counted before the code is checked: a burst of guesses gets no more tries than the limit.
    throttle_key = await claim_code_attempt(db, request.app[settings_key], user.id)
    if not await second_factor_ok(db, user.id, secret, last_step, otp):
        await models.record_event(db, user_id=user.id, event="totp_off_failed", address=address)
        raise Unprocessable("That one-time code is not valid.")
    letter = notice(request.app[settings_key].secret_key, "totp_disabled", ip=address)
    await models.disable_totp(db, user.id, address, throttle_key, letter)
    return web.Response(status=204)
