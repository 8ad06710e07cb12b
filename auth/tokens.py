"""Our own credentials: access JWTs (HS256, or ES256/EdDSA with a kid) and opaque chatterIDs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt
import orjson

from auth.signing_keys import PrivateKey, PublicKey, SigningKey, load_signing_keys
from core import shapes
from settings import Settings

ROLES: Final = frozenset(shapes.ROLES)

# Pinned: the algorithm is never taken from the token's own header (RFC 8725 §2.1).
_ALGORITHMS: Final = ["HS256"]
_REQUIRED_CLAIMS: Final = ["exp", "iat", "iss", "aud", "sub", "jti"]
# HS256 wants a key at least as long as its output (RFC 7518 §3.2).
_MIN_KEY_BYTES: Final = 32
# Our tokens are a few hundred bytes; refusing big input early bounds the work an attacker can cause.
_MAX_TOKEN_CHARS: Final = 4096
# Canonical decimal user id that fits a Postgres bigint; [0-9] rather than \d so other scripts' digits fail.
_SUB_RE: Final = re.compile(r"0|[1-9][0-9]{0,18}")
_JWT_SHAPE_RE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_CHATTER_ID_RE: Final = re.compile(r"[0-9a-f]{64}")


class InvalidToken(Exception):
    """The credential is malformed, forged, expired or otherwise unacceptable."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified contents of an access JWT."""

    user_id: int
    username: str
    role: str
    jti: str
    issued_at: float
    expires_at: float
    # The session (claim `sid`) this access token belongs to, if any: ending the session revokes the token too.
    session_id: str | None = None
    # The version of the user's standing the name and role were read from, when the minter knew it (claim `sv`).
    standing_version: int | None = None


