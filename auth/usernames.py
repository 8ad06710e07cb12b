"""Usernames: the one comparison key (NFKC and case folding) and the rules a new password username must follow."""

from __future__ import annotations

import unicodedata

# Control (Cc), format (Cf: zero-width joiners, bidi overrides), surrogate (Cs), unassigned (Cn) code points and
# line/paragraph separators (Zl, Zp) are invisible or render unpredictably: a name holding one looks like another.
_REFUSED_CATEGORIES = {"Cc": "control", "Cf": "invisible formatting", "Cs": "surrogate", "Cn": "unassigned"}
_REFUSED_CATEGORIES |= {"Zl": "line separator", "Zp": "paragraph separator"}
# NFKC(casefold(NFKC(s))) is already a fixed point for every code point and every mix of them tried; the extra rounds
# are a guard so that the key of a key is the key itself whatever Unicode version Python ships.
_MAX_ROUNDS = 4


def username_key(username: str) -> str:
    """The form usernames are compared and keyed by: NFKC, Unicode case folding, NFKC again (RFC 8265's spirit)."""
    # Computed here and only here: Postgres' lower() disagrees with Python on characters such as U+0130 (İ), and
    # Postgres has no case folding, so the database stores this key rather than computing one of its own.
    key = unicodedata.normalize("NFKC", username)
    for _ in range(_MAX_ROUNDS):
        folded = unicodedata.normalize("NFKC", key.casefold())
        if folded == key:
            break
        key = folded
    return key


def username_problem(username: str) -> str | None:
    """Why `username` cannot be a new password username (a sentence for the caller), or None when it can."""
    if username != username.strip():
        return "'username' must not start or end with spaces."
    for char in username:
        kind = _REFUSED_CATEGORIES.get(unicodedata.category(char))
        if kind is not None:
            return f"'username' must not contain {kind} characters (U+{ord(char):04X})."
    key = username_key(username)
    # A compatibility character can fold into spaces or controls (U+00A8 becomes a space and a combining diaeresis).
    if not key or key != key.strip() or any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in key):
        return "'username' must not fold into a name that starts or ends with spaces or holds invisible characters."
    return None
