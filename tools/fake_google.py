"""A small real stand-in for Google Sign-In: serves signing certificates and mints RS256 ID tokens."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import secrets
import shlex
import sys
import time
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = ["CERTS_PATH", "FakeGoogle", "main"]

CERTS_PATH = "/oauth2/v1/certs"


@dataclass(frozen=True, slots=True)
class _Key:
    private_key: rsa.RSAPrivateKey
    certificate_pem: str


def _new_key(kid: str) -> _Key:
    """Make an RSA-2048 key and a self-signed x509 certificate for it, as Google publishes them."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"fake-google-{kid}")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=14))
        .sign(private_key, hashes.SHA256())
    )
    return _Key(private_key, certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"))


class FakeGoogle:
    """Google's certificate endpoint and ID-token issuer, with keys that can be rotated, dropped or made to fail."""

    def __init__(self, *, max_age: int = 3600) -> None:
        self.max_age = max_age
        self.fetches = 0
        self.failing = False
        self._keys: dict[str, _Key] = {}
        self._published: list[str] = []
        self.kid = self.rotate()

    def certs(self) -> dict[str, str]:
        """Return the published certificates in Google's v1 format, `{kid: PEM x509 certificate}`."""
        return {kid: self._keys[kid].certificate_pem for kid in self._published}

    def rotate(self, *, keep_old: bool = True) -> str:
        """Add a new key that becomes the signing key and return its kid; `keep_old=False` unpublishes the others."""
        kid = secrets.token_hex(20)
        self._keys[kid] = _new_key(kid)
        if not keep_old:
            self._published.clear()
        self._published.append(kid)
        self.kid = kid
        return kid

    def drop(self, kid: str) -> None:
        """Stop publishing a key; tokens can still be signed with it, as by someone who kept it."""
        self._published.remove(kid)

    def sign(self, claims: dict[str, Any], *, kid: str | None = None, headers: dict[str, Any] | None = None) -> str:
        """Sign `claims` with RS256 using key `kid` (default: the current key); `headers` may override `kid`."""
        if headers and "alg" in headers:
            raise ValueError("sign() always uses RS256; build other algorithms by hand")
        key_id = self.kid if kid is None else kid
        header = {"kid": key_id, **(headers or {})}
        # PyJWS rather than jwt.encode, which refuses some malformed claims that tests need to sign.
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return jwt.PyJWS().encode(payload, self._keys[key_id].private_key, algorithm="RS256", headers=header)

    def id_token(
        self,
        *,
        client_id: str,
        sub: str = "1234567890",
        name: str | None = "Test User",
        email: str | None = "test@example.com",
        lifetime: int = 3600,
        hd: str | None = None,
        issuer: str = "https://accounts.google.com",
        **extra: Any,
    ) -> str:
        """Mint an ID token shaped like Google's; `extra` adds or overrides claims (e.g. `iat=...`)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer,
            "azp": client_id,
            "aud": client_id,
            "sub": sub,
            "iat": now,
            "exp": now + lifetime,
        }
        if email is not None:
            claims["email"] = email
            claims["email_verified"] = True
        if name is not None:
            claims["name"] = name
        if hd is not None:
            claims["hd"] = hd
        claims.update(extra)
        return self.sign(claims)

    def public_key_pem(self) -> bytes:
        """Return the current key's public key as PEM (SubjectPublicKeyInfo)."""
        return (
            self._keys[self.kid]
            .private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    async def _serve_certs(self, request: web.Request) -> web.Response:
        """Serve the certificate document like Google does, or a 503 while `failing`."""
        self.fetches += 1
        if self.failing:
            return web.json_response({"error": "unavailable"}, status=503)
        return web.json_response(self.certs(), headers={"Cache-Control": f"public, max-age={self.max_age}"})

    def app(self) -> web.Application:
        """Return an aiohttp application serving GET /oauth2/v1/certs."""
        app = web.Application()
        app.router.add_get(CERTS_PATH, self._serve_certs)
        return app


async def _serve(fake: FakeGoogle, args: argparse.Namespace) -> None:
    """Serve the certificates and print what to export and paste, until cancelled."""
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        port = runner.addresses[0][1]
        token = fake.id_token(
            client_id=args.client_id,
            sub=args.sub,
            name=args.name,
            email=args.email,
            lifetime=args.lifetime,
            hd=args.hd,
        )
        out = sys.stdout
        client_id = shlex.quote(args.client_id)
        out.write(f"export GOOGLE_CERTS_URL=http://127.0.0.1:{port}{CERTS_PATH}\n")
        out.write(f"export GOOGLE_CLIENT_IDS={client_id}\n")
        if args.hd:
            out.write(f"export GOOGLE_HOSTED_DOMAIN={shlex.quote(args.hd)}\n")
        out.write(f"\nID token (valid {args.lifetime} s):\n{token}\n\n")
        out.write(f"http POST :8000/adduser/ clientID={client_id} idToken={token}\n\n")
        out.write("Serving certificates; Ctrl-C to stop.\n")
        out.flush()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Run the fake Google certificate server and print a signed ID token for the given user."""
    parser = argparse.ArgumentParser(prog="python -m tools.fake_google", description=__doc__)
    parser.add_argument("--name", default="Test User", help="the token's name claim")
    parser.add_argument("--email", default="test@example.com", help="the token's email claim")
    parser.add_argument("--sub", default="1234567890", help="the Google account id (sub claim)")
    parser.add_argument("--hd", default=None, help="the hosted-domain claim (optional)")
    parser.add_argument("--client-id", required=True, help="the OAuth client id (aud claim)")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--lifetime", type=int, default=3600, help="token lifetime in seconds")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(FakeGoogle(), args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
