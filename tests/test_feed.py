"""The in-memory chatt feed: one shared version check per read, and never stale, whoever changed the chatts."""

from __future__ import annotations

import asyncio

import psycopg2

from core.keys import db_key, settings_key


async def post(client, message, username="ann"):
    resp = await client.post("/postchatt/", json={"username": username, "message": message})
    assert resp.status == 200


async def messages(client, query=""):
    resp = await client.get("/getchatts/" + query)
    assert resp.status == 200
    return [row[1] for row in await resp.json()]


async def test_warm_reads_cost_one_version_check(client):
    async with client.app[db_key].cursor() as cur:
        await cur.execute("INSERT INTO chatts (username, message) VALUES ('ann', 'm0'), ('ann', 'm1'), ('ann', 'm2')")
    assert await messages(client) == ["m0", "m1", "m2"]
    before = client.app[db_key].queries
    for query in ["", "?limit=2", "?limit=1000", "?limit=1"]:
        await messages(client, query)
    assert client.app[db_key].queries == before + 4  # the version, nothing else


async def test_concurrent_reads_share_version_checks(client):
    await post(client, "hello")
    assert await messages(client) == ["hello"]
    before = client.app[db_key].queries
    answers = await asyncio.gather(*(messages(client) for _ in range(50)))
    assert all(answer == ["hello"] for answer in answers)
    assert client.app[db_key].queries - before < 25


async def test_a_change_made_in_sql_is_seen_at_once(client):
    await post(client, "one")
    assert await messages(client) == ["one"]
    async with client.app[db_key].cursor() as cur:
        await cur.execute("UPDATE chatts SET message = 'edited'")
    assert await messages(client) == ["edited"]
    async with client.app[db_key].cursor() as cur:
        await cur.execute("DELETE FROM chatts")
    assert await messages(client) == []


async def test_own_post_is_seen_at_once(client):
    await post(client, "first")
    assert await messages(client) == ["first"]
    await post(client, "second")
    assert await messages(client) == ["first", "second"]


async def test_a_post_on_another_server_is_seen_at_once(client, make_client):
    other = await make_client(secret_key=client.app[settings_key].secret_key)
    await post(client, "here")
    assert await messages(client) == ["here"]
    await post(other, "there")
    assert await messages(client) == ["here", "there"]
    assert await messages(client, "?limit=1") == ["there"]


async def test_a_delete_on_another_server_is_seen_at_once(client, make_client):
    import models

    await post(client, "spam")
    (chatt,) = await (await client.get("/getchatts/")).json()
    other = await make_client(secret_key=client.app[settings_key].secret_key)
    assert (await other.post("/register", json={"username": "mod", "password": "correct horse battery"})).status == 201
    await models.set_role(other.app[db_key], "mod", "moderator")
    login = await other.post("/login", json={"username": "mod", "password": "correct horse battery"})
    token = (await login.json())["token"]
    resp = await other.delete(f"/chatts/{chatt[2]}", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 204
    assert await messages(client) == []


async def test_after_older_than_the_feed_goes_to_the_database(client):
    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "INSERT INTO chatts (username, message) SELECT 'u', 'm' || g FROM generate_series(1, 1500) AS g"
        )
        await cur.execute("SELECT id::text FROM chatts ORDER BY seq LIMIT 1 OFFSET 9")
        (tenth,) = await cur.fetchone()
    assert len(await messages(client)) == 1000
    later = await messages(client, f"?after={tenth}&limit=5")
    assert later == ["m1496", "m1497", "m1498", "m1499", "m1500"]
    assert len(await messages(client, f"?after={tenth}")) == 1000


async def test_a_write_from_any_backend_moves_the_version(client, settings):
    """Each backend writes into its own slot of the version: a write from every one of many is seen at once."""
    assert await messages(client) == []
    connections = [psycopg2.connect(settings.database_url, connect_timeout=10) for _ in range(20)]
    try:
        slots = set()
        for n, conn in enumerate(connections):
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO chatts (username, message) VALUES ('ann', %s) RETURNING pg_backend_pid()", (f"w{n}",)
                )
                slots.add(cur.fetchone()[0] % 16)
            assert (await messages(client))[-1] == f"w{n}"
        assert len(slots) > 1  # several slots were written
        with connections[0].cursor() as cur:
            cur.execute("DELETE FROM chatts WHERE message = 'w3'")
        assert "w3" not in await messages(client)
    finally:
        for conn in connections:
            conn.close()
