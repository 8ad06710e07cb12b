"""Password recovery by a code mailed to the verified address, and password changes by the signed-in user."""

from __future__ import annotations

import math
import time

from aiohttp import web

import models
from auth.email_codes import INVALID_CODE, MAX_TRIES, code_hash, new_code
from auth.throttling import LoginThrottle
from auth.usernames import username_key
from core.errors import BadRequest, Forbidden, TooManyRequests, Unprocessable
from core.keys import authenticator_key, db_key, password_hasher_key, password_policy_key, settings_key
from core.metrics import THROTTLES
from mail.messages import letter, notice
from models.records import User
from settings import Settings

# Why sessions ended, as they keep it (sessions.end_reason) and the metrics count it.
PASSWORD_RESET, PASSWORD_CHANGE = "password_reset", "password_change"


def account_key(*, email: str | None, username: str | None) -> str:
    """The counter of the account a forgot or reset attempt names, as named: whether it exists must not show."""
    return f"recovery:email:{email.lower()}" if email is not None else f"recovery:user:{username_key(username or '')}"


def recovery_limits(settings: Settings, *, email: str | None, username: str | None, address: str) -> dict[str, int]:
    """The counters a forgot or reset attempt is judged by, with their limits: the account named and the address."""
    return {
        account_key(email=email, username=username): settings.recovery_max_per_account,
        f"recovery:addr:{address}": settings.recovery_max_per_address,
    }


def _too_many(wait: float) -> TooManyRequests:
    THROTTLES.labels("recovery").inc()
    return TooManyRequests("Too many password recovery attempts; try again later.", retry_after=math.ceil(wait))


async def forgot(app: web.Application, *, email: str | None, username: str | None, address: str) -> None:
    """Mail a reset code to the verified address of the account named, if there is one.

    Known and unknown accounts take the same path: the code and its sealed letter are made for every request, and
    one statement counts the attempt and writes them only when an account with a verified address matches.
    """
    settings = app[settings_key]
    secret = settings.secret_key
    code = new_code()
    wait = await models.request_password_reset(
        app[db_key],
        email=email,
        username=username,
        code_hash=code_hash(secret, "reset", code),
        letter=letter(secret, "reset_password", code=code, ip=address),
        limits=recovery_limits(settings, email=email, username=username, address=address),
        window=settings.recovery_window_seconds,
    )
    if wait is not None:
        raise _too_many(wait)


async def reset(
    app: web.Application, *, email: str | None, username: str | None, code: str, password: str, address: str
) -> None:
    """Set a new password with a reset code; every session of the user ends. 429 past the recovery limits, 422 for a
    weak password, 400 invalid_code for a wrong, used or expired code (or an account that does not exist)."""
    settings, db = app[settings_key], app[db_key]
    limits = recovery_limits(settings, email=email, username=username, address=address)
    wait = await models.claim_attempt(
        db, limits, window=settings.recovery_window_seconds, lockout=settings.recovery_window_seconds
    )
    if wait is not None:
        raise _too_many(wait)
    await app[password_policy_key].check(password, user_inputs=[username, email])
    password_hash = await app[password_hasher_key].hash(password)
    authenticator = app[authenticator_key]
    reset = await models.reset_password(
        db,
        email=email,
        username=username,
        code_hash=code_hash(settings.secret_key, "reset", code),
        max_tries=MAX_TRIES,
        password_hash=password_hash,
        cutoff=time.time(),
        ending=authenticator.ending(address, PASSWORD_RESET),
        notice=notice(settings.secret_key, "password_reset", ip=address),
        address=address,
        throttle_key=account_key(email=email, username=username),
    )
    if reset is None:
        raise BadRequest("That code is wrong, used or expired: ask for a new one.", error=INVALID_CODE)
    user_id, ended = reset
    # This worker refuses the old credentials at once; the others when the notices reach them.
    authenticator.ended(user_id, ended, PASSWORD_RESET, cut_off=True)


async def change(
    app: web.Application,
    user: User,
    *,
    current_password: str,
    password: str,
    session_id: str | None,
    address: str,
) -> None:
    """Change the signed-in user's password, given the current one (checked and throttled as a sign-in is); every
    other session of the user ends (all but `session_id`, the one asking)."""
    settings, db, hasher = app[settings_key], app[db_key], app[password_hasher_key]
    await app[password_policy_key].check(password, user_inputs=[user.username, user.email])
    throttle = LoginThrottle(db, settings, address, user.username)
    await throttle.attempt()
    with throttle.evaluating():
        stored = await models.password_hash_of(db, user.id)
        if stored is None:
            raise Unprocessable("This account signs in with Google: it has no password to change.")
        ok, _ = await hasher.verify(stored, current_password)
    if not ok:
        await throttle.failed(user.id, "wrong current password at /password/change")
        raise Forbidden("The current password is wrong.")
    authenticator = app[authenticator_key]
    ended = await models.change_password(
        db,
        user_id=user.id,
        password_hash=await hasher.hash(password),
        keep_session_id=session_id,
        ending=authenticator.ending(address, PASSWORD_CHANGE),
        notice=notice(settings.secret_key, "password_changed", ip=address),
        address=address,
        throttle_key=throttle.account_key,
        address_key=throttle.address_key,
    )
    authenticator.ended(user.id, ended, PASSWORD_CHANGE)
