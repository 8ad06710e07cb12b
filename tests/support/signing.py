"""Test helpers for asymmetric JWT signing: real keys, key files, independent thumbprints, hand-made tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jwt.algorithms
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def b64url_json(obj: object) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def new_key(kind: str) -> PrivateKey:
    """A fresh private key: "ES256" (P-256), "EdDSA" (Ed25519), "P-384", "RSA"."""
    if kind == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "P-384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(kind)


def pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password) if password is not None else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_key(folder: Path, kind: str, name: str | None = None) -> tuple[Path, PrivateKey]:
    """A new key of `kind` written as a PKCS8 PEM file under `folder`."""
    key = new_key(kind)
    path = folder / (name or f"{kind.lower()}-{id(key)}.pem")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pem(key))
    path.chmod(0o600)
    return path, key


def expected_kid(key: PrivateKey) -> str:
    """RFC 7638 thumbprint computed here by hand, independently of signing_keys.py."""
    public = key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        x = b64url(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        canonical = f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        numbers = public.public_numbers()
        x, y = b64url(numbers.x.to_bytes(32, "big")), b64url(numbers.y.to_bytes(32, "big"))
        canonical = f'{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}'
    return b64url(hashlib.sha256(canonical.encode()).digest())


def header_of(token: str) -> dict[str, Any]:
    return json.loads(unb64url(token.split(".")[0]))


def payload_of(token: str) -> dict[str, Any]:
    return json.loads(unb64url(token.split(".")[1]))


def hmac_token(payload: dict[str, Any], secret: bytes, kid: str | None) -> str:
    """An HS256 token made by hand (PyJWT refuses a PEM as an HMAC secret, an attacker does not)."""
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def unsigned_token(payload: dict[str, Any], kid: str | None) -> str:
    header: dict[str, Any] = {"alg": "none", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    return f"{b64url_json(header)}.{b64url_json(payload)}."


def sign_with_header(header: dict[str, Any], payload: dict[str, Any], key: PrivateKey, algorithm: str) -> str:
    """A token with exactly this header (even one PyJWT would not write), signed for real with `algorithm`."""
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    signature = jwt.algorithms.get_default_algorithms()[algorithm].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url(signature)}"
