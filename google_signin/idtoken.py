"""Verification of Google ID tokens (RS256 JWTs) against cached Google certificates."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import google.auth.exceptions
import google.auth.jwt

from google_signin.certs import CertificatesUnavailable, GoogleCertificates

__all__ = ["CertificatesUnavailable", "GoogleIdentity", "InvalidIdToken", "verify_id_token"]

MAX_TOKEN_LENGTH = 8192
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
_JWS_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# google-auth says what failed only in its messages (which also quote the token), so map their openings.
_DECODE_MESSAGES = (
    ("Token expired", "ID token has expired"),
    ("Token used too early", "ID token is not valid yet"),
    ("Token has wrong audience", "ID token is for another client"),
    ("Could not verify token signature", "ID token signature is invalid"),
    ("Token does not contain required claim", "ID token lacks a required claim"),
)


class InvalidIdToken(Exception):
    """The ID token is not acceptable; the message is safe to show to a user."""


@dataclass(frozen=True, slots=True)
class GoogleIdentity:
    """The verified claims of a Google ID token that the app uses."""

    sub: str
    name: str | None
    email: str | None
    hosted_domain: str | None
    expires_at: int
    issued_at: int
    # The `nonce` claim (present when the sign-in request sent one, as the web redirect flow does).
    nonce: str | None = None


def _b64url_json(segment: str) -> Any:
    """Decode one base64url JSON segment of a compact JWS, or raise InvalidIdToken."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise InvalidIdToken("ID token is malformed") from exc


def _parse_header(token: object) -> str:
    """Check the token's shape and header without trusting it; return its `kid`."""
    if not isinstance(token, str) or not token:
        raise InvalidIdToken("ID token must be a non-empty string")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidIdToken("ID token is too long")
    if not _JWS_COMPACT.fullmatch(token):
        raise InvalidIdToken("ID token is malformed")
    header = _b64url_json(token.partition(".")[0])
    if not isinstance(header, dict):
        raise InvalidIdToken("ID token is malformed")
    # Pinning the algorithm here is what defeats `alg: none` and HS256-keyed-with-the-public-key forgeries.
    if header.get("alg") != "RS256":
        raise InvalidIdToken("ID token must be signed with RS256")
    if "crit" in header:
        raise InvalidIdToken("ID token uses unsupported header extensions")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidIdToken("ID token has no key id")
    return kid


def _decode(token: str, cert: str, kid: str, audiences: list[str], clock_skew: int) -> Mapping[str, Any]:
    """Check signature, exp, iat and aud with google-auth; return the claims."""
    try:
        # google-auth ships py.typed but leaves decode() unannotated.
        claims = google.auth.jwt.decode(  # type: ignore[no-untyped-call]
            token, certs={kid: cert}, audience=audiences, clock_skew_in_seconds=clock_skew
        )
    except (google.auth.exceptions.GoogleAuthError, ValueError, TypeError, KeyError, RecursionError) as exc:
        detail = str(exc)
        message = next((msg for prefix, msg in _DECODE_MESSAGES if detail.startswith(prefix)), "ID token is invalid")
        raise InvalidIdToken(message) from exc
    if not isinstance(claims, Mapping):
        raise InvalidIdToken("ID token is malformed")
    return claims


def _timestamp(claims: Mapping[str, Any], name: str) -> int:
    """Return a NumericDate claim as an int, refusing booleans, NaN and other non-numbers."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidIdToken(f"ID token has an invalid '{name}' claim")
    return int(value)


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    """Return an optional string claim, refusing any other type."""
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidIdToken(f"ID token has an invalid '{name}' claim")
    return value


def _nonce(claims: Mapping[str, Any]) -> str | None:
    """Return the `nonce` claim if it is a string; other values are ignored, so /adduser/ accepts what it did."""
    value = claims.get("nonce")
    return value if isinstance(value, str) else None


async def verify_id_token(
    token: str,
    certificates: GoogleCertificates,
    *,
    audiences: Collection[str],
    hosted_domain: str | None = None,
    clock_skew: int = 50,
) -> GoogleIdentity:
    """Verify a Google ID token and return its identity; raise InvalidIdToken for any defect."""
    kid = _parse_header(token)
    # CertificatesUnavailable is deliberately not caught: it is a 503, not the token's fault.
    certs = await certificates.get(kid)
    cert = certs.get(kid)
    if cert is None:
        raise InvalidIdToken("ID token is signed with an unknown key")
    allowed = [audiences] if isinstance(audiences, str) else list(audiences)
    claims = _decode(token, cert, kid, allowed, clock_skew)
    iss = claims.get("iss")
    if not isinstance(iss, str) or iss not in GOOGLE_ISSUERS:
        raise InvalidIdToken("ID token is not issued by Google")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidIdToken("ID token has no subject")
    hd = _optional_str(claims, "hd")
    if hosted_domain is not None and hd != hosted_domain:
        raise InvalidIdToken("ID token is not for the allowed hosted domain")
    return GoogleIdentity(
        sub=sub,
        name=_optional_str(claims, "name"),
        email=_optional_str(claims, "email"),
        hosted_domain=hd,
        expires_at=_timestamp(claims, "exp"),
        issued_at=_timestamp(claims, "iat"),
        nonce=_nonce(claims),
    )
