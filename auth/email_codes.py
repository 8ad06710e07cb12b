"""The 6-digit codes mailed for verification and password reset: made at random, kept only as an HMAC."""

from __future__ import annotations

import hashlib
import hmac
import secrets

CODE_DIGITS = 6
MAX_TRIES = 5  # tries per code, each counted before it is compared; then the code is dead
INVALID_CODE = "invalid_code"  # the contract's error code for a wrong, used, expired or dead code


def new_code() -> str:
    """Six random decimal digits."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(secret_key: str, purpose: str, code: str) -> bytes:
    """What the database keeps of a code: an HMAC under SECRET_KEY, so a copy of the database cannot be tried
    offline against the million possible codes. Any text hashes (and then matches nothing), so a malformed code
    costs a try like a wrong one."""
    message = f"email code\x00{purpose}\x00{code.strip()}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
