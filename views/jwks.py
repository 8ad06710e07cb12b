"""The public keys access JWTs are verified with, as a JWK Set at /.well-known/jwks.json."""

from __future__ import annotations

from aiohttp import web

from core.bodies import json_response
from core.keys import token_codec_key

# Short enough that a client sees a newly listed key well before it signs (see "Signing keys" in the README).
CACHE_CONTROL = "public, max-age=300"


async def jwks(request: web.Request) -> web.Response:
    """GET /.well-known/jwks.json: every verifying public key with its kid; no keys under HS256."""
    return json_response(request.app[token_codec_key].jwks(), headers={"Cache-Control": CACHE_CONTROL})
