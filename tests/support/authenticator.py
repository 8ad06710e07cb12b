"""A software authenticator for the tests: real keys (EC P-256 or Ed25519), real authenticator data, `none` attestation.

It answers a server's options as a browser and a platform authenticator would, in the WebAuthn Level 3 JSON forms
(RegistrationResponseJSON, AuthenticationResponseJSON), and lets a test bend any part of the answer.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from webauthn.helpers import encode_cbor

from tests.support.signing import b64url, unb64url

# Authenticator data flags (WebAuthn §6.1).
UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
AAGUID = bytes(16)  # all zero, as with `none` attestation


@dataclass
class Passkey:
    """One credential the authenticator made: its id, key, the account it is for, and its signature counter."""

    credential_id: bytes
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    rp_id: str
    user_handle: bytes
    username: str
    sign_count: int = 0

    def cose_key(self) -> dict[int, Any]:
        """The public key as a COSE_Key: EC2 with ES256 (-7), or OKP Ed25519 with EdDSA (-8)."""
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            raw = self.key.public_key().public_bytes_raw()
            return {1: 1, 3: -8, -1: 6, -2: raw}
        numbers = self.key.public_key().public_numbers()
        return {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}

    def sign(self, data: bytes) -> bytes:
        """A signature over `data`: DER ECDSA with SHA-256, or Ed25519."""
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


@dataclass
class Authenticator:
    """A platform authenticator with resident keys; `origin` is the page (or app) a client would say it runs on."""

    origin: str
    algorithm: str = "ES256"  # or "EdDSA"
    user_verification: bool = True
    counts: bool = True  # whether it keeps a signature counter (some authenticators always send 0)
    passkeys: list[Passkey] = field(default_factory=list)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        data = {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        return json.dumps(data, separators=(",", ":")).encode()

    def _flags(self, *extra: int) -> int:
        flags = UP | (UV if self.user_verification else 0)
        for bit in extra:
            flags |= bit
        return flags

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        reuse: Passkey | None = None,
    ) -> dict[str, Any]:
        """Make a passkey for PublicKeyCredentialCreationOptionsJSON; its RegistrationResponseJSON.

        `origin` and `rp_id` stand in for a client that lies about where it runs; `reuse` presents a passkey made
        before (its id and key) as if it were new.
        """
        algs = [param["alg"] for param in options["pubKeyCredParams"]]
        wanted = -8 if self.algorithm == "EdDSA" else -7
        assert wanted in algs, f"the server does not offer {self.algorithm}: {algs}"
        excluded = {unb64url(item["id"]) for item in options.get("excludeCredentials", [])}
        assert reuse or not excluded & {p.credential_id for p in self.passkeys}, "an excluded credential lives here"
        key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = (
            ed25519.Ed25519PrivateKey.generate()
            if self.algorithm == "EdDSA"
            else ec.generate_private_key(ec.SECP256R1())
        )
        rp = rp_id or options["rp"]["id"]
        passkey = Passkey(
            credential_id=reuse.credential_id if reuse else secrets.token_bytes(32),
            key=reuse.key if reuse else key,
            rp_id=rp,
            user_handle=unb64url(options["user"]["id"]),
            username=options["user"]["name"],
        )
        self.passkeys.append(passkey)
        attested = AAGUID + struct.pack(">H", len(passkey.credential_id)) + passkey.credential_id
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags(AT, BE, BS)])
            + struct.pack(">I", passkey.sign_count)
            + attested
            + encode_cbor(passkey.cose_key())
        )
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(passkey.credential_id),
            "rawId": b64url(passkey.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(self._client_data("webauthn.create", options["challenge"], origin)),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict[str, Any],
        passkey: Passkey | None = None,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        sign_count: int | None = None,
        user_handle: bytes | None = None,
    ) -> dict[str, Any]:
        """Sign PublicKeyCredentialRequestOptionsJSON with a passkey (the one allowed, or the newest); its
        AuthenticationResponseJSON. The keyword arguments bend the answer: another origin or RP ID, a chosen
        counter, another user handle."""
        if passkey is None:
            allowed = {unb64url(item["id"]) for item in options.get("allowCredentials", [])}
            candidates = [p for p in self.passkeys if not allowed or p.credential_id in allowed]
            assert candidates, "no passkey here answers these options"
            passkey = candidates[-1]
        if sign_count is None:
            passkey.sign_count += 1 if self.counts else 0
            sign_count = passkey.sign_count
        rp = rp_id or options.get("rpId") or passkey.rp_id
        auth_data = hashlib.sha256(rp.encode()).digest() + bytes([self._flags(BE, BS)]) + struct.pack(">I", sign_count)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = passkey.sign(auth_data + hashlib.sha256(client_data).digest())
        return {
            "id": b64url(passkey.credential_id),
            "rawId": b64url(passkey.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(user_handle if user_handle is not None else passkey.user_handle),
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }
