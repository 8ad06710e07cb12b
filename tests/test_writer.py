"""Group commit of chatts: concurrent posts share statements, and each is acknowledged only once stored."""

from __future__ import annotations

import asyncio

from core.keys import db_key
from tests.support.common import CLIENT_ID


async def test_concurrent_posts_share_statements_and_all_are_stored(client):
    before = client.app[db_key].queries
    resps = await asyncio.gather(
        *(client.post("/postchatt/", json={"username": "ann", "message": f"m{i}"}) for i in range(60))
    )
    assert [r.status for r in resps] == [200] * 60
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT count(*) FROM chatts")
        assert await cur.fetchone() == (60,)
    # fewer INSERTs than posts (the +1 counts the query just made, the announcement may add one more)
    assert client.app[db_key].queries - before < 60


async def test_a_batch_with_live_and_dead_chatterids_answers_each_rightly(client, google):
    token = google.id_token(client_id=CLIENT_ID, name="Live")
    live = (await (await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})).json())["chatterID"]
    dead = "f" * 64
    bodies = [{"chatterID": live if i % 2 == 0 else dead, "message": f"p{i}"} for i in range(20)]
    resps = await asyncio.gather(*(client.post("/postauth/", json=body) for body in bodies))
    assert [r.status for r in resps] == [200 if i % 2 == 0 else 401 for i in range(20)]
    rows = await (await client.get("/getchatts/")).json()
    assert sorted(row[1] for row in rows) == sorted(f"p{i}" for i in range(0, 20, 2))
    assert {row[0] for row in rows} == {"Live"}
