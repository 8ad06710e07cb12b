"""Time-based one-time passwords (RFC 6238) for second-factor sign-in."""

from __future__ import annotations

import hashlib
import hmac
import secrets
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


RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32, lower case: no 0/1/8/9 to confuse with letters


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Fresh single-use recovery codes of 80 random bits each, written xxxx-xxxx-xxxx-xxxx."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def hash_recovery_code(code: object) -> bytes | None:
    """The SHA-256 under which a recovery code is kept, whatever its case and dashes; None if it is not one."""
    if not isinstance(code, str) or len(code) > 64:
        return None
    normalized = code.strip().lower().replace("-", "").replace(" ", "")
    if len(normalized) != 16 or any(char not in _RECOVERY_ALPHABET for char in normalized):
        return None
    return hashlib.sha256(normalized.encode("ascii")).digest()
