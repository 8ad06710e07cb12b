"""Passkeys: registering one, signing in with one, and the checks every assertion goes through."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from aiohttp import web
from webauthn.authentication.verify_authentication_response import VerifiedAuthentication

import models
from auth import ceremonies
from auth.ceremonies import CeremonyFailed, MalformedCredential, RelyingParty
from auth.devices import UNKNOWN as UNKNOWN_DEVICE
from auth.devices import clip_user_agent, identify_async
from auth.sessions import PASSKEY, Client, new_session, session_policy
from auth.signin import Issued, issue, new_refresh, refusal
from auth.usernames import username_key
from core.errors import Conflict, TooManyRequests, Unauthorized, Unprocessable
from core.keys import db_key, settings_key
from core.metrics import SESSIONS_OPENED, SIGN_INS, THROTTLES
from db.pool import Database
from mail.messages import notice
from models.records import (
    NotAdmitted,
    PasskeyDescriptor,
    PasskeyEntry,
    PasskeyTaken,
    RateLimited,
    StoredPasskey,
    TooManyPasskeys,
    User,
)

MAX_PASSKEYS = 20  # per user: enough for every device one owns, and a bound on what one account can store
DEFAULT_NAME = "Passkey"
REFUSED = "The passkey was refused"
# A passkey is a second factor only when it verified its user (PIN, biometrics).
UNVERIFIED = (
    "This account has two-factor sign-in on: use a passkey that verifies you (PIN or biometrics), or sign in with your "
    "password and a one-time code."
)
Parsed = TypeVar("Parsed")


def _read(parse: Callable[[dict[str, Any]], tuple[Parsed, bytes]], credential: dict[str, Any]) -> tuple[Parsed, bytes]:
    """The parsed credential and its challenge: 422 when it is not a credential's JSON form, 401 when unreadable."""
    try:
        return parse(credential)
    except MalformedCredential as exc:
        raise Unprocessable(f"'credential' is not a WebAuthn credential in its JSON form: {exc}.") from None
    except CeremonyFailed as exc:
        raise Unauthorized(f"{REFUSED}: {exc}") from None


async def start_registration(app: web.Application, rp: RelyingParty, user: User) -> dict[str, Any]:
    """Creation options for a new passkey of `user`, its challenge kept for any worker to finish the ceremony."""
    db = app[db_key]
    handle = await models.user_handle(db, user.id, ceremonies.new_user_handle())
    existing = await models.descriptors_of(db, user.id)
    challenge = ceremonies.new_challenge()
    await models.issue_challenge(
        db,
        challenge=challenge,
        purpose="register",
        user_id=user.id,
        lifetime=ceremonies.CHALLENGE_LIFETIME,
        rate_key="",
        rate_limit=0,  # signed in, and recently: bounded by what the account may do
        rate_window=1,
    )
    return ceremonies.registration_options(
        rp, username=user.username, handle=handle, challenge=challenge, existing=existing
    )


async def finish_registration(
    app: web.Application, rp: RelyingParty, user: User, credential: dict[str, Any], name: str | None, client: Client
) -> PasskeyEntry:
    """Check the authenticator's answer to this user's creation options and keep the new passkey, named as given or
    after the device it was added from ("Chrome 131 on macOS")."""
    db, settings = app[db_key], app[settings_key]
    parsed, challenge = _read(ceremonies.parse_registration, credential)
    # Taken before the checks: a challenge is spent by its first answer, right or wrong.
    taken = await models.take_challenge(db, challenge, "register")
    if taken is None or taken.user_id != user.id:
        raise Unauthorized(f"{REFUSED}: its challenge is unknown, used, expired or another user's.")
    try:
        # Some attestation formats check certificate chains: off the event loop.
        verified = await asyncio.to_thread(ceremonies.verify_registration, rp, parsed, challenge)
    except CeremonyFailed as exc:
        raise Unauthorized(f"{REFUSED}: {exc}") from None
    name = name or await _device_name(client)
    try:
        return await models.add_passkey(
            db,
            user_id=user.id,
            credential_id=verified.credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            name=name,
            transports=ceremonies.transports_of(parsed),
            backed_up=verified.credential_backed_up,
            max_count=MAX_PASSKEYS,
            address=client.address,
            notice=notice(settings.secret_key, "passkey_added", ip=client.address, name=name),
        )
    except TooManyPasskeys:
        raise Conflict(f"An account has at most {MAX_PASSKEYS} passkeys: delete one first.") from None
    except PasskeyTaken:
        raise Conflict("This passkey is already registered.") from None


async def remove(app: web.Application, user: User, passkey_id: str | None, *, address: str) -> None:
    """Remove one of the user's passkeys (None: their only one), and tell them. models.NoSuchIdentity when they have
    none such, WhichIdentity when they have several, LastWayIn when it is their last way to sign in."""
    secret_key = app[settings_key].secret_key
    await models.unlink_identity(
        app[db_key],
        user_id=user.id,
        kind="passkey",
        identity_id=passkey_id,
        address=address,
        passkey_notice=lambda name: notice(secret_key, "passkey_removed", ip=address, name=name),
    )


async def _device_name(client: Client) -> str:
    """What to call a passkey given no name: the device it was added from, when its User-Agent tells."""
    device = (await identify_async(clip_user_agent(client.user_agent))).description
    return DEFAULT_NAME if device == UNKNOWN_DEVICE else device