def _b64url(data: bytes) -> bytes:
    """Base64url without padding, as JWS segments are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _is_number(value: object) -> bool:
    """Tell a JSON number from a bool or a numeric string, which int() would also accept."""
    return type(value) in (int, float)


class TokenCodec:
    """Mints and verifies access JWTs signed with the server's secret key, or with asymmetric signing keys."""

    __slots__ = (
        "_algorithms",
        "_audience",
        "_header_segment",
        "_headers",
        "_issuer",
        "_jwks",
        "_jwt",
        "_key",
        "_leeway",
        "_prepared_key",
        "_signer",
        "_signing_key",
        "_verifying_keys",
        "lifetime",
    )

    def __init__(
        self,
        secret_key: str,
        *,
        issuer: str = "chatterd",
        audience: str = "chatterd",
        lifetime: int = 900,
        leeway: float = 5.0,
        signing_keys: Sequence[SigningKey] = (),
    ) -> None:
        """Check the key and settings and prepare the decoder once, off the hot path."""
        if not isinstance(secret_key, str):
            raise TypeError("secret_key must be a str")
        key = secret_key.encode("utf-8")
        if len(key) < _MIN_KEY_BYTES:
            raise ValueError(f"secret_key must be at least {_MIN_KEY_BYTES} bytes")
        if not issuer or not audience:
            raise ValueError("issuer and audience must be non-empty")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime <= 0:
            raise ValueError("lifetime must be a positive number of seconds")
        if not math.isfinite(leeway) or leeway < 0:
            raise ValueError("leeway must be a non-negative number of seconds")
        self._key: bytes = key
        self._issuer = issuer
        self._audience = audience
        self._leeway = float(leeway)
        self.lifetime: int = lifetime
        self._jwt = jwt.PyJWT(
            options={
                "require": list(_REQUIRED_CLAIMS),
                # We mint a single string audience; a list is not ours.
                "strict_aud": True,
                "enforce_minimum_key_length": True,
            }
        )
        # With signing keys (all for one algorithm) the first signs and every one verifies, picked by the token's kid;
        # the secret key then signs no JWT.
        self._algorithms: list[str] = list(_ALGORITHMS)
        self._signing_key: bytes | PrivateKey = key
        self._headers: dict[str, str] | None = None
        # kid -> public key when signing asymmetrically; None under HS256, where the secret key is the only key.
        self._verifying_keys: dict[str, PublicKey] | None = None
        self._jwks: tuple[dict[str, str], ...] = ()
        if signing_keys:
            algorithms = {signing_key.algorithm for signing_key in signing_keys}
            if len(algorithms) != 1:
                raise ValueError("signing keys must all be for one algorithm")
            verifying = {signing_key.kid: signing_key.public_key for signing_key in signing_keys}
            if len(verifying) != len(signing_keys):
                raise ValueError("a signing key is listed twice")
            self._algorithms = [signing_keys[0].algorithm]
            self._signing_key = signing_keys[0].private_key
            self._headers = {"kid": signing_keys[0].kid}
            self._verifying_keys = verifying
            self._jwks = tuple(signing_key.jwk() for signing_key in signing_keys)
        # Minting signs with PyJWT's algorithm and a key prepared once: jwt.encode would check the key's form on every
        # call (for HMAC, that it is no PEM or DER public key), which costs more than the signature.
        self._signer = jwt.get_algorithm_by_name(self._algorithms[0])
        self._prepared_key = self._signer.prepare_key(self._signing_key)
        header = {"alg": self._algorithms[0], "typ": "JWT", **(self._headers or {})}
        self._header_segment = _b64url(orjson.dumps(header, option=orjson.OPT_SORT_KEYS))

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenCodec:
        """The codec the settings describe; key files are read here, once, and ConfigError says what is wrong."""
        signing_keys = (
            load_signing_keys(settings.jwt_algorithm, settings.jwt_signing_key_files)
            if settings.jwt_algorithm != _ALGORITHMS[0]
            else ()
        )
        return cls(
            settings.secret_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            lifetime=settings.jwt_lifetime,
            signing_keys=signing_keys,
        )

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys tokens are verified with, as a JWK Set; empty under HS256, whose key is secret."""
        return {"keys": [dict(jwk) for jwk in self._jwks]}

    def mint(
        self,
        user_id: int,
        username: str,
        role: str,
        *,
        now: float | None = None,
        lifetime: int | None = None,
        session_id: str | None = None,
        standing_version: int | None = None,
    ) -> tuple[str, AccessClaims]:
        """Return a signed access token for the user and the claims it carries."""
        if isinstance(user_id, bool) or not isinstance(user_id, int) or not _SUB_RE.fullmatch(str(user_id)):
            raise ValueError("user_id must be a non-negative bigint")
        if not isinstance(username, str):
            raise TypeError("username must be a str")
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        if lifetime is None:
            lifetime = self.lifetime
        elif isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime <= 0:
            raise ValueError("lifetime must be a positive number of seconds")
        if now is None:
            now = time.time()
        # Millisecond iat, rounded down: "log out everywhere" revokes tokens issued before a timestamp, and
        # rounding down can never make a token issued before that moment look newer than it.
        issued_at = math.floor(now * 1000) / 1000
        # Whole-second exp, rounded down, so the token never outlives its lifetime (PyJWT compares int(exp)).
        expires_at = math.floor(issued_at + lifetime)
        claims = AccessClaims(
            user_id=user_id,
            username=username,
            role=role,
            jti=secrets.token_urlsafe(16),
            issued_at=issued_at,
            expires_at=float(expires_at),
            session_id=session_id,
            standing_version=standing_version,
        )
        payload: dict[str, Any] = {
            "sub": str(user_id),
            "name": username,
            "role": role,
            "jti": claims.jti,
            "iss": self._issuer,
            "aud": self._audience,
            "iat": issued_at,
            "exp": expires_at,
        }
        if session_id is not None:
            payload["sid"] = session_id
        if standing_version is not None:
            payload["sv"] = standing_version
        signing_input = self._header_segment + b"." + _b64url(orjson.dumps(payload))
        signature = self._signer.sign(signing_input, self._prepared_key)
        return (signing_input + b"." + _b64url(signature)).decode("ascii"), claims

    def decode(self, token: str) -> AccessClaims:
        """Verify a token and return its claims; raise InvalidToken for anything wrong with it."""
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
            raise InvalidToken("malformed token")
        try:
            key: bytes | PublicKey = self._key
            if self._verifying_keys is not None:
                # The kid only picks among our own keys (an unknown or missing one is a KeyError); the algorithm stays
                # pinned, so a token cannot choose HS256 and "verify" with a public key as the HMAC secret.
                key = self._verifying_keys[jwt.get_unverified_header(token)["kid"]]
            payload = self._jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
            )
        # Whatever the library trips over in hostile input (PyJWTError, ValueError, RecursionError, ...) means
        # the token is bad: callers must only ever see InvalidToken, never a 500.
        except Exception as exc:
            raise InvalidToken("invalid token") from exc
        sub = payload["sub"]
        name = payload.get("name")
        role = payload.get("role")
        iat = payload["iat"]
        exp = payload["exp"]
        sid = payload.get("sid")
        sv = payload.get("sv")
        # PyJWT checks presence and signature; the types of our own claims are ours to check.
        if (
            not isinstance(sub, str)
            or not _SUB_RE.fullmatch(sub)
            or not isinstance(name, str)
            or not isinstance(role, str)
            or role not in ROLES
            or not isinstance(payload["jti"], str)
            or not _is_number(iat)
            or not _is_number(exp)
            or not (sid is None or isinstance(sid, str))
            or not (sv is None or type(sv) is int)
        ):
            raise InvalidToken("invalid claims")
        return AccessClaims(
            user_id=int(sub),
            username=name,
            role=role,
            jti=payload["jti"],
            issued_at=float(iat),
            expires_at=float(exp),
            session_id=sid,
            standing_version=sv,
        )


def looks_like_jwt(token: str) -> bool:
    """Cheap shape test: three base64url segments, so a bearer credential can be routed without decoding it."""
    # The signature may be empty so unsigned (alg: none) tokens are routed to decode() and refused there
    # rather than looked up as chatterIDs.
    return isinstance(token, str) and len(token) <= _MAX_TOKEN_CHARS and _JWT_SHAPE_RE.fullmatch(token) is not None


def new_chatter_id() -> tuple[str, bytes]:
    """Return a fresh chatterID and the SHA-256 digest under which the database keeps it."""
    chatter_id = secrets.token_hex(32)
    return chatter_id, hashlib.sha256(chatter_id.encode("ascii")).digest()


def hash_chatter_id(chatter_id: str) -> bytes | None:
    """Return the SHA-256 digest of a well-formed chatterID (64 lowercase hex characters), else None."""
    if not isinstance(chatter_id, str) or _CHATTER_ID_RE.fullmatch(chatter_id) is None:
        return None
    return hashlib.sha256(chatter_id.encode("ascii")).digest()


_REFRESH_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")


def new_refresh_token() -> str:
    """Return a fresh opaque refresh token (256 random bits, base64url)."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: object) -> bytes | None:
    """Return the SHA-256 digest of a well-formed refresh token, else None."""
    if not isinstance(token, str) or _REFRESH_TOKEN_RE.fullmatch(token) is None:
        return None
    return hashlib.sha256(token.encode("ascii")).digest()


def refresh_successor(token: str, secret_key: str) -> str:
    """The token that rotating `token` yields: derived, so two racing refreshes of one token get the same successor."""
    digest = hmac.new(secret_key.encode("utf-8"), b"chatterd-refresh:" + token.encode("ascii"), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode("ascii").rstrip("=")
