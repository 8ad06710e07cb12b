"""Sign-in throttling kept in Postgres, so every worker and every server counts the same attempts."""

from __future__ import annotations

import math

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


class LoginThrottle:
    """Failed logins counted per account and per address; past the limit both right and wrong passwords wait."""

    def __init__(self, db: Database, settings: Settings, address: str, username: str) -> None:
        self.db = db
        self.settings = settings
        self.address = address
        # The same key as the account lookup, so every spelling of a name (case, width, İ forms) shares one counter.
        self.account_key = f"login:user:{username_key(username)}"
        self.address_key = f"login:addr:{self.address}"

    @property
    def keys(self) -> list[str]:
        """The counters this login is judged by."""
        return [self.account_key, self.address_key]

    def check(self, locked_for: float) -> None:
        """429 with Retry-After while any of the counters is locked."""
        if locked_for > 0:
            THROTTLES.labels("login").inc()
            raise TooManyRequests("Too many failed sign-ins; try again later.", retry_after=math.ceil(locked_for))

    async def failed(self, user_id: int | None, reason: str) -> None:
        """Count a failure against the account and the address (and put it in the audit log)."""
        limits = {
            self.account_key: self.settings.login_max_failures,
            self.address_key: self.settings.login_max_failures_per_address,
        }
        window = self.settings.login_lockout_seconds
        await models.record_failures(
            self.db, limits, window=window, lockout=window, user_id=user_id, address=self.address, reason=reason
        )


async def limit_rate(db: Database, address: str, kind: str, *, limit: int, window: int) -> None:
    """Count one `kind` attempt from `address`; 429 with Retry-After past `limit` in `window` seconds."""
    hits, age = await models.count_attempt(db, f"{kind}:addr:{address}", window=window)
    if hits > limit:
        THROTTLES.labels(kind).inc()
        raise TooManyRequests(
            f"Too many {kind} attempts from your address; try again later.", retry_after=math.ceil(window - age)
        )
