"""The typed records the model functions return and the domain errors they raise; no SQL here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mail.messages import Letter


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


class NotAdmitted(Exception):
    """A sign-in found its user banned (`banned`) or deleted, and opened no session."""

    def __init__(self, *, banned: bool) -> None:
        super().__init__("banned" if banned else "deleted")
        self.banned = banned


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
    banned: bool = False


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session a sign-in opens: its listed id, its kind, the client it was opened from (its device as listed, and
    as new-device notices compare devices: family and network), and the notice its user gets if that is new."""

    id: str
    kind: str  # password, google, google_web or passkey
    ip: str
    user_agent: str
    device: str
    family: str
    network: str
    new_device_notice: Letter


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How long sessions last (seconds): idle, at most, and how long an ended one is kept (its JWTs' lifetime)."""

    idle_timeout: int
    max_age: int
    keep_ended: int

    def params(self) -> dict[str, int]:
        """The SQL parameters the session statements share."""
        return {"idle_timeout": self.idle_timeout, "session_max_age": self.max_age, "keep_ended": self.keep_ended}


@dataclass(frozen=True, slots=True)
class Ending:
    """Why sessions end and how it is told: the audit event (and kind), the reason each session keeps, the address
    it came from, the notice that makes every worker refuse a session at once, and the letter (if any) that tells
    the user at their verified address."""

    event: str
    reason: str
    address: str
    notice_for: Callable[[str], str]
    kind: str | None = None
    letter: Letter | None = None


@dataclass(frozen=True, slots=True)
class NewRefreshToken:
    """Where a new refresh token goes: its hash and how long it lives (seconds); its session is the sign-in's."""

    token_hash: bytes
    lifetime: int


@dataclass(frozen=True, slots=True)
class Refreshed:
    """The outcome of presenting a refresh token: the user and session when it was rotated, else why not.

    `expires_in` is how many seconds the session has left before its absolute limit; `retry_after` is set when the
    session refreshed too often; `banned` when its user is banned.
    """

    user: User | None
    session_id: str | None
    expires_in: float = 0.0
    reuse_detected: bool = False
    retry_after: float | None = None
    banned: bool = False


@dataclass(frozen=True, slots=True)
class Revocations:
    """What a worker must refuse: logged-out JWT ids (with their expiry) and ended sessions (with when)."""

    jtis: dict[str, float]
    sessions: dict[str, float]


@dataclass(frozen=True, slots=True)
class ChatterIdOwner:
    """Whom a live chatterID acts for: its user and session, and when it expires (epoch seconds)."""

    user_id: int
    session_id: str
    expires_at: float


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


class UnknownUser(Exception):
    """No (undeleted) user has the given id."""


class IdentityTaken(Exception):
    """That Google account is already another user's."""


class HasPassword(Exception):
    """The user already has a password."""


class TooManyIdentities(Exception):
    """The user has as many Google accounts linked as one may have."""


class NoSuchIdentity(Exception):
    """The user has no identity of that kind (or with that id)."""


class WhichIdentity(Exception):
    """The user has several identities of that kind: the one meant must be named."""


class LastWayIn(Exception):
    """Removing this would leave the user no way to sign in."""


class LastAdmin(Exception):
    """This would leave no admin who can act (not banned, not deleted)."""


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


@dataclass(frozen=True, slots=True)
class AccountSecurity:
    """What the page shows of a signed-in account beside its name: how to protect it, and how this session signed in."""

    has_password: bool  # TOTP guards password sign-ins: an account without a password (Google only) cannot use it
    totp_enabled: bool
    recovery_codes_left: int
    session_kind: str | None  # password, google, google_web or passkey; None for a credential without a session
