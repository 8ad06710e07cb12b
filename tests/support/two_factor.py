"""Password accounts with two-factor sign-in (TOTP) turned on, and codes their authenticator would not show."""

from __future__ import annotations

import time
from typing import Any

import pyotp

from tests.support.accounts import signed_in
from tests.support.common import bearer


async def signed_in_with_totp(client: Any, username: str = "ann") -> tuple[str, pyotp.TOTP]:
    """A JWT for a new password account with TOTP on, and its authenticator."""
    token = await signed_in(client, username)
    secret = (await (await client.post("/totp/setup", headers=bearer(token))).json())["secret"]
    totp = pyotp.TOTP(secret)
    assert (await client.post("/totp/enable", json={"otp": totp.now()}, headers=bearer(token))).status == 204
    return token, totp


def wrong_code(totp: pyotp.TOTP) -> str:
    """A six-digit code `totp` does not accept now (nor in the steps around now)."""
    valid = {totp.at(time.time() + offset) for offset in (-30, 0, 30, 60)}
    return next(code for code in ("000000", "111111", "222222") if code not in valid)
