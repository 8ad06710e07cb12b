"""A small real stand-in for Google Sign-In: signing certificates, RS256 ID tokens, and an OpenID provider."""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import hashlib
import json
import secrets
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from yarl import URL

__all__ = ["AUTH_PATH", "CERTS_PATH", "DISCOVERY_PATH", "JWKS_PATH", "TOKEN_PATH", "FakeGoogle", "main"]

CERTS_PATH = "/oauth2/v1/certs"
# The OpenID provider of the web redirect flow (paths as Google's own, all on the fake's one origin).
DISCOVERY_PATH = "/.well-known/openid-configuration"
AUTH_PATH = "/o/oauth2/v2/auth"
TOKEN_PATH = "/token"  # noqa: S105 -- a path, not a secret
JWKS_PATH = "/oauth2/v3/certs"
CODE_LIFETIME = 60


@dataclass(frozen=True, slots=True)
class _Key:
    private_key: rsa.RSAPrivateKey
    certificate_pem: str


@dataclass(frozen=True, slots=True)
class _AuthCode:
    """An authorization code the fake issued, and what the token request must match."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    expires_at: float


def _s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


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
        # The OpenID provider: registered web clients, the codes it issued (each used once), and knobs for tests.
        self.clients: dict[str, str] = {}
        self.codes: dict[str, _AuthCode] = {}
        self.web_claims: dict[str, Any] = {}  # added to (or overriding) the claims of ID tokens from /token
        self.consent_error: str | None = None  # e.g. "access_denied": the user said no
        self.discovery_failing = False
        self.token_failing = False
        self.discovery_fetches = 0
        self.token_requests = 0

    def register_client(self, client_id: str, secret: str | None = None) -> str:
        """Register an OAuth web client with the provider and return its secret."""
        self.clients[client_id] = secret or secrets.token_urlsafe(24)
        return self.clients[client_id]

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

    async def _serve_jwks(self, request: web.Request) -> web.Response:
        """Serve the published keys as a JWK set, Google's v3 format."""
        keys = []
        for kid in self._published:
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self._keys[kid].private_key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return web.json_response({"keys": keys}, headers={"Cache-Control": f"public, max-age={self.max_age}"})

    async def _serve_discovery(self, request: web.Request) -> web.Response:
        """Serve the OpenID discovery document, every endpoint on this server, or a 503 while `discovery_failing`."""
        self.discovery_fetches += 1
        if self.discovery_failing:
            return web.json_response({"error": "unavailable"}, status=503)
        origin = str(request.url.origin())
        document = {
            "issuer": "https://accounts.google.com",
            "authorization_endpoint": origin + AUTH_PATH,
            "token_endpoint": origin + TOKEN_PATH,
            "jwks_uri": origin + JWKS_PATH,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["plain", "S256"],
        }
        return web.json_response(document, headers={"Cache-Control": "public, max-age=3600"})

    async def _authorize(self, request: web.Request) -> web.Response:
        """The consent page, consenting at once: 302 back to redirect_uri with a code and the state."""
        query = request.query
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") not in self.clients or not redirect_uri.startswith(("http://", "https://")):
            # Like Google: an unknown client or no redirect URI gets an error page, never a redirect.
            return web.json_response({"error": "invalid_client"}, status=400)
        back = URL(redirect_uri)
        answer: dict[str, str] = {}
        if query.get("response_type") != "code":
            answer["error"] = "unsupported_response_type"
        elif "openid" not in query.get("scope", "").split():
            answer["error"] = "invalid_scope"
        elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            answer["error"] = "invalid_request"
        elif self.consent_error:
            answer["error"] = self.consent_error
        else:
            code = secrets.token_urlsafe(24)
            self.codes[code] = _AuthCode(
                client_id=query["client_id"],
                redirect_uri=redirect_uri,
                code_challenge=query["code_challenge"],
                nonce=query.get("nonce"),
                expires_at=time.time() + CODE_LIFETIME,
            )
            answer["code"] = code
        if "state" in query:
            answer["state"] = query["state"]
        raise web.HTTPFound(back.update_query(answer))

    async def _token(self, request: web.Request) -> web.Response:
        """The token endpoint: a code it issued (once), the client secret, the same redirect URI, the PKCE verifier."""
        self.token_requests += 1
        if self.token_failing:
            return web.json_response({"error": "unavailable"}, status=503)
        form = await request.post()

        def field(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        if field("grant_type") != "authorization_code":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        client_id = field("client_id")
        secret = self.clients.get(client_id)
        if secret is None or not secrets.compare_digest(field("client_secret"), secret):
            return web.json_response({"error": "invalid_client"}, status=401)
        code = self.codes.pop(field("code"), None)  # popped whatever follows: a code is good for one try
        if (
            code is None
            or code.expires_at < time.time()
            or code.client_id != client_id
            or code.redirect_uri != field("redirect_uri")
            or not secrets.compare_digest(_s256(field("code_verifier")), code.code_challenge)
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        claims: dict[str, Any] = {} if code.nonce is None else {"nonce": code.nonce}
        claims.update(self.web_claims)
        body = {
            "id_token": self.id_token(client_id=client_id, **claims),
            "access_token": secrets.token_urlsafe(32),
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "openid email profile",
        }
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    def app(self) -> web.Application:
        """Return an aiohttp application serving the certificates and the OpenID provider's endpoints."""
        app = web.Application()
        app.router.add_get(CERTS_PATH, self._serve_certs)
        app.router.add_get(JWKS_PATH, self._serve_jwks)
        app.router.add_get(DISCOVERY_PATH, self._serve_discovery)
        app.router.add_get(AUTH_PATH, self._authorize)
        app.router.add_post(TOKEN_PATH, self._token)
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
        if args.token_file:
            args.token_file.parent.mkdir(parents=True, exist_ok=True)
            args.token_file.write_text(token + "\n")
            out.write(f"(also written to {args.token_file})\n\n")
        out.write(f"http POST :8000/adduser/ clientID={client_id} idToken={token}\n\n")
        secret = fake.register_client(args.client_id)
        fake.web_claims = {"sub": args.sub, "name": args.name, "email": args.email, "hd": args.hd}
        out.write("For web sign-in (the redirect flow) also export these (and COOKIE_SECURE=0 over plain HTTP):\n")
        out.write(f"export GOOGLE_DISCOVERY_URL=http://127.0.0.1:{port}{DISCOVERY_PATH}\n")
        out.write(f"export GOOGLE_CLIENT_SECRET={shlex.quote(secret)}\n\n")
        out.write("Serving certificates and the OpenID provider; Ctrl-C to stop.\n")
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
    parser.add_argument("--token-file", type=Path, default=None, help="also write the ID token to this file")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(FakeGoogle(), args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
