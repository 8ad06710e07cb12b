"""The typed records the model functions return and the domain errors they raise; no SQL here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class User:
    """A signed-in caller."""

    id: int
    username: str
    role: str


class UnknownChatt(Exception):
    """No chatt has the given id."""


class ChattRefused(Exception):
    """The database refused to store a chatt (a constraint it breaks); the message names the constraint."""


class PosterGone(ChattRefused):
    """A chatt's user was deleted while it was being stored (after the statement's snapshot, before its insert)."""


class RateLimited(Exception):
    """Too many attempts from one address; `retry_after` seconds until the window ends."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class UsernameTaken(Exception):
    """Another password account already has this username."""


@dataclass(frozen=True, slots=True)
class Account:
    """A password account as login needs it."""

    user: User | None
    password_hash: str | None
    totp_secret: str | None
    totp_enabled: bool
    totp_last_step: int | None


@dataclass(frozen=True, slots=True)
class NewRefreshToken:
    """Where a new refresh token goes: its hash, its family and how long it lives (seconds)."""

    token_hash: bytes
    family_id: str
    lifetime: int


@dataclass(frozen=True, slots=True)
class Refreshed:
    """The outcome of presenting a refresh token: the user and family when it may be rotated, else why not."""

    user: User | None
    family_id: str | None
    reuse_detected: bool = False


@dataclass(frozen=True, slots=True)
class Revocations:
    """What a worker must refuse: JWT ids and refresh-token families (each with a time)."""

    jtis: dict[str, float]
    families: dict[str, float]


@dataclass(frozen=True, slots=True)
class Standing:
    """What decides whether a user's credentials work, and as whom: read fresh, never from a token."""

    user: User
    tokens_valid_after: float  # epoch seconds: JWTs issued up to then are refused (log out everywhere)
    banned_until: float | None  # epoch seconds
    deleted: bool
    version: int  # drawn anew by every change to the above (sql/0006); JWTs carry the one they were minted from

    def admits(self, issued_at: float | None, now: float) -> bool:
        """Whether a credential issued at `issued_at` (None: not a JWT) may act for this user at `now`."""
        if self.deleted or (self.banned_until is not None and self.banned_until > now):
            return False
        return issued_at is None or issued_at > self.tokens_valid_after


class PasskeyTaken(Exception):
    """That credential is already registered (to this user or another)."""


class TooManyPasskeys(Exception):
    """The user already has as many passkeys as one may have."""


@dataclass(frozen=True, slots=True)
class PasskeyDescriptor:
    """A registered credential as ceremony options name it: its id and how the authenticator can be reached."""

    credential_id: bytes
    transports: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoredPasskey:
    """A registered credential with what an assertion is checked against, and its user's sign-in state."""

    id: str
    user: User
    public_key: bytes
    sign_count: int
    user_handle: bytes | None
    totp_enabled: bool
    banned_until: float | None  # epoch seconds


@dataclass(frozen=True, slots=True)
class PasskeyEntry:
    """A passkey as its owner sees it in the list."""

    id: str
    name: str
    created_at: str  # ISO 8601 UTC
    last_used_at: str | None
