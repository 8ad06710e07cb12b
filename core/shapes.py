"""The contract's request shapes and limits, declared once: bodies.py checks requests and openapi.py documents them."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any, Generic, NamedTuple, TypeVar, get_args, get_origin, get_type_hints

# The order is the documentation's; the auth code only tests membership.
ROLES: tuple[str, ...] = ("user", "moderator", "admin")
# A session's kind says how it was signed in (sql/0008_sessions.sql checks the same list).
SESSION_KINDS: tuple[str, ...] = ("password", "google", "google_web", "passkey")


@dataclass(frozen=True, slots=True)
class Text:
    """A string field: its length in characters, other keys it may come under, and what only the docs say."""

    max_length: int
    min_length: int = 1
    aliases: tuple[str, ...] = ()  # tried in order when the field's own key is absent
    ascii: bool = False  # only ASCII characters, as in a URI
    prefix: str = ""  # the value must start with it
    format: str = ""  # an OpenAPI hint for clients, such as "password"
    description: str = ""


@dataclass(frozen=True, slots=True)
class JsonObject:
    """An object field: the body only has to hold a JSON object there; its reader checks what is inside, and the
    component schema named `schema` documents it."""

    schema: str
    description: str = ""


class Field(NamedTuple):
    """One field of a shape: its key, what it holds (text, or an object) and whether the body must carry it."""

    name: str
    spec: Text | JsonObject
    required: bool


# A request body shape: a NamedTuple whose fields are `Annotated[str, Text(...)]` (or `Annotated[dict[str, Any],
# JsonObject(...)]`), or `Annotated[str | None, Text(...)] = None` when optional (absent or null: None). Fields are
# checked in their order.
Shape = TypeVar("Shape", bound=NamedTuple)


@functools.cache
def fields_of(shape: type[NamedTuple]) -> tuple[Field, ...]:
    """The fields a shape declares, in order."""
    hints = get_type_hints(shape, include_extras=True)
    fields = []
    for name in shape._fields:
        hint = hints[name]
        extras = get_args(hint)[1:] if get_origin(hint) is Annotated else ()
        specs = [extra for extra in extras if isinstance(extra, Text | JsonObject)]
        if len(specs) != 1:
            raise TypeError(f"{shape.__name__}.{name} must be annotated with one Text(...) or JsonObject(...)")
        required = name not in shape._field_defaults
        if not required and shape._field_defaults[name] is not None:
            raise TypeError(f"{shape.__name__}.{name}: an optional field defaults to None")
        fields.append(Field(name, specs[0], required))
    return tuple(fields)


DefaultT = TypeVar("DefaultT", int, None)


@dataclass(frozen=True, slots=True)
class IntQuery(Generic[DefaultT]):
    """A whole-number query parameter: its bounds, and its value when absent (None: the caller leaves it out)."""

    name: str
    minimum: int
    maximum: int
    default: DefaultT
    description: str = ""
    example: int | None = None


# ---- answers -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chatt:
    """A chatt as GET /chatts (the page's read) lists it: /getchatts/'s four fields by name, and whether it is signed
    (posted by a signed-in user, under that user's name) or anonymous (under any name the poster typed)."""

    id: str
    username: str
    message: str
    timestamp: str
    signed: bool


# ---- query parameters --------------------------------------------------------------------------------------------

CHATTS_LIMIT = IntQuery("limit", 1, 1000, default=1000, description="Return the newest `limit` chatts.", example=50)
AUDIT_LIMIT = IntQuery("limit", 1, 1000, default=100, description="How many events, at most.")
# Ids are Postgres bigints; 2**62 keeps well inside them.
AUDIT_BEFORE = IntQuery("before", 1, 2**62, default=None, description="Only events older than the one with this id.")
AUDIT_USER_ID = IntQuery("user_id", 1, 2**62, default=None, description="Only events of this user.")

ADMIN_USERS_LIMIT = IntQuery("limit", 1, 200, default=50, description="How many users, at most.", example=20)
# The longest search text GET /admin/users takes (`q`).
ADMIN_SEARCH_MAX = 100
# GET /admin/users/{id} lists at most this many of the user's live sessions, the newest.
ADMIN_SESSIONS_LISTED = 100

# GET /sessions lists at most this many, the newest.
SESSIONS_LISTED = 500

# The kinds of identity (ways to sign in) a user may have, as GET /identities lists them.
IDENTITY_KINDS: tuple[str, ...] = ("password", "google", "passkey")
# How many Google accounts one user may link.
GOOGLE_ACCOUNTS_PER_USER = 10


# ---- request bodies ----------------------------------------------------------------------------------------------

MESSAGE = Text(1000)  # a chatt's, whichever way it is posted


class PostChatt(NamedTuple):
    """POST /postchatt/: a chatt under a username the client chooses (given as `username`, or as `name`)."""

    username: Annotated[str, Text(255, aliases=("name",))]
    message: Annotated[str, MESSAGE]


class AddUser(NamedTuple):
    """POST /adduser/: a Google ID token and the OAuth client it was issued to."""

    clientID: Annotated[str, Text(512)]
    idToken: Annotated[str, Text(8192)]


class PostAuth(NamedTuple):
    """POST /postauth/: a chatt under the caller's own username."""

    message: Annotated[str, MESSAGE]
    # The auth middleware reads it and takes any credential there, JWTs too, which auth/tokens.py caps at 4096.
    chatterID: Annotated[str | None, Text(4096, description="May instead come from the Authorization header.")] = None


NEW_PASSWORD = Text(
    256,
    min_length=8,
    format="password",
    description="Refused (422) when too easy to guess or, where a breach list is configured, known breached.",
)
EMAIL = Text(
    254, min_length=3, ascii=True, format="email", description="An email address; kept as typed, compared without case."
)
USERNAME = Text(64)


class Register(NamedTuple):
    """POST /register: a new password account, with an email address to verify if given."""

    username: Annotated[str, USERNAME]
    password: Annotated[str, NEW_PASSWORD]
    email: Annotated[str | None, EMAIL] = None


LOGIN_OTP = "The current TOTP code (or an unused recovery code), when the account has TOTP on."


class Login(NamedTuple):
    """POST /login: a password sign-in, with a one-time code when the account has TOTP on."""

    username: Annotated[str, USERNAME]
    password: Annotated[str, Text(256, format="password")]
    # Empty is the same as absent: a form's untouched input sends it so.
    otp: Annotated[str | None, Text(64, min_length=0, description=LOGIN_OTP)] = None


class Refresh(NamedTuple):
    """POST /token/refresh: the refresh token to rotate."""

    refresh_token: Annotated[str, Text(256)]


class Otp(NamedTuple):
    """POST /totp/enable: a code from the secret /totp/setup gave."""

    otp: Annotated[str, Text(16, description="A code from the secret /totp/setup gave.")]


class OtpOrRecoveryCode(NamedTuple):
    """POST /totp/disable: a current code or an unused recovery code."""

    otp: Annotated[str, Text(64, description="A current TOTP code, or an unused recovery code.")]


class SetEmail(NamedTuple):
    """POST /email: the caller's new address; a code goes to it."""

    email: Annotated[str, EMAIL]


EMAILED_CODE = Text(32, description="The 6-digit code from the email.")


class VerifyEmail(NamedTuple):
    """POST /email/verify: the code mailed to the caller's address."""

    code: Annotated[str, EMAILED_CODE]


# An account named by its verified address or by its username: exactly one of the two.
ACCOUNT_EMAIL = Text(
    254, min_length=3, ascii=True, format="email", description="The account's verified address (or `username`)."
)
ACCOUNT_NAME = Text(64, description="The account's username (or `email`).")


class ForgotPassword(NamedTuple):
    """POST /password/forgot: the account to mail a reset code to, by its verified address or its username."""

    email: Annotated[str | None, ACCOUNT_EMAIL] = None
    username: Annotated[str | None, ACCOUNT_NAME] = None


class ResetPassword(NamedTuple):
    """POST /password/reset: the code mailed by /password/forgot, and the new password."""

    code: Annotated[str, EMAILED_CODE]
    password: Annotated[str, NEW_PASSWORD]
    email: Annotated[str | None, ACCOUNT_EMAIL] = None
    username: Annotated[str | None, ACCOUNT_NAME] = None


class ChangePassword(NamedTuple):
    """POST /password/change: the current password and the new one."""

    current_password: Annotated[str, Text(256, format="password")]
    password: Annotated[str, NEW_PASSWORD]


class OtpauthUri(NamedTuple):
    """POST /totp/qr: the otpauth:// URI to draw."""

    # ASCII, as every URI is: then 1024 characters are 1024 bytes, well within what a QR code holds (2331 at level M).
    uri: Annotated[str, Text(1024, min_length=10, ascii=True, prefix="otpauth://")]


class AddPassword(NamedTuple):
    """POST /identities/password: a login name and password for a user who signs in with Google only."""

    username: Annotated[str, USERNAME]
    password: Annotated[str, NEW_PASSWORD]


class RoleChange(NamedTuple):
    """PUT /admin/users/{id}/role: the user's new role."""

    role: Annotated[str, Text(32, description="One of " + ", ".join(ROLES) + ".")]


class Ban(NamedTuple):
    """POST /admin/users/{id}/ban: until when (absent: with no end), and why."""

    until: Annotated[
        str | None,
        Text(64, description="When the ban ends: an ISO 8601 time with its offset (Z or ±hh:mm), in the future."),
    ] = None
    reason: Annotated[str | None, Text(500, description="Why, for admins; the user is not told.")] = None


PASSKEY_NAME = Text(
    64,
    description='What to call the passkey in the list (default: the device it is added from, "Chrome 131 on macOS").',
)


class PasskeyRegistration(NamedTuple):
    """POST /passkeys/register: the authenticator's answer to the creation options, and a name for the passkey."""

    credential: Annotated[dict[str, Any], JsonObject("RegistrationResponseJSON")]
    name: Annotated[str | None, PASSKEY_NAME] = None


class PasskeyLoginOptions(NamedTuple):
    """POST /passkeys/login/options: whose passkeys may answer (none given: any discoverable passkey)."""

    username: Annotated[str | None, Text(64, description="Username-first sign-in: that account's passkeys only.")] = (
        None
    )


class PasskeyAssertion(NamedTuple):
    """POST /passkeys/login: the authenticator's answer to the request options."""

    credential: Annotated[dict[str, Any], JsonObject("AuthenticationResponseJSON")]


class Reauthenticate(NamedTuple):
    """POST /reauthenticate: the password (and a one-time code when TOTP is on), or a passkey's assertion."""

    password: Annotated[str | None, Text(256, format="password", description="The account's password.")] = None
    otp: Annotated[str | None, Text(64, min_length=0, description=LOGIN_OTP)] = None
    credential: Annotated[
        dict[str, Any] | None,
        JsonObject(
            "AuthenticationResponseJSON",
            description="Instead of the password: a passkey's answer to options from /passkeys/login/options.",
        ),
    ] = None


REQUEST_BODIES: tuple[type[NamedTuple], ...] = (
    PostChatt,
    AddUser,
    PostAuth,
    Register,
    Login,
    Refresh,
    Otp,
    OtpOrRecoveryCode,
    OtpauthUri,
    AddPassword,
    RoleChange,
    Ban,
    SetEmail,
    VerifyEmail,
    ForgotPassword,
    ResetPassword,
    ChangePassword,
    PasskeyRegistration,
    PasskeyLoginOptions,
    PasskeyAssertion,
    Reauthenticate,
)
