"""Step-up: proving again, in the current session, who you are, so that sensitive actions may go ahead."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

import models
from auth.ceremonies import RelyingParty
from auth.credentials import Credential
from auth.passkeys import REFUSED, UNVERIFIED, check_assertion
from auth.signin import check_password
from auth.throttling import LoginThrottle
from core.errors import Unauthorized
from core.keys import authenticator_key, db_key, settings_key
from core.metrics import SIGN_INS
from models.records import User

REAUTH_REQUIRED = "reauth_required"  # the contract's error code
KIND = "reauthenticate"  # how step-ups are counted among sign-ins
NEEDS_STEP_UP = (
    "This needs a recent sign-in: prove who you are again at POST /reauthenticate (your password, or a passkey), "
    "then try again."
)
SESSION_OVER = "This session has ended: sign in again."


def reauth_required(message: str = NEEDS_STEP_UP) -> Unauthorized:
    """The contract's answer to a sensitive action without a recent enough sign-in."""
    return Unauthorized(message, error=REAUTH_REQUIRED)


async def authenticated_recently(app: web.Application, credential: Credential | None) -> bool:
    """Whether the user of this credential's session proved who they are within REAUTH_MAX_AGE seconds.

    Read from the session's row, not from the credential: a step-up counts for every credential of the session at
    once, and a refresh (which proves nothing) never renews it. A credential of no session never counts.
    """
    session_id = None if credential is None else credential.session_id
    if session_id is None:
        return False
    authenticated_at = await models.session_authenticated_at(
        app[db_key], session_id=session_id, policy=app[authenticator_key].policy
    )
    return authenticated_at is not None and time.time() - authenticated_at <= app[settings_key].reauth_max_age


def _session_of(credential: Credential | None) -> str:
    session_id = None if credential is None else credential.session_id
    if session_id is None:
        raise reauth_required("This credential belongs to no session: sign in again.")
    return session_id


async def with_password(
    app: web.Application, user: User, credential: Credential | None, *, password: str, otp: object, address: str
) -> None:
    """Step up with the account's password (and one-time code when TOTP is on), counted as a sign-in attempt is."""
    settings, db = app[settings_key], app[db_key]
    session_id = _session_of(credential)
    if not await models.has_password(db, user.id):
        raise Unauthorized("This account has no password: prove who you are with a passkey, or sign in again.")
    # The same counters as /login: a stolen token buys no extra guesses.
    throttle = LoginThrottle(db, settings, address, user.username, event="reauthenticate_failed")
    checked, new_hash = await check_password(
        app, throttle, username=user.username, password=password, otp=otp, kind=KIND
    )
    if checked.id != user.id:  # the name is another account's (a Google user's name, say): not this one's password
        raise Unauthorized("Wrong password.")
    marked = await models.reauthenticated_by_password(
        db,
        user_id=user.id,
        session_id=session_id,
        policy=app[authenticator_key].policy,
        throttle_key=throttle.account_key,
        address_key=throttle.address_key,
        new_hash=new_hash,
        address=address,
    )
    if not marked:
        raise reauth_required(SESSION_OVER)
    SIGN_INS.labels(KIND, "success").inc()


async def with_passkey(
    app: web.Application,
    rp: RelyingParty,
    user: User,
    credential: Credential | None,
    *,
    assertion: dict[str, Any],
    address: str,
) -> None:
    """Step up with one of the caller's passkeys (one that verified its user, when TOTP is on)."""
    db = app[db_key]
    session_id = _session_of(credential)
    try:
        passkey, verified = await check_assertion(app, rp, assertion, user_id=user.id)
        if passkey.totp_enabled and not verified.user_verified:
            raise Unauthorized(UNVERIFIED)
    except Unauthorized as exc:
        SIGN_INS.labels(KIND, "failure").inc()
        await models.record_event(
            db,
            user_id=user.id,
            event="reauthenticate_failed",
            kind="passkey",
            address=address,
            detail={"reason": exc.message},
        )
        raise
    used, marked = await models.reauthenticated_by_passkey(
        db,
        user_id=user.id,
        session_id=session_id,
        policy=app[authenticator_key].policy,
        passkey_id=passkey.id,
        sign_count=verified.new_sign_count,
        backed_up=verified.credential_backed_up,
        address=address,
    )
    if not used:
        raise Unauthorized(f"{REFUSED}: its signature counter did not move forward.")
    if not marked:
        raise reauth_required(SESSION_OVER)
    SIGN_INS.labels(KIND, "success").inc()
