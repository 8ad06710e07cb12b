"""A small stand-in for the breached-passwords range API (k-anonymity: GET /range/<first 5 hex of SHA-1>)."""

from __future__ import annotations

import hashlib

from aiohttp import web


def sha1_hex(password: str) -> str:
    """The uppercase SHA-1 of a password, as the range API keys it."""
    return hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()


class RangeApi:
    """Answers like the real API: every listed suffix under the prefix with its count, plus padding (count 0)."""

    def __init__(self, breached: dict[str, int] | None = None) -> None:
        self.breached = {sha1_hex(password): count for password, count in (breached or {}).items()}
        self.requests: list[str] = []
        self.status = 200  # set to 500 to make it fail

    def app(self) -> web.Application:
        """The aiohttp app to serve."""
        app = web.Application()
        app.router.add_get("/range/{prefix}", self._range)
        return app

    async def _range(self, request: web.Request) -> web.Response:
        prefix = request.match_info["prefix"].upper()
        self.requests.append(prefix)
        if self.status != 200:
            return web.Response(status=self.status, text="unavailable")
        lines = [f"{digest[5:]}:{count}" for digest, count in self.breached.items() if digest.startswith(prefix)]
        if request.headers.get("Add-Padding") == "true":
            lines += [f"{n:035X}:0" for n in range(3)]
        return web.Response(text="\r\n".join(lines))
