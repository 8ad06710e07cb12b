"""Configuration from the environment, validated once at start."""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mail.smtp import SmtpTarget, sender_address

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent
STATIC_DIR = PROJECT_DIR / "static"
DEFAULT_GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
DEFAULT_GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"
SECRET_KEY_FILE = "secret_key"  # noqa: S105 -- a file name, not a secret
JWT_ALGORITHMS = ("HS256", "ES256", "EdDSA")
DEFAULT_EMAIL_FROM = "chatterd <chatterd@localhost>"
APK_KEY_HASH = "android:apk-key-hash:"  # the origin an Android app's own WebAuthn calls carry, + its key's hash
# The version is written once, in pyproject.toml; /healthz and the OpenAPI document say it.
VERSION: str = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]["version"]
# Warnings a gunicorn master has logged before forking its workers, which inherit this set and stay quiet about them.
_LOGGED_BEFORE_FORK: set[str] = set()


# The longest window (or lockout) a throttle counter may have: a counter untouched for longer is stale whatever it
# counts, and the purge of stale counters (models/throttle.py) goes by it.
THROTTLE_WINDOW_MAX = 24 * 3600


class ConfigError(ValueError):
    """A setting in the environment has a value chatterd cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be positive")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be 1 or 0, not {raw!r}")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _http_url(name: str, value: str) -> None:
    """Refuse anything but an absolute http(s) URL without query or fragment."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be an absolute http(s) URL without query or fragment, not {value!r}")


def _hostname(value: str) -> str | None:
    """The host of an http(s) URL or origin, lowercased; None when it has none."""
    parts = urlsplit(value)
    return parts.hostname if parts.scheme in {"http", "https"} else None


def _web_origin(value: str) -> str:
    """`scheme://host[:port]` of an http(s) URL, as a browser writes an origin (no default port, no path)."""
    parts = urlsplit(value)
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" if parts.port in {None, default} else f"{parts.scheme}://{host}:{parts.port}"


def apk_key_hash_origin(fingerprint: str) -> str:
    """The WebAuthn origin of an Android app signed with the certificate of this SHA-256 fingerprint (AB:CD:...)."""
    digest = bytes.fromhex(fingerprint.replace(":", ""))
    return APK_KEY_HASH + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _android_app(entry: str) -> tuple[str, str]:
    """`package=AB:CD:...` (the SHA-256 fingerprint of the app's signing certificate) as (package, fingerprint)."""
    package, _, fingerprint = entry.partition("=")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+", package) or not re.fullmatch(
        r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31}", fingerprint
    ):
        raise ConfigError(
            f"WEBAUTHN_ANDROID_APPS entries are package=SHA-256 fingerprint (com.example.app=AB:CD:...), not {entry!r}"
        )
    return package, fingerprint.upper()


_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def _is_domain(host: str) -> bool:
    """A domain name in lower case: what a WebAuthn RP ID must be (an IP address is not one)."""
    return bool(_DOMAIN.fullmatch(host)) and not host.rsplit(".", 1)[-1].isdigit()


def _on_rp_id(host: str | None, rp_id: str) -> bool:
    """Whether a page on `host` may use passkeys of `rp_id`: the RP ID itself or one of its subdomains."""
    return host is not None and (host == rp_id or host.endswith("." + rp_id))


def _check_webauthn(rp_id: str | None, origins: tuple[str, ...]) -> None:
    """Every web origin must be on the RP ID (it or a subdomain of it); Android origins must name a SHA-256."""
    if origins and rp_id is None:
        raise ConfigError("WEBAUTHN_ORIGINS needs WEBAUTHN_RP_ID (or PUBLIC_URL, whose host is the default)")
    for origin in origins:
        if origin.startswith(APK_KEY_HASH):
            if not re.fullmatch(r"[A-Za-z0-9_-]{43}", origin.removeprefix(APK_KEY_HASH)):
                raise ConfigError(f"{origin!r} is not an apk-key-hash origin (the SHA-256 of a key, base64url)")
            continue
        try:
            host = _hostname(origin)
            well_formed = host is not None and _web_origin(origin) == origin
        except ValueError:  # a port that is not a number
            well_formed = False
        if not well_formed:
            raise ConfigError(
                f"WEBAUTHN_ORIGINS entries are origins (https://host[:port]) or {APK_KEY_HASH}..., not {origin!r}"
            )
        if rp_id is None or not _on_rp_id(host, rp_id):
            raise ConfigError(f"the origin {origin!r} is not on WEBAUTHN_RP_ID {rp_id!r} (nor a subdomain of it)")


