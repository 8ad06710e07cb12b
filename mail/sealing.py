"""What a message says is kept sealed in the outbox: a copy of the database alone reveals no code."""

from __future__ import annotations

import functools
import os
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


class Unsealable(Exception):
    """The sealed text was not made with this SECRET_KEY (or was altered)."""


@functools.cache
def _cipher(secret_key: str) -> AESGCM:
    """AES-256-GCM under a key derived from SECRET_KEY for this use alone."""
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"chatterd mail outbox")
    return AESGCM(kdf.derive(secret_key.encode()))


def seal(secret_key: str, kind: str, params: dict[str, Any]) -> bytes:
    """The message's parameters, encrypted and bound to its kind."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + _cipher(secret_key).encrypt(nonce, orjson.dumps(params), kind.encode())


def unseal(secret_key: str, kind: str, sealed: bytes) -> dict[str, Any]:
    """The parameters `seal` was given; Unsealable when another key or kind made it, or it was altered."""
    try:
        plain = _cipher(secret_key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], kind.encode())
    except (InvalidTag, ValueError):
        raise Unsealable("sealed with another SECRET_KEY, or altered") from None
    params: dict[str, Any] = orjson.loads(plain)
    return params
