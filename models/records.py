"""The typed records the model functions return and the domain errors they raise; no SQL here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class User:
    """A signed-in caller; the address and whether it is verified come with the standing (else unknown: None)."""

    id: int
    username: str
    role: str
    email: str | None = None
    email_verified: bool = False


class UnknownChatt(Exception):
    """No chatt has the given id."""


class RateLimited(Exception):
    """Too many attempts from one address; `retry_after` seconds until the window ends."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class UsernameTaken(Exception):
    """Another password account already has this username."""


class EmailTaken(Exception):
    """Another account has verified this email address."""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message the outbox holds for delivery: where it goes, its kind, its sealed parameters, the current name of
    the user it is about (None once deleted), how many attempts it had, and its age in seconds."""

    id: int
    recipient: str
    kind: str
    sealed: bytes | None
    username: str | None
    attempts: int
    age: float


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

    def admits(self, issued_at: float | None, now: float) -> bool:
        """Whether a credential issued at `issued_at` (None: not a JWT) may act for this user at `now`."""
        if self.deleted or (self.banned_until is not None and self.banned_until > now):
            return False
        return issued_at is None or issued_at > self.tokens_valid_after
