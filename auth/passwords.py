"""Argon2id password hashing, run in an executor so it never blocks the event loop."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import os

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import ARGON2_VERSION
from argon2.profiles import get_default_parameters


def _b64(data: bytes) -> str:
    """Encode bytes the way argon2's PHC strings do: standard base64 without padding."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


class PasswordHasher:
    """Hashes and verifies passwords with argon2id, off the event loop."""

    __slots__ = ("_dummy_hash", "_executor", "_hasher")

    def __init__(
        self,
        *,
        time_cost: int | None = None,
        memory_cost: int | None = None,
        parallelism: int | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        """Use the library's argon2id defaults unless parameters are given; None executor means the loop's default."""
        defaults = get_default_parameters()
        self._hasher = argon2.PasswordHasher(
            time_cost=defaults.time_cost if time_cost is None else time_cost,
            memory_cost=defaults.memory_cost if memory_cost is None else memory_cost,
            parallelism=defaults.parallelism if parallelism is None else parallelism,
            hash_len=defaults.hash_len,
            salt_len=defaults.salt_len,
            type=argon2.Type.ID,
        )
        self._executor = executor
        # Unknown users are checked against this so they cost a full argon2 run, like a wrong password, and
        # usernames cannot be probed by timing. Random bytes in a well-formed encoding with our parameters do
        # exactly that and never match, without running argon2 here (construction may happen on the loop).
        hasher = self._hasher
        self._dummy_hash = (
            f"$argon2id$v={ARGON2_VERSION}$m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
            f"${_b64(os.urandom(hasher.salt_len))}${_b64(os.urandom(hasher.hash_len))}"
        )

    async def hash(self, password: str) -> str:
        """Return the encoded argon2id hash of the password."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> tuple[bool, str | None]:
        """Return (matches, new hash if the stored one used other parameters, else None)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._verify_sync, stored_hash, password)

    def _verify_sync(self, stored_hash: str | None, password: str) -> tuple[bool, str | None]:
        """Blocking body of verify(), run in the executor."""
        if stored_hash is None:
            with contextlib.suppress(VerificationError, InvalidHashError):
                self._hasher.verify(self._dummy_hash, password)
            return False, None
        try:
            self._hasher.verify(stored_hash, password)
        # VerifyMismatchError is a VerificationError; a corrupt stored hash is a failed sign-in, not a 500.
        except (VerificationError, InvalidHashError):
            return False, None
        try:
            needs_rehash = self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            # It verified, so argon2 could parse it; an odd encoding is still worth replacing.
            needs_rehash = True
        return True, self._hasher.hash(password) if needs_rehash else None
