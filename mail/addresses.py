"""Email addresses: the one check a new address must pass (kept as typed, compared without regard to case)."""

from __future__ import annotations

import re

MAX_LENGTH = 254  # RFC 5321's limit on a forward path
# A dot-atom on each side of one '@' (RFC 5322), ASCII only: no quoted local parts, no comments, no spaces.
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def email_problem(address: str) -> str | None:
    """Why `address` cannot be an account's email address (a sentence for the caller), or None when it can."""
    if "\r" in address or "\n" in address:
        return "'email' must not contain line breaks."
    if not address.isascii():
        return "'email' must be ASCII: internationalised addresses are not accepted."
    local, at, domain = address.rpartition("@")
    if not at or len(address) > MAX_LENGTH or len(local) > 64:
        return "'email' must be an address like name@example.com."
    if not _LOCAL.fullmatch(local) or not _DOMAIN.fullmatch(domain):
        return "'email' must be an address like name@example.com (no spaces, quotes or comments)."
    return None
