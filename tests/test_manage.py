"""manage.py on any user: Google users (no username to go by) by id or email, and the refusals that keep it exact."""

from __future__ import annotations

import asyncio

from core.keys import db_key
from tests.support.cli import run_manage
from tests.support.common import CLIENT_ID, bearer, wait_for


async def google_user(client, google, *, sub: str, email: str) -> tuple[int, str]:
    """Sign a Google account in with /adduser/: its user id and JWT."""
    id_token = google.id_token(client_id=CLIENT_ID, sub=sub, name="Gia Google", email=email)
    resp = await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": id_token})
    assert resp.status == 200
    token = (await resp.json())["token"]
    user = (await (await client.get("/get-user", headers=bearer(token))).json())["user"]
    return user["id"], token


async def manage(settings, *args: str):
    return await asyncio.to_thread(run_manage, *args, settings=settings)


async def test_set_role_of_a_google_user_by_email_then_by_id(client, google, settings):
    user_id, token = await google_user(client, google, sub="g-1", email="Gia@Example.com")

    by_email = await manage(settings, "set-role", "--email", "gia@example.com", "moderator")
    assert by_email.returncode == 0, by_email.stdout + by_email.stderr
    assert f"set the role of 'Gia Google' to moderator (id {user_id})" in by_email.stdout

    async def ended() -> bool:
        return (await client.get("/get-user", headers=bearer(token))).status == 401

    await wait_for(ended, timeout=2, what="the session begun under the old role to end")
    user_id_again, token = await google_user(client, google, sub="g-1", email="gia@example.com")
    assert user_id_again == user_id
    assert (await (await client.get("/get-user", headers=bearer(token))).json())["user"]["role"] == "moderator"

    by_id = await manage(settings, "set-role", "--id", str(user_id), "admin")
    assert by_id.returncode == 0, by_id.stdout + by_id.stderr
    _, token = await google_user(client, google, sub="g-1", email="gia@example.com")
    assert (await (await client.get("/get-user", headers=bearer(token))).json())["user"]["role"] == "admin"


async def test_logout_everywhere_by_id(client, google, settings):
    user_id, token = await google_user(client, google, sub="g-2", email="out@example.com")
    result = await manage(settings, "logout-everywhere", "--id", str(user_id))
    assert result.returncode == 0, result.stdout + result.stderr

    async def ended() -> bool:
        return (await client.get("/get-user", headers=bearer(token))).status == 401

    await wait_for(ended, timeout=2, what="every session to end")


async def test_an_email_of_several_users_names_them_and_changes_nobody(client, google, settings):
    first, _ = await google_user(client, google, sub="g-3", email="shared@example.com")
    second, _ = await google_user(client, google, sub="g-4", email="shared@example.com")
    result = await manage(settings, "set-role", "--email", "shared@example.com", "admin")
    assert result.returncode == 1
    assert f"{first} (Gia Google)" in result.stdout and f"{second} (Gia Google)" in result.stdout
    assert "--id" in result.stdout
    roles = await client.app[db_key].fetch_all("SELECT role FROM users WHERE id IN (%s, %s)", (first, second))
    assert roles == [("user",), ("user",)]


async def test_unknown_users_and_ambiguous_command_lines_are_refused(client, settings):
    assert (await manage(settings, "set-role", "--id", "999999", "admin")).returncode == 1
    assert (await manage(settings, "set-role", "--email", "nobody@example.com", "admin")).returncode == 1
    assert (await manage(settings, "set-role", "admin")).returncode == 2  # nobody named
    assert (await manage(settings, "set-role", "ann", "--id", "1", "admin")).returncode == 2  # two named
