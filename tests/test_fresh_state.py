"""Fresh state in one process or two: authority from the database, revocations that win races, cheap floods."""

from __future__ import annotations

import asyncio
import time

import psycopg2

from core.keys import authenticator_key, db_key, settings_key, token_codec_key
from tests.support.common import CLIENT_ID, bearer, wait_for
from tests.support.refreshes import revoke_amid_refreshes

PASSWORD = "correct horse battery"


async def sign_up(client, username):
    assert (await client.post("/register", json={"username": username, "password": PASSWORD})).status == 201


async def log_in(client, username):
    resp = await client.post("/login", json={"username": username, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def sql(client, statement, *params):
    async with client.app[db_key].cursor() as cur:
        await cur.execute(statement, params)


async def whoami(client, token):
    resp = await client.get("/get-user", headers=bearer(token))
    return resp.status, (await resp.json()).get("user")


async def test_a_jwt_for_no_user_is_refused(client):
    token, _ = client.app[token_codec_key].mint(987654, "ghost", "admin")
    assert (await whoami(client, token))[0] == 401
    assert (await client.delete(f"/chatts/{'0' * 8}-0000-0000-0000-{'0' * 12}", headers=bearer(token))).status == 401


async def test_get_user_shows_the_current_name_and_role(client):
    await sign_up(client, "cara")
    token = (await log_in(client, "cara"))["token"]
    await sql(client, "UPDATE users SET role = 'moderator', username = 'Cara B' WHERE username = 'cara'")

    async def updated():
        expected = {"id": 1, "username": "Cara B", "role": "moderator", "email": None, "email_verified": False}
        return await whoami(client, token) == (200, expected)

    await wait_for(updated, timeout=1.0, what="the new name and role")


async def test_a_deleted_users_credentials_are_refused(client, google):
    signed_in = await (
        await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID)})
    ).json()
    for credential in (signed_in["token"], signed_in["chatterID"]):
        assert (await whoami(client, credential))[0] == 200
    await sql(client, "DELETE FROM users")

    async def refused():
        return {(await whoami(client, c))[0] for c in (signed_in["token"], signed_in["chatterID"])} == {401}

    await wait_for(refused, timeout=1.0, what="a deleted user's credentials to be refused")


async def test_a_ban_refuses_credentials_already_issued(client):
    await sign_up(client, "bo")
    token = (await log_in(client, "bo"))["token"]
    await sql(client, "UPDATE users SET banned_until = now() + interval '1 hour' WHERE username = 'bo'")

    async def refused():
        return (await whoami(client, token))[0] == 401

    await wait_for(refused, timeout=1.0, what="a banned user's JWT to be refused")


async def test_a_login_racing_a_demotion_mints_no_lasting_authority(client):
    """/login reads the role, hashes for a while, then mints: a demotion answered meanwhile still applies."""
    await sign_up(client, "root")
    await sql(client, "UPDATE users SET role = 'admin' WHERE username = 'root'")
    logins = [asyncio.create_task(log_in(client, "root")) for _ in range(4)]
    await sql(client, "UPDATE users SET role = 'user' WHERE username = 'root'")
    demoted = time.monotonic()
    for body in await asyncio.gather(*logins):
        status, user = await whoami(client, body["token"])
        assert status == 200
        # within the notice's delay the old role may show; after it, never
        if user["role"] != "user":
            assert time.monotonic() - demoted < 1.0

            async def current(token=body["token"]):
                return (await whoami(client, token))[1]["role"] == "user"

            await wait_for(current, timeout=1.0, what="the demotion to apply")


async def test_a_jwt_minted_from_a_newer_standing_never_acts_on_an_older_copy(client, settings):
    """A login that read the standing after a demotion: its token says so, ahead of the demotion's notice."""
    await sign_up(client, "root")
    await sql(client, "UPDATE users SET role = 'admin' WHERE username = 'root'")
    token = (await log_in(client, "root"))["token"]

    async def cached_as_admin():
        return (await whoami(client, token))[1]["role"] == "admin"

    await wait_for(cached_as_admin, timeout=1.0, what="the admin's standing in the worker's directory")
    # Committed while this worker's event loop is held (a blocking call), so its notice cannot have been applied.
    conn = psycopg2.connect(settings.database_url, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("UPDATE users SET role = 'user' WHERE username = 'root' RETURNING id, standing_version")
            user_id, version = cur.fetchone()
    finally:
        conn.close()
    minted, _ = client.app[token_codec_key].mint(user_id, "root", "user", standing_version=version)
    user, _ = await client.app[authenticator_key].resolve(minted)
    assert user.role == "user"


async def test_an_adduser_flood_past_the_limit_writes_nothing(make_client, google):
    client = await make_client(adduser_max_per_address=3)
    statuses = []
    for _ in range(4):
        token = google.id_token(client_id=CLIENT_ID)
        statuses.append((await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})).status)
    assert statuses == [200, 200, 200, 429]
    before = client.app[db_key].queries
    token = google.id_token(client_id=CLIENT_ID)
    flood = await asyncio.gather(
        *(client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token}) for _ in range(50))
    )
    assert {resp.status for resp in flood} == {429}
    assert all(int(resp.headers["Retry-After"]) > 0 for resp in flood)
    assert client.app[db_key].queries == before


