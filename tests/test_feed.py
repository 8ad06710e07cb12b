"""The in-memory chatt feed: no query per read when warm, and never stale past a change on any server."""

from __future__ import annotations

from core.keys import db_key, settings_key
from tests.support.common import wait_for


async def post(client, message, username="ann"):
    resp = await client.post("/postchatt/", json={"username": username, "message": message})
    assert resp.status == 200


async def messages(client, query=""):
    resp = await client.get("/getchatts/" + query)
    assert resp.status == 200
    return [row[1] for row in await resp.json()]


async def test_warm_reads_cost_no_query(client):
    # Inserted without a notice, so no invalidation can arrive late and make the count flaky.
    async with client.app[db_key].cursor() as cur:
        await cur.execute("INSERT INTO chatts (username, message) VALUES ('ann', 'm0'), ('ann', 'm1'), ('ann', 'm2')")
    assert await messages(client) == ["m0", "m1", "m2"]
    before = client.app[db_key].queries
    for query in ["", "?limit=2", "?limit=1000", "?limit=1"]:
        await messages(client, query)
    assert client.app[db_key].queries == before


async def test_own_post_is_seen_at_once(client):
    await post(client, "first")
    assert await messages(client) == ["first"]
    await post(client, "second")
    assert await messages(client) == ["first", "second"]


async def test_a_post_on_another_server_is_seen_within_a_second(client, make_client):
    other = await make_client(secret_key=client.app[settings_key].secret_key)
    await post(client, "here")
    assert await messages(client) == ["here"]
    await post(other, "there")

    async def seen():
        return await messages(client) == ["here", "there"]

    await wait_for(seen, timeout=1.0, what="the other server's chatt")


async def test_a_delete_on_another_server_is_seen_within_a_second(client, make_client):
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

    async def gone():
        return await messages(client) == []

    await wait_for(gone, timeout=1.0, what="the deleted chatt to disappear")


async def test_after_older_than_the_feed_goes_to_the_database(client):
    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "INSERT INTO chatts (username, message) SELECT 'u', 'm' || g FROM generate_series(1, 1500) AS g"
        )
        await cur.execute("SELECT id::text FROM chatts ORDER BY seq LIMIT 1 OFFSET 9")
        (tenth,) = await cur.fetchone()
        await cur.execute("SELECT pg_notify('chatterd_events', 'chatts')")

    async def reloaded():
        return len(await messages(client)) == 1000

    await wait_for(reloaded, timeout=1.0, what="the feed to reload")
    later = await messages(client, f"?after={tenth}&limit=5")
    assert later == ["m1496", "m1497", "m1498", "m1499", "m1500"]
    assert len(await messages(client, f"?after={tenth}")) == 1000
