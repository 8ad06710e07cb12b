"""Sign-in throttling kept in Postgres, so every worker and every server counts the same attempts."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

from aiohttp import web

import models
from auth.usernames import username_key
from core.errors import TooManyRequests
from core.keys import settings_key
from core.metrics import THROTTLES
from db.pool import Database
from settings import Settings


def client_address(request: web.Request, trusted_proxies: int) -> str:
    """The caller's address: the peer, or the entry that the nearest trusted proxy put into X-Forwarded-For."""
    if trusted_proxies > 0:
        hops = [hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")]
        hops = [hop for hop in hops if hop]
        if len(hops) >= trusted_proxies:
            return hops[-trusted_proxies][:64]
    return request.remote or "unknown"


def request_address(request: web.Request) -> str:
    """The caller's address, as this server's TRUSTED_PROXIES setting reads it."""
    return client_address(request, request.app[settings_key].trusted_proxies)


def request_user_agent(request: web.Request) -> str:
    """The caller's User-Agent, as sent (empty when none)."""
    return request.headers.get("User-Agent", "")


# How many password checks one address may have running at once on a worker.
MAX_HASHES_PER_ADDRESS = 4
_in_flight: dict[str, int] = {}  # this worker's attempts being evaluated, by address


class LoginThrottle:
    """Sign-in attempts counted per account and per address before they are evaluated; a success clears the account."""

    def __init__(
        self, db: Database, settings: Settings, address: str, username: str, *, event: str = "sign_in_failed"
    ) -> None:
        self.db = db
        self.event = event  # what a failure is audited as
        self.settings = settings
        self.address = address
        # The same key as the account lookup, so every spelling of a name (case, width, İ forms) shares one counter.
        self.account_key = f"login:user:{username_key(username)}"
        self.address_key = f"login:addr:{self.address}"

    @property
    def keys(self) -> list[str]:
        """The counters this login is judged by."""
        return [self.account_key, self.address_key]

    async def attempt(self) -> None:
        """Count this attempt against the account and the address before any work; 429 past either limit."""
        limits = {
            self.account_key: self.settings.login_max_failures,
            self.address_key: self.settings.login_max_failures_per_address,
        }
        window = self.settings.login_lockout_seconds
        wait = await models.claim_attempt(self.db, limits, window=window, lockout=window)
        if wait is not None:
            THROTTLES.labels("login").inc()
            raise TooManyRequests("Too many failed sign-ins; try again later.", retry_after=math.ceil(wait))

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Evaluate one of this address's attempts; 429 when MAX_HASHES_PER_ADDRESS of them already are.

        So no address can queue more password hashing on a worker than that, whatever the limits.
        """
        if _in_flight.get(self.address, 0) >= MAX_HASHES_PER_ADDRESS:
            THROTTLES.labels("login").inc()
            raise TooManyRequests("Too many sign-ins at once from your address; try again shortly.", retry_after=1)
        _in_flight[self.address] = _in_flight.get(self.address, 0) + 1
        try:
            yield
        finally:
            left = _in_flight[self.address] - 1
            if left:
                _in_flight[self.address] = left
            else:
                del _in_flight[self.address]

    async def failed(self, user_id: int | None, reason: str) -> None:
        """Put a failed attempt (already counted) in the audit log."""
        await models.record_event(
            self.db,
            user_id=user_id,
            event=self.event,
            kind="password",
            address=self.address,
            detail={"reason": reason},
        )


async def claim_code_attempt(db: Database, settings: Settings, user_id: int) -> str:
    """Count an attempt at the user's one-time code outside sign-in (turning TOTP off) before it is checked; 429 past
    LOGIN_MAX_FAILURES within LOGIN_LOCKOUT_SECONDS. Returns the counter's key, which a success clears."""
    key = f"totp:user:{user_id}"
    window = settings.login_lockout_seconds
    wait = await models.claim_attempt(db, {key: settings.login_max_failures}, window=window, lockout=window)
    if wait is not None:
        THROTTLES.labels("totp").inc()
        raise TooManyRequests("Too many wrong one-time codes; try again later.", retry_after=math.ceil(wait))
    return key


async def limit_rate(db: Database, address: str, kind: str, *, limit: int, window: int) -> None:
    """Count one `kind` attempt from `address`; 429 with Retry-After past `limit` in `window` seconds."""
    await _limit(db, f"{kind}:addr:{address}", kind, "from your address", limit=limit, window=window)


async def limit_user_rate(db: Database, user_id: int, kind: str, *, limit: int, window: int) -> None:
    """Count one `kind` attempt by the user; 429 with Retry-After past `limit` in `window` seconds."""
    await _limit(db, f"{kind}:user:{user_id}", kind, "for your account", limit=limit, window=window)


async def _limit(db: Database, key: str, kind: str, whose: str, *, limit: int, window: int) -> None:
    hits, age = await models.count_attempt(db, key, window=window)
    if hits > limit:
        THROTTLES.labels(kind).inc()
        message = f"Too many {kind} attempts {whose}; try again later."
        raise TooManyRequests(message, retry_after=math.ceil(window - age))
