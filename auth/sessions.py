"""What every sign-in does with its session: open it for a client, bound its JWTs' lifetime, know its policy."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from aiohttp import web

from auth.devices import clip_user_agent, identify_async, network_of
from auth.throttling import request_address, request_user_agent
from core.shapes import SESSION_KINDS
from mail.messages import notice
from models.records import NewSession, SessionPolicy
from settings import Settings

# Session kinds, one per way of signing in (the contract's `kind`).
PASSWORD, GOOGLE, GOOGLE_WEB, PASSKEY = SESSION_KINDS


@dataclass(frozen=True, slots=True)
class Client:
    """Who signs in, as the request tells: the address (behind TRUSTED_PROXIES) and the User-Agent."""

    address: str
    user_agent: str = ""

    @classmethod
    def of(cls, request: web.Request) -> Client:
        """The client of a request."""
        return cls(request_address(request), request_user_agent(request))


def ended_retention(settings: Settings) -> int:
    """Seconds an ended session is remembered, by every worker and in the database: longer than any JWT or chatterID
    of it can live, so none of them is ever accepted again."""
    return max(settings.jwt_lifetime, settings.chatterid_lifetime) + 60


def session_policy(settings: Settings) -> SessionPolicy:
    """The idle timeout, absolute limit and retention the settings give sessions."""
    return SessionPolicy(
        idle_timeout=settings.session_idle_timeout,
        max_age=settings.session_max_age,
        keep_ended=ended_retention(settings),
    )


async def new_session(kind: str, client: Client, *, secret_key: str) -> NewSession:
    """A session to open for `client`, with a fresh opaque id, its device described, and the notice (sealed under
    `secret_key`) that goes to the user if the sign-in turns out to come from a new device."""
    user_agent = clip_user_agent(client.user_agent)
    device = await identify_async(user_agent)
    letter = notice(secret_key, "new_device", ip=client.address, device=device.description)
    return NewSession(
        str(uuid.uuid4()),
        kind,
        client.address,
        user_agent,
        device.description,
        device.family,
        network_of(client.address),
        letter,
    )


def access_lifetime(settings: Settings, session_left: float) -> int:
    """An access JWT's lifetime in seconds: JWT_LIFETIME, but never past its session's idle timeout (counted from
    now, a use) or its absolute limit, `session_left` seconds away."""
    return max(1, min(settings.jwt_lifetime, settings.session_idle_timeout, math.floor(session_left)))
