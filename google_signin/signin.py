"""Signing in with Google, each way one call: an ID token from an app (/adduser/) or a code from the web flow."""

from __future__ import annotations

import hmac
import logging
import math
import time
from dataclasses import dataclass

from aiohttp import web

import models
from auth.sessions import GOOGLE, GOOGLE_WEB, Client, new_session, session_policy
from auth.signin import Issued, issue, mint_for_session, new_refresh, refusal
from auth.throttling import limit_rate
from auth.tokens import new_chatter_id
from core.errors import ServiceUnavailable, TooManyRequests, Unauthorized
from core.keys import (
    db_key,
    google_certs_key,
    google_discovery_key,
    http_session_key,
    refused_addresses_key,
    settings_key,
)
from core.metrics import SESSIONS_OPENED, SIGN_INS, THROTTLES
from google_signin.idtoken import GoogleIdentity, InvalidIdToken, verify_id_token
from google_signin.oidc import DiscoveryUnavailable, ProviderMetadata, ProviderUnavailable, TokenRefused, exchange_code
from google_signin.web_flow import Flow
from models.records import NotAdmitted, User

logger = logging.getLogger(__name__)

CLOCK_SKEW = 50
NO_NAME = "Profile NA"
MAX_NAME = 255


def too_many(retry_after: float) -> TooManyRequests:
    """The 429 of a flooded /adduser/."""
    THROTTLES.labels("adduser").inc()
    return TooManyRequests(
        "Too many adduser attempts from your address; try again later.", retry_after=math.ceil(retry_after)
    )


def refuse_if_flooding(app: web.Application, address: str) -> None:
    """429 when the shared /adduser/ limit already refused this address and its window has not ended: before any
    work, the body's included."""
    waiting = app[refused_addresses_key].retry_after(address)
    if waiting > 0:
        raise too_many(waiting)


@dataclass(frozen=True, slots=True)
class AppSignIn:
    """What /adduser/ hands out: a chatterID (and its lifetime in seconds) beside the JWT and refresh token."""

    issued: Issued
    chatter_id: str
    lifetime: int


def display_name(identity: GoogleIdentity) -> str:
    """The username a Google account gets: its `name` claim, or the contract's placeholder."""
    return (identity.name or NO_NAME)[:MAX_NAME]


async def verify_app_id_token(app: web.Application, *, client_id: str, id_token: str) -> GoogleIdentity:
    """The Google account an app's ID token names, checked as /adduser/ checks it: `clientID` one of
    GOOGLE_CLIENT_IDS (401 otherwise), then the token's signature, issuer, audience, times and hosted domain
    (InvalidIdToken, a 401)."""
    settings = app[settings_key]
    if settings.google_client_ids:
        if client_id not in settings.google_client_ids:
            raise Unauthorized("This clientID is not accepted here.")
        audiences: tuple[str, ...] = settings.google_client_ids
    else:
        audiences = (client_id,)  # the original lab's behaviour; a warning at start says so
    return await verify_id_token(
        id_token,
        app[google_certs_key],
        audiences=audiences,
        hosted_domain=settings.google_hosted_domain,
        clock_skew=CLOCK_SKEW,
    )


async def with_id_token(
    app: web.Application, *, client_id: str, id_token: str, address: str, user_agent: str = ""
) -> AppSignIn:
    """Verify a Google ID token, find or create its user, and open a session: a chatterID, a JWT, a refresh token."""
    settings = app[settings_key]
    refuse_if_flooding(app, address)
    try:
        identity = await verify_app_id_token(app, client_id=client_id, id_token=id_token)
    except InvalidIdToken:
        SIGN_INS.labels("google", "failure").inc()
        raise
    # A chatterID never outlives the ID token it came from, nor CHATTERID_LIFETIME.
    lifetime = min(identity.expires_at - int(time.time()) + 1, settings.chatterid_lifetime)
    if lifetime <= 0:
        raise Unauthorized("The ID token has expired.")
    chatter_id, chatter_id_hash = new_chatter_id()
    refresh_token, refresh = new_refresh(settings)
    session = await new_session(GOOGLE, Client(address, user_agent), secret_key=settings.secret_key)
    try:
        user = await models.sign_in_google_user(
            app[db_key],
            sub=identity.sub,
            username=display_name(identity),
            email=identity.email,
            chatter_id_hash=chatter_id_hash,
            lifetime=lifetime,
            session=session,
            policy=session_policy(settings),
            refresh=refresh,
            address=address,
            rate_key=f"adduser:addr:{address}",
            rate_limit=settings.adduser_max_per_address,
            rate_window=settings.adduser_window_seconds,
        )
    except models.RateLimited as exc:
        app[refused_addresses_key].refuse(address, exc.retry_after)
        raise too_many(exc.retry_after) from None
    except NotAdmitted as exc:
        SIGN_INS.labels("google", "banned").inc()
        raise refusal(exc) from None
    SIGN_INS.labels("google", "success").inc()
    SESSIONS_OPENED.labels(GOOGLE).inc()
    issued = issue(app, user, session.id, refresh_token, settings.session_max_age)
    return AppSignIn(issued, chatter_id, lifetime)