def var_dir_from_env(env: Mapping[str, str]) -> Path:
    """The folder of the embedded Postgres, the generated key and the pid files: CHATTERD_VAR_DIR, else ./var."""
    return Path(env.get("CHATTERD_VAR_DIR") or PROJECT_DIR / "var").resolve()


def load_or_create_secret(var_dir: Path) -> str:
    """Return the key kept under var/, making it once; every worker and restart shares it."""
    path = var_dir / SECRET_KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    var_dir.mkdir(parents=True, exist_ok=True)
    tmp = var_dir / f".{SECRET_KEY_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    try:
        # link() fails if another process won the race; then everyone uses the winner's key.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything chatterd can be told; build it with `Settings.from_env()`."""

    secret_key: str = field(repr=False)
    # Where the key was generated and kept, when SECRET_KEY is unset.
    secret_key_file: Path | None = None
    database_url: str | None = field(default=None, repr=False)
    # A direct connection (not through a pooler) for LISTEN and the migration lock; unset: database_url serves both.
    database_listen_url: str | None = field(default=None, repr=False)
    var_dir: Path = PROJECT_DIR / "var"
    google_client_ids: tuple[str, ...] = ()
    google_certs_url: str = DEFAULT_GOOGLE_CERTS_URL
    google_hosted_domain: str | None = None
    # Google web sign-in (the redirect flow) is on only when the client secret is set.
    google_client_secret: str | None = field(default=None, repr=False)
    google_web_client_id: str | None = None
    google_discovery_url: str = DEFAULT_GOOGLE_DISCOVERY_URL
    public_url: str | None = None
    chatterid_lifetime: int = 300
    jwt_lifetime: int = 900
    jwt_issuer: str = "chatterd"
    jwt_audience: str = "chatterd"
    # HS256 signs with SECRET_KEY; ES256/EdDSA sign with the first key file and verify with all of them.
    jwt_algorithm: str = "HS256"
    jwt_signing_key_files: tuple[Path, ...] = ()
    open_posting: bool = True
    max_body_size: int = 1024 * 1024
    db_pool_min: int = 1
    db_pool_max: int = 10
    db_connect_timeout: float = 5.0
    db_acquire_timeout: float = 5.0
    db_statement_timeout: float = 10.0
    db_startup_wait: float = 30.0
    http_client_timeout: float = 10.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    retry_after: int = 5
    cookie_secure: bool = True
    cors_origins: tuple[str, ...] = ()
    trusted_proxies: int = 0
    login_max_failures: int = 5
    login_lockout_seconds: int = 300
    login_max_failures_per_address: int = 20
    adduser_max_per_address: int = 120
    adduser_window_seconds: int = 60
    signup_max_per_address: int = 20
    signup_window_seconds: int = 3600
    password_time_cost: int | None = None
    password_memory_cost: int | None = None
    password_threads: int = 1
    refresh_token_lifetime: int = 30 * 24 * 3600
    refresh_grace_seconds: int = 10
    refresh_max_per_session: int = 60
    refresh_window_seconds: int = 3600
    session_idle_timeout: int = 14 * 24 * 3600
    session_max_age: int = 90 * 24 * 3600
    # Mail: with no SMTP_URL every message is written to the log instead (development).
    smtp_url: str | None = field(default=None, repr=False)  # may carry the relay's password
    smtp_ca_file: Path | None = None
    email_from: str = DEFAULT_EMAIL_FROM
    mail_retry_seconds: float = 5.0
    mail_max_attempts: int = 10
    # Password recovery (/password/forgot and /password/reset), counted per account named and per client address.
    recovery_max_per_account: int = 5
    recovery_max_per_address: int = 20
    recovery_window_seconds: int = 3600
    pwned_passwords_url: str | None = None
    # Passkeys: the relying party's ID (a domain) and the origins its ceremonies may come from, web pages and
    # Android apps; unset, both follow PUBLIC_URL (see the properties below).
    webauthn_rp_id: str | None = None
    webauthn_origins: tuple[str, ...] = ()
    # Native apps that share the site's passkeys: Android `package=SHA-256 fingerprint`, Apple `TEAMID.bundle.id`.
    webauthn_android_apps: tuple[str, ...] = ()
    webauthn_apple_app_ids: tuple[str, ...] = ()
    # Step-up: sensitive actions need the session's user to have proved who they are within this many seconds.
    reauth_max_age: int = 300
    # Passkey challenges one address may ask for per window (0: no limit).
    passkey_options_max_per_address: int = 120
    passkey_options_window_seconds: int = 60

    def __post_init__(self) -> None:
        if len(self.secret_key.encode()) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 bytes long")
        if self.db_pool_min > self.db_pool_max or self.db_pool_max < 1:
            raise ConfigError("DB_POOL_MIN must not exceed DB_POOL_MAX, which must be at least 1")
        if self.database_listen_url and not self.database_url:
            raise ConfigError("DATABASE_LISTEN_URL needs DATABASE_URL (the embedded Postgres needs neither)")
        if self.jwt_algorithm not in JWT_ALGORITHMS:
            raise ConfigError(f"JWT_ALGORITHM must be one of {', '.join(JWT_ALGORITHMS)}, not {self.jwt_algorithm!r}")
        if self.jwt_algorithm == "HS256" and self.jwt_signing_key_files:
            raise ConfigError("JWT_SIGNING_KEY_FILES needs JWT_ALGORITHM=ES256 or EdDSA (HS256 signs with SECRET_KEY)")
        if self.jwt_algorithm != "HS256" and not self.jwt_signing_key_files:
            raise ConfigError(f"JWT_ALGORITHM={self.jwt_algorithm} needs JWT_SIGNING_KEY_FILES")
        _http_url("GOOGLE_DISCOVERY_URL", self.google_discovery_url)
        if self.public_url is not None:
            _http_url("PUBLIC_URL", self.public_url)
        if self.google_client_secret and not self.google_client_ids:
            raise ConfigError("GOOGLE_CLIENT_SECRET needs GOOGLE_CLIENT_IDS, the client ID it belongs to among them")
        if self.google_web_client_id and self.google_web_client_id not in self.google_client_ids:
            raise ConfigError("GOOGLE_WEB_CLIENT_ID must be one of GOOGLE_CLIENT_IDS")
        if self.pwned_passwords_url is not None:
            _http_url("PWNED_PASSWORDS_URL", self.pwned_passwords_url)
        try:
            if self.smtp_url is not None:
                SmtpTarget.from_url(self.smtp_url)
            sender_address(self.email_from)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.mail_max_attempts < 1:
            raise ConfigError("MAIL_MAX_ATTEMPTS must be at least 1")
        for entry in self.webauthn_apple_app_ids:
            if not re.fullmatch(r"[A-Z0-9]{10}\.[A-Za-z0-9.-]+", entry):
                raise ConfigError(f"WEBAUTHN_APPLE_APP_IDS entries are TEAMID.bundle.id, not {entry!r}")
        self.android_apps  # noqa: B018 -- parses, so a bad entry stops the start
        if self.webauthn_rp_id is not None and not _is_domain(self.webauthn_rp_id):
            raise ConfigError(f"WEBAUTHN_RP_ID must be a domain name in lower case, not {self.webauthn_rp_id!r}")
        if self.webauthn_rp_id and not self.passkey_origins:
            raise ConfigError("WEBAUTHN_RP_ID needs WEBAUTHN_ORIGINS (or a PUBLIC_URL on it, or WEBAUTHN_ANDROID_APPS)")
        _check_webauthn(self.passkey_rp_id, self.passkey_origins)

    def warnings(self) -> list[str]:
        """What these settings leave unsafe or off, to be said at start."""
        said = []
        if self.secret_key_file is not None:
            said.append(f"SECRET_KEY is not set: using the generated key kept in {self.secret_key_file}")
        if not self.google_client_ids:
            said.append(
                "GOOGLE_CLIENT_IDS is not set: /adduser/ accepts ID tokens for whatever clientID a client sends"
            )
        if self.google_client_secret and not self.public_url:
            said.append(
                "PUBLIC_URL is not set: Google web sign-in answers only on localhost; set PUBLIC_URL to the site's "
                "public URL (its redirect URI is PUBLIC_URL + /auth/google/callback)"
            )
        if not self.smtp_url:
            said.append("SMTP_URL is not set: mail (codes included) is written to the log instead of being sent")
        return said

    def log_warnings(self, *, before_fork: bool = False) -> None:
        """Log the warnings once per server: a worker skips those its gunicorn master logged (before_fork) already."""
        for message in self.warnings():
            if message not in _LOGGED_BEFORE_FORK:
                logger.warning("%s", message)
            if before_fork:
                _LOGGED_BEFORE_FORK.add(message)

    @property
    def web_client_id(self) -> str | None:
        """The OAuth client of Google web sign-in: GOOGLE_WEB_CLIENT_ID, else the first of GOOGLE_CLIENT_IDS."""
        return self.google_web_client_id or next(iter(self.google_client_ids), None)

    @property
    def android_apps(self) -> tuple[tuple[str, str], ...]:
        """The Android apps that share the site's passkeys, as (package, SHA-256 fingerprint) pairs."""
        return tuple(_android_app(entry) for entry in self.webauthn_android_apps)

    @property
    def passkey_rp_id(self) -> str | None:
        """The WebAuthn relying party ID: WEBAUTHN_RP_ID, else the host of PUBLIC_URL; None without either."""
        if self.webauthn_rp_id:
            return self.webauthn_rp_id
        host = _hostname(self.public_url) if self.public_url else None
        return host if host is not None and _is_domain(host) else None  # an address cannot be an RP ID

    @property
    def passkey_origins(self) -> tuple[str, ...]:
        """Where passkey ceremonies may come from: WEBAUTHN_ORIGINS, else PUBLIC_URL's origin and the Android apps'."""
        if self.webauthn_origins:
            return self.webauthn_origins
        rp_id = self.passkey_rp_id
        if rp_id is None:
            return ()
        public_host = _hostname(self.public_url) if self.public_url else None
        web = (_web_origin(self.public_url),) if self.public_url and _on_rp_id(public_host, rp_id) else ()
        return web + tuple(apk_key_hash_origin(fingerprint) for _, fingerprint in self.android_apps)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from the environment (or the given mapping)."""
        env = os.environ if env is None else env
        var_dir = var_dir_from_env(env)
        secret_key = env.get("SECRET_KEY", "")
        secret_key_file = None
        if not secret_key:
            secret_key = load_or_create_secret(var_dir)
            secret_key_file = var_dir / SECRET_KEY_FILE
        return cls(
            secret_key=secret_key,
            secret_key_file=secret_key_file,
            database_url=env.get("DATABASE_URL") or None,
            database_listen_url=env.get("DATABASE_LISTEN_URL") or None,
            var_dir=var_dir,
            google_client_ids=_list(env, "GOOGLE_CLIENT_IDS"),
            google_certs_url=env.get("GOOGLE_CERTS_URL") or DEFAULT_GOOGLE_CERTS_URL,
            google_hosted_domain=env.get("GOOGLE_HOSTED_DOMAIN") or None,
            google_client_secret=env.get("GOOGLE_CLIENT_SECRET", "").strip() or None,
            google_web_client_id=env.get("GOOGLE_WEB_CLIENT_ID", "").strip() or None,
            google_discovery_url=env.get("GOOGLE_DISCOVERY_URL") or DEFAULT_GOOGLE_DISCOVERY_URL,
            public_url=env.get("PUBLIC_URL") or None,
            chatterid_lifetime=_int(env, "CHATTERID_LIFETIME", 300, minimum=1),
            jwt_lifetime=_int(env, "JWT_LIFETIME", 900, minimum=1),
            jwt_algorithm=env.get("JWT_ALGORITHM", "").strip() or "HS256",
            jwt_signing_key_files=tuple(Path(path) for path in _list(env, "JWT_SIGNING_KEY_FILES")),
            open_posting=_bool(env, "CHATTER_OPEN_POSTING", True),
            max_body_size=_int(env, "MAX_BODY_SIZE", 1024 * 1024, minimum=1024),
            db_pool_min=_int(env, "DB_POOL_MIN", 1),
            db_pool_max=_int(env, "DB_POOL_MAX", 10, minimum=1),
            db_connect_timeout=_float(env, "DB_CONNECT_TIMEOUT", 5.0),
            db_acquire_timeout=_float(env, "DB_ACQUIRE_TIMEOUT", 5.0),
            db_statement_timeout=_float(env, "DB_STATEMENT_TIMEOUT", 10.0),
            db_startup_wait=_float(env, "DB_STARTUP_WAIT", 30.0),
            http_client_timeout=_float(env, "HTTP_CLIENT_TIMEOUT", 10.0),
            header_timeout=_float(env, "HEADER_TIMEOUT", 10.0),
            body_timeout=_float(env, "BODY_TIMEOUT", 30.0),
            cookie_secure=_bool(env, "COOKIE_SECURE", True),
            cors_origins=_list(env, "CORS_ORIGINS"),
            trusted_proxies=_int(env, "TRUSTED_PROXIES", 0),
            login_max_failures=_int(env, "LOGIN_MAX_FAILURES", 5, minimum=1),
            login_lockout_seconds=_int(env, "LOGIN_LOCKOUT_SECONDS", 300, minimum=1, maximum=THROTTLE_WINDOW_MAX),
            login_max_failures_per_address=_int(env, "LOGIN_MAX_FAILURES_PER_ADDRESS", 20, minimum=1),
            adduser_max_per_address=_int(env, "ADDUSER_MAX_PER_ADDRESS", 120),
            adduser_window_seconds=_int(env, "ADDUSER_WINDOW_SECONDS", 60, minimum=1, maximum=THROTTLE_WINDOW_MAX),
            signup_max_per_address=_int(env, "SIGNUP_MAX_PER_ADDRESS", 20, minimum=1),
            password_threads=_int(env, "PASSWORD_THREADS", 1, minimum=1),
            refresh_token_lifetime=_int(env, "REFRESH_TOKEN_LIFETIME", 30 * 24 * 3600, minimum=60),
            refresh_grace_seconds=_int(env, "REFRESH_GRACE_SECONDS", 10),
            refresh_max_per_session=_int(env, "REFRESH_MAX_PER_SESSION", 60, minimum=1),
            refresh_window_seconds=_int(env, "REFRESH_WINDOW_SECONDS", 3600, minimum=1),
            session_idle_timeout=_int(env, "SESSION_IDLE_TIMEOUT", 14 * 24 * 3600, minimum=300),
            session_max_age=_int(env, "SESSION_MAX_AGE", 90 * 24 * 3600, minimum=300),
            reauth_max_age=_int(env, "REAUTH_MAX_AGE", 300, minimum=1),
            signup_window_seconds=_int(env, "SIGNUP_WINDOW_SECONDS", 3600, minimum=1, maximum=THROTTLE_WINDOW_MAX),
            smtp_url=env.get("SMTP_URL", "").strip() or None,
            smtp_ca_file=Path(env["SMTP_CA_FILE"]) if env.get("SMTP_CA_FILE", "").strip() else None,
            email_from=env.get("EMAIL_FROM", "").strip() or DEFAULT_EMAIL_FROM,
            mail_retry_seconds=_float(env, "MAIL_RETRY_SECONDS", 5.0),
            mail_max_attempts=_int(env, "MAIL_MAX_ATTEMPTS", 10, minimum=1),
            recovery_max_per_account=_int(env, "RECOVERY_MAX_PER_ACCOUNT", 5, minimum=1),
            recovery_max_per_address=_int(env, "RECOVERY_MAX_PER_ADDRESS", 20, minimum=1),
            recovery_window_seconds=_int(env, "RECOVERY_WINDOW_SECONDS", 3600, minimum=1, maximum=THROTTLE_WINDOW_MAX),
            pwned_passwords_url=(env.get("PWNED_PASSWORDS_URL", "").strip().rstrip("/") or None),
            webauthn_rp_id=env.get("WEBAUTHN_RP_ID", "").strip() or None,
            webauthn_origins=_list(env, "WEBAUTHN_ORIGINS"),
            webauthn_android_apps=_list(env, "WEBAUTHN_ANDROID_APPS"),
            webauthn_apple_app_ids=_list(env, "WEBAUTHN_APPLE_APP_IDS"),
            passkey_options_max_per_address=_int(env, "PASSKEY_OPTIONS_MAX_PER_ADDRESS", 120),
            passkey_options_window_seconds=_int(
                env, "PASSKEY_OPTIONS_WINDOW_SECONDS", 60, minimum=1, maximum=THROTTLE_WINDOW_MAX
            ),
        )
