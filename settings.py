"""Configuration from the environment, validated once at start."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent
STATIC_DIR = PROJECT_DIR / "static"
DEFAULT_GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
DEFAULT_GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"
SECRET_KEY_FILE = "secret_key"  # noqa: S105 -- a file name, not a secret
JWT_ALGORITHMS = ("HS256", "ES256", "EdDSA")


class ConfigError(ValueError):
    """A setting in the environment has a value chatterd cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
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
    # Sensitive actions need a sign-in within this many seconds in the current session (step-up).
    reauth_max_age: int = 300

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

    @property
    def web_client_id(self) -> str | None:
        """The OAuth client of Google web sign-in: GOOGLE_WEB_CLIENT_ID, else the first of GOOGLE_CLIENT_IDS."""
        return self.google_web_client_id or next(iter(self.google_client_ids), None)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from the environment (or the given mapping)."""
        env = os.environ if env is None else env
        var_dir = Path(env.get("CHATTERD_VAR_DIR") or PROJECT_DIR / "var").resolve()
        secret_key = env.get("SECRET_KEY", "")
        if not secret_key:
            secret_key = load_or_create_secret(var_dir)
            logger.warning("SECRET_KEY is not set: using the generated key kept in %s", var_dir / SECRET_KEY_FILE)
        return cls(
            secret_key=secret_key,
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
            http_client_timeout=_float(env, "HTTP_CLIENT_TIMEOUT", 10.0),
            header_timeout=_float(env, "HEADER_TIMEOUT", 10.0),
            body_timeout=_float(env, "BODY_TIMEOUT", 30.0),
            cookie_secure=_bool(env, "COOKIE_SECURE", True),
            cors_origins=_list(env, "CORS_ORIGINS"),
            trusted_proxies=_int(env, "TRUSTED_PROXIES", 0),
            login_max_failures=_int(env, "LOGIN_MAX_FAILURES", 5, minimum=1),
            login_lockout_seconds=_int(env, "LOGIN_LOCKOUT_SECONDS", 300, minimum=1),
            login_max_failures_per_address=_int(env, "LOGIN_MAX_FAILURES_PER_ADDRESS", 20, minimum=1),
            adduser_max_per_address=_int(env, "ADDUSER_MAX_PER_ADDRESS", 120),
            adduser_window_seconds=_int(env, "ADDUSER_WINDOW_SECONDS", 60, minimum=1),
            signup_max_per_address=_int(env, "SIGNUP_MAX_PER_ADDRESS", 20, minimum=1),
            password_threads=_int(env, "PASSWORD_THREADS", 1, minimum=1),
            refresh_token_lifetime=_int(env, "REFRESH_TOKEN_LIFETIME", 30 * 24 * 3600, minimum=60),
            refresh_grace_seconds=_int(env, "REFRESH_GRACE_SECONDS", 10),
            refresh_max_per_session=_int(env, "REFRESH_MAX_PER_SESSION", 60, minimum=1),
            refresh_window_seconds=_int(env, "REFRESH_WINDOW_SECONDS", 3600, minimum=1),
            session_idle_timeout=_int(env, "SESSION_IDLE_TIMEOUT", 14 * 24 * 3600, minimum=300),
            session_max_age=_int(env, "SESSION_MAX_AGE", 90 * 24 * 3600, minimum=300),
            reauth_max_age=_int(env, "REAUTH_MAX_AGE", 300, minimum=1),
            signup_window_seconds=_int(env, "SIGNUP_WINDOW_SECONDS", 3600, minimum=1),
        )
