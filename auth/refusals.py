"""Addresses a shared limit has already refused, remembered per worker so a flood past the limit costs no write."""

from __future__ import annotations

import time

# The count itself stays in Postgres, shared by every worker and server; this only remembers its "no" until the
# window it was given for ends, so it can never refuse what Postgres would allow.
REFUSED_ADDRESSES_LIMIT = 10_000


class RefusedAddresses:
    """Addresses past their /adduser/ limit, each until its window ends (by this worker's monotonic clock)."""

    def __init__(self, limit: int = REFUSED_ADDRESSES_LIMIT) -> None:
        self._until: dict[str, float] = {}
        self._limit = limit

    def retry_after(self, address: str) -> float:
        """Seconds until `address` may try again, or 0 when it may now (as far as this worker knows)."""
        until = self._until.get(address)
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            del self._until[address]
            return 0.0
        return left

    def refuse(self, address: str, seconds: float) -> None:
        """Postgres said `address` is past its limit for `seconds` more."""
        if len(self._until) >= self._limit:
            now = time.monotonic()
            self._until = {key: until for key, until in self._until.items() if until > now}
            if len(self._until) >= self._limit:
                self._until.clear()
        self._until[address] = time.monotonic() + seconds