async def test_the_adduser_limit_holds_across_servers(make_client, google):
    first = await make_client(adduser_max_per_address=3)
    second = await make_client(adduser_max_per_address=3, secret_key=first.app[settings_key].secret_key)
    statuses = await asyncio.gather(
        *(
            (first, second)[n % 2].post(
                "/adduser/",
                json={"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID, sub=f"flood-{n}")},
            )
            for n in range(10)
        )
    )
    assert sorted(resp.status for resp in statuses) == [200] * 3 + [429] * 7


async def test_a_refresh_in_flight_never_outlives_log_out_everywhere(make_client):
    """Refresh loops on one server, log out everywhere on the other: nothing sent after the answer succeeds."""
    a = await make_client(refresh_max_per_session=100_000)
    b = await make_client(secret_key=a.app[settings_key].secret_key, refresh_max_per_session=100_000)
    await sign_up(a, "vic")
    for round_ in range(15):
        sessions = [await log_in(a, "vic") for _ in range(3)]
        await revoke_amid_refreshes(
            a,
            b,
            [s["refresh_token"] for s in sessions],
            lambda sessions=sessions: a.post("/logout?everywhere=true", headers=bearer(sessions[0]["token"])),
            round_=round_,
        )
        async with a.app[db_key].cursor() as cur:
            await cur.execute("SELECT count(*) FROM refresh_tokens")
            assert await cur.fetchone() == (0,), round_
            await cur.execute("SELECT count(*) FROM sessions WHERE ended_at IS NULL")
            assert await cur.fetchone() == (0,), round_


async def test_a_refresh_in_flight_never_outlives_the_logout_of_its_session(make_client):
    """Refresh loops on one server, a JWT logout of that session on the other: the session is over for good."""
    a = await make_client(refresh_max_per_session=100_000)
    b = await make_client(secret_key=a.app[settings_key].secret_key, refresh_max_per_session=100_000)
    await sign_up(a, "val")
    for round_ in range(15):
        session = await log_in(a, "val")
        await revoke_amid_refreshes(
            a,
            b,
            [session["refresh_token"]],
            lambda session=session: a.post("/logout", headers=bearer(session["token"])),
            round_=round_,
        )
        async with a.app[db_key].cursor() as cur:
            session_id = a.app[token_codec_key].decode(session["token"]).session_id
            await cur.execute("SELECT count(*) FROM refresh_tokens WHERE session_id = %s", (session_id,))
            assert await cur.fetchone() == (0,), round_
            await cur.execute("SELECT ended_at IS NOT NULL FROM sessions WHERE id = %s", (session_id,))
            assert await cur.fetchone() == (True,), round_


async def test_a_refresh_in_flight_never_outlives_signing_out_the_other_devices(make_client):
    """Refresh loops of three sessions on one server, "sign out everywhere else" from a fourth on the other: nothing
    the loops send after the answer succeeds, and the fourth session goes on."""
    a = await make_client(refresh_max_per_session=100_000)
    b = await make_client(secret_key=a.app[settings_key].secret_key, refresh_max_per_session=100_000)
    await sign_up(a, "wes")
    for round_ in range(10):
        keeper = await log_in(a, "wes")
        others = [await log_in(a, "wes") for _ in range(3)]
        await revoke_amid_refreshes(
            a,
            b,
            [s["refresh_token"] for s in others],
            lambda keeper=keeper: a.post("/sessions/revoke-others", headers=bearer(keeper["token"])),
            round_=round_,
        )
        async with a.app[db_key].cursor() as cur:
            await cur.execute("SELECT count(*) FROM sessions WHERE ended_at IS NULL")
            assert await cur.fetchone() == (1,), round_
            await cur.execute("SELECT count(DISTINCT session_id) FROM refresh_tokens")
            assert await cur.fetchone() == (1,), round_
        assert (await b.post("/token/refresh", json={"refresh_token": keeper["refresh_token"]})).status == 200
        assert (await a.post("/logout", headers=bearer(keeper["token"]))).status == 204


async def test_a_burst_of_guesses_gets_no_more_tries_than_the_limit(make_client):
    """Sixty wrong guesses and the right password, all at once: only LOGIN_MAX_FAILURES are evaluated, all refused."""
    client = await make_client(login_max_failures=5, login_max_failures_per_address=1000)
    await sign_up(client, "target")
    guesses = [{"username": "target", "password": f"guess {n:02d} wrong"} for n in range(60)]
    guesses.insert(30, {"username": "target", "password": PASSWORD})
    statuses = [resp.status for resp in await asyncio.gather(*(client.post("/login", json=g) for g in guesses))]
    assert statuses.count(401) + statuses.count(200) <= 5, statuses
    assert statuses.count(429) >= len(guesses) - 5
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT count(*) FROM auth_events WHERE event IN ('sign_in', 'sign_in_failed')")
        (evaluated,) = await cur.fetchone()
    assert evaluated <= 5


async def test_one_address_queues_a_bounded_number_of_password_checks(make_client):
    """Many accounts from one address at once: at most MAX_HASHES_PER_ADDRESS are hashed together on a worker."""
    from auth.throttling import MAX_HASHES_PER_ADDRESS

    # Real argon2 costs, so the checks overlap as they do in production.
    client = await make_client(
        login_max_failures=1000, login_max_failures_per_address=1000, password_time_cost=3, password_memory_cost=65536
    )
    statuses = [
        resp.status
        for resp in await asyncio.gather(
            *(client.post("/login", json={"username": f"nobody{n}", "password": "x" * 12}) for n in range(30))
        )
    ]
    assert statuses.count(401) >= MAX_HASHES_PER_ADDRESS
    assert statuses.count(429) > 0 and set(statuses) <= {401, 429}
