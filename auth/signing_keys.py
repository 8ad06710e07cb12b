"""Asymmetric JWT signing keys (ES256, EdDSA): loading PEM files, JWK thumbprints as kids, and making new keys."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from settings import ConfigError

logger = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS: Final = ("ES256", "EdDSA")

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

# A PEM private key is a few hundred bytes; a bigger file is not one of ours.
_MAX_KEY_FILE_BYTES: Final = 64 * 1024
_P256_COORDINATE_BYTES: Final = 32


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def public_jwk(public_key: PublicKey) -> dict[str, str]:
    """The required JWK members of a public key (RFC 7518 §6.2, RFC 8037 §2), the ones a thumbprint covers."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    # The uncompressed point is 0x04 || x || y, each coordinate at its full fixed length as RFC 7518 requires.
    point = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    size = _P256_COORDINATE_BYTES
    return {"crv": "P-256", "kty": "EC", "x": _b64url(point[1 : 1 + size]), "y": _b64url(point[1 + size :])}


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """The RFC 7638 thumbprint: base64url SHA-256 of the required members, sorted, without whitespace."""
    canonical = json.dumps(jwk, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One asymmetric key pair, named by its JWK thumbprint."""

    algorithm: str
    private_key: PrivateKey
    public_key: PublicKey
    kid: str

    @classmethod
    def from_private_key(cls, private_key: object, algorithm: str) -> SigningKey:
        """Wrap a private key for `algorithm`; ValueError when the key is of another type or curve."""
        if algorithm == "ES256":
            if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
                private_key.curve, ec.SECP256R1
            ):
                raise ValueError("ES256 needs an EC P-256 private key")
        elif algorithm == "EdDSA":
            if not isinstance(private_key, ed25519.Ed25519PrivateKey):
                raise ValueError("EdDSA needs an Ed25519 private key")
        else:
            raise ValueError(f"unknown signing algorithm {algorithm!r}")
        public_key = private_key.public_key()
        return cls(algorithm, private_key, public_key, jwk_thumbprint(public_jwk(public_key)))

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK for a JWKS document, with its kid, algorithm and use."""
        return {**public_jwk(self.public_key), "kid": self.kid, "alg": self.algorithm, "use": "sig"}


def load_signing_key(path: Path, algorithm: str) -> SigningKey:
    """Read one unencrypted PEM private key for `algorithm`; ConfigError for anything wrong with it."""
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                logger.warning("the signing key %s can be read by other users; chmod 600 it", path)
            data = f.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"JWT_SIGNING_KEY_FILES: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise ConfigError(f"JWT_SIGNING_KEY_FILES: {path} is too big to be a PEM private key")
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"JWT_SIGNING_KEY_FILES: {path} is encrypted; give an unencrypted PEM key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"JWT_SIGNING_KEY_FILES: {path} is not a PEM private key") from None
    try:
        return SigningKey.from_private_key(private_key, algorithm)
    except ValueError as exc:
        raise ConfigError(f"JWT_SIGNING_KEY_FILES: {path}: {exc} (JWT_ALGORITHM is {algorithm})") from None


def load_signing_keys(algorithm: str, paths: Sequence[Path]) -> tuple[SigningKey, ...]:
    """Read every key file once, at start: the first signs, all of them verify."""
    keys = tuple(load_signing_key(path, algorithm) for path in paths)
    seen: set[str] = set()
    for path, key in zip(paths, keys, strict=True):
        if key.kid in seen:
            raise ConfigError(f"JWT_SIGNING_KEY_FILES: {path} holds a key that is already listed")
        seen.add(key.kid)
    if keys:
        logger.info("JWTs are signed with %s key %s; %d key(s) verify", algorithm, keys[0].kid, len(keys))
    return keys


def generate_private_key(algorithm: str) -> PrivateKey:
    """A new private key for `algorithm` (ES256: P-256; EdDSA: Ed25519)."""
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown signing algorithm {algorithm!r}")


def write_new_key_file(path: Path, private_key: PrivateKey) -> None:
    """Write the key as an unencrypted PKCS8 PEM readable by its owner only; FileExistsError rather than overwrite."""
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: an existing key (perhaps still verifying live tokens) is never replaced by accident.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    except BaseException:
        path.unlink()  # no half-written key left behind to be listed later
        raise
