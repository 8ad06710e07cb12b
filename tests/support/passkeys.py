"""Passkeys through the API, for the tests: an account's passkeys, and a passkey sign-in."""

from __future__ import annotations

from typing import Any

from tests.support.authenticator import Authenticator
from tests.support.common import bearer

RP_ID = "chatter.test"
ORIGIN = "https://chatter.test"


async def add_passkey(client: Any, token: str, authenticator: Authenticator, name: str | None = None) -> dict[str, Any]:
    """Register a new passkey of `authenticator` for the token's user; the answer's body."""
    resp = await client.post("/passkeys/register/options", headers=bearer(token))
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = {"credential": authenticator.create(await resp.json())}
    if name is not None:
        body["name"] = name
    resp = await client.post("/passkeys/register", json=body, headers=bearer(token))
    assert resp.status == 201, await resp.text()
    created: dict[str, Any] = await resp.json()
    return created


async def login_options(client: Any, username: str | None = None) -> dict[str, Any]:
    """Request options for a passkey sign-in (username-first when given)."""
    resp = await client.post("/passkeys/login/options", json={} if username is None else {"username": username})
    assert resp.status == 200, await resp.text()
    options: dict[str, Any] = await resp.json()
    return options


async def passkey_login(client: Any, credential: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST /passkeys/login: its status and body."""
    resp = await client.post("/passkeys/login", json={"credential": credential})
    return resp.status, await resp.json()
