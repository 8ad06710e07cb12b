"""Signing people in for the identity, account and admin tests: password and Google users, admins, old sign-ins."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from core.keys import db_key
from tests.support.common import CLIENT_ID, bearer
from tools.fake_google import FakeGoogle

PASSWORD = "correct horse battery"

Client = TestClient[Any, Any]


async def sql(client: Client, statement: str, *params: Any) -> None:
    """Run one statement on the app's database, as an operator would."""
    async with client.app[db_key].cursor() as cur:
        await cur.execute(statement, params)


async def rows(client: Client, query: str, *params: Any) -> list[Any]:
    """The rows of one query on the app's database."""
    async with client.app[db_key].cursor() as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def log_in(client: Client, username: str, password: str = PASSWORD, **headers: str) -> dict[str, Any]:
    """POST /login; the token answer (asserting it succeeded)."""
    resp = await client.post("/login", json={"username": username, "password": password}, headers=headers)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    client.session.cookie_jar.clear()  # credentials go in the Authorization header only, explicitly
    return body


async def password_user(client: Client, username: str, *, role: str = "user") -> dict[str, Any]:
    """Register `username` (with `role`), sign in; the token answer plus its `id` and `headers`."""
    resp = await client.post("/register", json={"username": username, "password": PASSWORD})
    assert resp.status == 201, await resp.text()
    user_id = (await resp.json())["id"]
    if role != "user":
        await sql(client, "UPDATE users SET role = %s WHERE id = %s", role, user_id)
    body = await log_in(client, username)
    return {**body, "id": user_id, "headers": bearer(body["token"])}


async def adduser(client: Client, google: FakeGoogle, sub: str, **claims: Any) -> Any:
    """POST /adduser/ with an ID token for `sub`; the response."""
    token = google.id_token(client_id=CLIENT_ID, sub=sub, **claims)
    return await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})


async def google_user(client: Client, google: FakeGoogle, sub: str, **claims: Any) -> dict[str, Any]:
    """Sign in with Google as `sub`; /adduser/'s answer plus the user's `id` and `headers` (with the JWT)."""
    resp = await adduser(client, google, sub, **claims)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    me = await (await client.get("/get-user", headers=bearer(body["token"]))).json()
    return {**body, "id": me["user"]["id"], "headers": bearer(body["token"])}


def link_body(google: FakeGoogle, sub: str, **claims: Any) -> dict[str, str]:
    """The body of POST /identities/google for the Google account `sub`."""
    return {"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID, sub=sub, **claims)}


async def sign_in_long_ago(client: Client, user_id: int, seconds: int = 3600) -> None:
    """Make every session of the user look signed in `seconds` ago, as if step-up's window had passed."""
    await sql(
        client,
        "UPDATE sessions SET authenticated_at = now() - make_interval(secs => %s) WHERE user_id = %s",
        seconds,
        user_id,
    )


async def identities(client: Client, headers: dict[str, str]) -> list[dict[str, Any]]:
    """GET /identities."""
    resp = await client.get("/identities", headers=headers)
    assert resp.status == 200, await resp.text()
    found: list[dict[str, Any]] = (await resp.json())["identities"]
    return found


async def whoami(client: Client, credential: str) -> tuple[int, Any]:
    """GET /get-user with a JWT or chatterID: the status and the user's id, username and role (None when refused)."""
    resp = await client.get("/get-user", headers=bearer(credential))
    user = (await resp.json()).get("user")
    return resp.status, None if user is None else {key: user[key] for key in ("id", "username", "role")}
