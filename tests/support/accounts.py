"""Password accounts for the tests: signed in through the test client, or through a served URL on new connections."""

from __future__ import annotations

from typing import Any

import aiohttp

PASSWORD = "correct horse battery"


async def signed_in(client: Any, username: str = "ann") -> str:
    """A JWT for a new password account (its sign-in is recent: sensitive actions may go ahead)."""
    resp = await client.post("/register", json={"username": username, "password": PASSWORD})
    assert resp.status == 201, await resp.text()
    resp = await client.post("/login", json={"username": username, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    client.session.cookie_jar.clear()
    return str((await resp.json())["token"])


async def call(method: str, url: str, *, token: str | None = None, **kwargs: Any) -> tuple[int, Any]:
    """One request on a new connection (so any worker may answer): its status and JSON body (None when empty)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.request(method, url, headers=headers, **kwargs) as resp:
            return resp.status, await resp.json() if resp.content_length else None


async def signed_in_at(url: str, username: str = "ann") -> str:
    """A JWT for a new password account of the server at `url`."""
    assert (await call("POST", f"{url}/register", json={"username": username, "password": PASSWORD}))[0] == 201
    status, body = await call("POST", f"{url}/login", json={"username": username, "password": PASSWORD})
    assert status == 200
    return str(body["token"])
