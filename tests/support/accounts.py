"""Password accounts for the tests: signed in through the test client or through a served URL on new connections,
and with an address verified by the code it was mailed."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.common import bearer
from tests.support.smtp import MailServer

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a new long passphrase"


async def register(client: Any, username: str, email: str | None = None, password: str = PASSWORD) -> int:
    """POST /register (with an address when given); the new user's id."""
    body = {"username": username, "password": password, **({"email": email} if email else {})}
    resp = await client.post("/register", json=body)
    assert resp.status == 201, await resp.text()
    user_id: int = (await resp.json())["id"]
    return user_id


async def log_in(client: Any, username: str, password: str = PASSWORD) -> dict[str, Any]:
    """POST /login; the token answer (token, refresh_token, ...). The cookie is dropped: callers use the header."""
    resp = await client.post("/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    client.session.cookie_jar.clear()
    body: dict[str, Any] = await resp.json()
    return body


async def me(client: Any, token: str) -> dict[str, Any]:
    """GET /get-user's user."""
    resp = await client.get("/get-user", headers=bearer(token))
    assert resp.status == 200, await resp.text()
    user: dict[str, Any] = (await resp.json())["user"]
    return user


async def verify(client: Any, token: str, code: str) -> Any:
    """POST /email/verify."""
    return await client.post("/email/verify", json={"code": code}, headers=bearer(token))


async def verified_account(client: Any, smtp: MailServer, username: str, email: str) -> str:
    """A password account whose address is verified with the code it was mailed; a JWT for it."""
    await register(client, username, email)
    token: str = (await log_in(client, username))["token"]
    resp = await verify(client, token, await smtp.code_for(email))
    assert resp.status == 204, await resp.text()
    return token


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
