"""Time-based one-time passwords (RFC 6238) for second-factor sign-in."""

from __future__ import annotations

import hmac
import time

import pyotp

_DIGITS = 6


def new_secret() -> str:
    """Return a fresh random base32 TOTP secret."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, account_name: str, issuer: str = "chatterd") -> str:
    """Return the otpauth:// URI an authenticator app scans to add the account."""
    return pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=issuer)


def verify_code(
    secret: str, code: object, last_step: int | None, *, now: float | None = None, window: int = 1
) -> int | None:
    """Return the time step the code matches within ±window steps of now, or None; steps <= last_step are spent."""
    # str.isdigit() alone would let other scripts' digits through; the code must be plain ASCII.
    if not isinstance(code, str) or len(code) != _DIGITS or not code.isascii() or not code.isdigit():
        return None
    if window < 0:
        raise ValueError("window must be non-negative")
    totp = pyotp.TOTP(secret, digits=_DIGITS)
    current = int((time.time() if now is None else now) // totp.interval)
    matched: int | None = None
    # Every candidate step is compared, match or not, so timing does not tell which step (if any) matched.
    for step in range(current - window, current + window + 1):
        if step < 0 or (last_step is not None and step <= last_step):
            continue
        if hmac.compare_digest(totp.at(step * totp.interval), code):
            matched = step
    return matched