async def start_sign_in(app: web.Application, rp: RelyingParty, username: str | None, address: str) -> dict[str, Any]:
    """Request options: for a username, its passkeys (username-first); without one, any discoverable passkey."""
    settings, db = app[settings_key], app[db_key]
    user_id: int | None = None
    allowed: list[PasskeyDescriptor] = []
    if username:
        # An unknown name and a name without passkeys look the same: a discoverable ceremony for anyone.
        user_id, allowed = await models.descriptors_named(db, username, username_key(username))
    challenge = ceremonies.new_challenge()
    try:
        await models.issue_challenge(
            db,
            challenge=challenge,
            purpose="authenticate",
            user_id=user_id,
            lifetime=ceremonies.CHALLENGE_LIFETIME,
            rate_key=f"passkey:addr:{address}",
            rate_limit=settings.passkey_options_max_per_address,
            rate_window=settings.passkey_options_window_seconds,
        )
    except RateLimited as exc:
        THROTTLES.labels("passkey").inc()
        raise TooManyRequests(
            "Too many passkey sign-ins from your address; try again later.", retry_after=math.ceil(exc.retry_after)
        ) from None
    return ceremonies.authentication_options(rp, challenge=challenge, allowed=allowed)


async def check_assertion(
    app: web.Application, rp: RelyingParty, credential: dict[str, Any], *, user_id: int | None = None
) -> tuple[StoredPasskey, VerifiedAuthentication]:
    """The passkey behind a valid assertion (of `user_id`'s, when given) and what it proved; 401 otherwise.

    Its challenge is taken first, so that it is spent whatever the outcome: a replay, or a second use racing the
    first, finds it gone.
    """
    db = app[db_key]
    parsed, challenge = _read(ceremonies.parse_assertion, credential)
    taken = await models.take_challenge(db, challenge, "authenticate")
    if taken is None:
        raise Unauthorized(f"{REFUSED}: its challenge is unknown, used or expired.")
    passkey = await models.passkey_by_credential(db, parsed.raw_id)
    if passkey is None:
        raise Unauthorized(f"{REFUSED}: it is not registered here.")
    owner = passkey.user.id
    # The challenge's user (username-first), the caller (step-up) and the handle the authenticator keeps with the
    # passkey must all be its owner.
    expected = {taken.user_id, user_id} - {None}
    handle = parsed.response.user_handle
    if expected - {owner} or (handle is not None and handle != passkey.user_handle):
        raise Unauthorized(f"{REFUSED}: it belongs to another account.")
    try:
        verified = ceremonies.verify_assertion(
            rp, parsed, challenge, public_key=passkey.public_key, sign_count=passkey.sign_count
        )
    except CeremonyFailed as exc:
        raise Unauthorized(f"{REFUSED}: {exc}") from None
    return passkey, verified


async def _refused(db: Database, address: str, user_id: int | None, refusal: Unauthorized) -> NoReturn:
    """Count and audit a refused passkey sign-in (under the passkey's owner once it is known), then refuse it."""
    SIGN_INS.labels("passkey", "failure").inc()
    detail = {"reason": refusal.message}
    await models.record_event(
        db, user_id=user_id, event="sign_in_failed", kind="passkey", address=address, detail=detail
    )
    raise refusal


async def sign_in(app: web.Application, rp: RelyingParty, credential: dict[str, Any], client: Client) -> Issued:
    """Sign in with a passkey and open a session of kind `passkey`: a valid assertion, with user verification when the
    account has TOTP on (a passkey that verified its user counts as both factors)."""
    settings, db, address = app[settings_key], app[db_key], client.address
    try:
        passkey, verified = await check_assertion(app, rp, credential)
    except Unauthorized as exc:
        await _refused(db, address, None, exc)
    user = passkey.user
    if passkey.banned_until is not None and passkey.banned_until > time.time():
        SIGN_INS.labels("passkey", "banned").inc()
        raise refusal(NotAdmitted(banned=True))
    if passkey.totp_enabled and not verified.user_verified:
        await _refused(db, address, user.id, Unauthorized(UNVERIFIED))
    refresh_token, refresh = new_refresh(settings)
    session = await new_session(PASSKEY, client, secret_key=settings.secret_key)
    try:
        completed = await models.complete_passkey_sign_in(
            db,
            passkey_id=passkey.id,
            sign_count=verified.new_sign_count,
            backed_up=verified.credential_backed_up,
            session=session,
            policy=session_policy(settings),
            refresh=refresh,
            address=address,
        )
    except NotAdmitted as exc:  # banned or deleted since the passkey was read
        SIGN_INS.labels("passkey", "banned").inc()
        raise refusal(exc) from None
    if not completed:
        await _refused(db, address, user.id, Unauthorized(f"{REFUSED}: its signature counter did not move forward."))
    # Who the user is now (name, role), read after the writes: a change answered meanwhile is never minted.
    standing = await models.user_standing(db, user.id)
    if standing is None:  # deleted meanwhile
        await _refused(db, address, user.id, Unauthorized(f"{REFUSED}: its account is gone."))
    SIGN_INS.labels("passkey", "success").inc()
    SESSIONS_OPENED.labels(PASSKEY).inc()
    return issue(
        app, standing.user, session.id, refresh_token, settings.session_max_age, standing_version=standing.version
    )