async def provider(app: web.Application) -> ProviderMetadata:
    """Google's endpoints from the cached discovery document; 503 with Retry-After when it is unavailable."""
    try:
        return await app[google_discovery_key].get()
    except DiscoveryUnavailable as exc:
        raise ServiceUnavailable(
            "Google's sign-in configuration is unavailable; try again shortly.", retry_after=exc.retry_after
        ) from None


async def with_web_code(
    app: web.Application,
    *,
    flow: Flow,
    code: str,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    address: str,
    user_agent: str = "",
) -> tuple[User, str, int]:
    """Trade the web flow's code for an ID token, check it and its nonce, find or create the user, open a session.

    Returns the user, and the session's access JWT for the login cookie with its lifetime.
    """
    settings = app[settings_key]
    await limit_rate(
        app[db_key],
        address,
        "Google sign-in",
        limit=settings.adduser_max_per_address,
        window=settings.adduser_window_seconds,
    )
    endpoints = await provider(app)
    try:
        id_token = await exchange_code(
            app[http_session_key],
            endpoints.token_endpoint,
            code=code,
            redirect_uri=redirect_uri,
            client_id=client_id,
            client_secret=client_secret,
            code_verifier=flow.code_verifier,
            time_limit=settings.http_client_timeout,
        )
    except TokenRefused as exc:
        SIGN_INS.labels("google_web", "failure").inc()
        if exc.error in {"invalid_client", "unauthorized_client"}:
            logger.error("Google refused our client (%s): check GOOGLE_CLIENT_SECRET and the client ID", exc.error)
        raise Unauthorized(f"Google refused the sign-in code ({exc.error}); start again.") from None
    except ProviderUnavailable as exc:
        SIGN_INS.labels("google_web", "unavailable").inc()
        logger.warning("Google web sign-in: %s", exc)
        raise ServiceUnavailable(
            "Google's token endpoint is unavailable; try again shortly.", retry_after=settings.retry_after
        ) from None

    try:
        identity = await verify_id_token(
            id_token,
            app[google_certs_key],
            audiences=(client_id,),
            hosted_domain=settings.google_hosted_domain,
            clock_skew=CLOCK_SKEW,
        )
    except InvalidIdToken:
        SIGN_INS.labels("google_web", "failure").inc()
        raise
    if identity.nonce is None or not hmac.compare_digest(identity.nonce.encode(), flow.nonce.encode()):
        SIGN_INS.labels("google_web", "failure").inc()
        raise Unauthorized("The ID token was refused: its nonce is not this sign-in's.")
    session = await new_session(GOOGLE_WEB, Client(address, user_agent), secret_key=settings.secret_key)
    try:
        user = await models.upsert_google_user(
            app[db_key],
            sub=identity.sub,
            username=display_name(identity),
            email=identity.email,
            session=session,
            policy=session_policy(settings),
            address=address,
        )
    except NotAdmitted as exc:
        SIGN_INS.labels("google_web", "banned").inc()
        raise refusal(exc) from None
    SIGN_INS.labels("google_web", "success").inc()
    SESSIONS_OPENED.labels(GOOGLE_WEB).inc()
    token, lifetime = mint_for_session(app, user, session.id, settings.session_max_age)
    return user, token, lifetime
