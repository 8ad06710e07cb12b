"""An account's email address: given at registration or set later, then verified by a mailed code."""

from __future__ import annotations

from aiohttp import web

import models
from auth.email_codes import INVALID_CODE, MAX_TRIES, code_hash, new_code
from auth.throttling import limit_user_rate
from core.errors import BadRequest, Conflict, Unprocessable
from core.keys import authenticator_key, db_key, settings_key
from mail.addresses import email_problem
from mail.messages import letter, notice
from models.records import User

TAKEN = "That email address belongs to another account."


def check_address(email: str) -> str:
    """`email` when it can be an account's address; 422 saying why not otherwise."""
    if problem := email_problem(email):
        raise Unprocessable(problem)
    return email


async def register(app: web.Application, *, username: str, password_hash: str, email: str, address: str) -> User:
    """Create a password account with an unverified address and mail it a code; 409 when either is taken."""
    secret = app[settings_key].secret_key
    code = new_code()
    try:
        return await models.register_with_email(
            app[db_key],
            username=username,
            password_hash=password_hash,
            email=email,
            code_hash=code_hash(secret, "verify", code),
            letter=letter(secret, "verify_email", code=code),
            address=address,
        )
    except models.UsernameTaken:
        raise Conflict("That username is already taken.") from None
    except models.EmailTaken:
        raise Conflict(TAKEN) from None


async def set_address(app: web.Application, user: User, email: str, *, address: str) -> None:
    """Make `email` the user's (unverified) address and mail it a code; the verified address it replaces is told.

    Nothing changes when it already is the verified address. 409 when another account verified it; 429 past the
    number of codes an account may have mailed in the recovery window.
    """
    settings, db = app[settings_key], app[db_key]
    await limit_user_rate(
        db, user.id, "email", limit=settings.recovery_max_per_account, window=settings.recovery_window_seconds
    )
    secret = settings.secret_key
    code = new_code()
    try:
        changed = await models.set_email(
            db,
            user_id=user.id,
            email=email,
            code_hash=code_hash(secret, "verify", code),
            code_letter=letter(secret, "verify_email", code=code),
            changed=notice(secret, "email_changed", ip=address, new_email=email),
            address=address,
        )
    except models.EmailTaken:
        raise Conflict(TAKEN) from None
    if changed:
        app[authenticator_key].directory.forget(user.id)  # this worker shows the new address at once


async def verify_address(app: web.Application, user: User, code: str, *, address: str) -> None:
    """Spend a try of the user's verification code: the address is verified when it matches; 400 invalid_code when
    it is wrong, used, expired or out of tries; 409 when another account verified the address first."""
    settings = app[settings_key]
    try:
        verified = await models.verify_email(
            app[db_key],
            user_id=user.id,
            code_hash=code_hash(settings.secret_key, "verify", code),
            max_tries=MAX_TRIES,
            address=address,
        )
    except models.EmailTaken:
        raise Conflict(TAKEN) from None
    if not verified:
        raise BadRequest("That code is wrong, used or expired: ask for a new one.", error=INVALID_CODE)
    app[authenticator_key].directory.forget(user.id)
