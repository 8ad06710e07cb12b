"""The chatter API of the contract: GET /getchatts/ and POST /postchatt/."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime

import pytest

from core.keys import db_key
from models.chatts import LIST_CHATTS_AFTER, LIST_NEWEST_CHATTS

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def post(client, username="ann", message="hello", **extra):
    body = {"username": username, "message": message, **extra}
    resp = await client.post("/postchatt/", json=body)
    return resp


async def test_post_then_get_returns_the_contract_rows(client):
    resp = await post(client, "ann", "first")
    assert resp.status == 200
    assert await resp.json() == {}
    await post(client, "bob", "second")

    resp = await client.get("/getchatts/")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    rows = await resp.json()
    assert [(r[0], r[1]) for r in rows] == [("ann", "first"), ("bob", "second")]
    for _username, _message, chatt_id, timestamp in rows:
        assert str(uuid.UUID(chatt_id)) == chatt_id
        assert ISO_UTC.match(timestamp), timestamp
        parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - parsed).total_seconds()) < 60


@pytest.mark.parametrize("path", ["/getchatts", "/getchatts/"])
async def test_paths_with_and_without_trailing_slash(client, path):
    assert (
        await client.post(
            path.replace("get", "post").replace("chatts", "chatt"), json={"username": "a", "message": "m"}
        )
    ).status == 200
    resp = await client.get(path)
    assert resp.status == 200
    assert len(await resp.json()) >= 1


async def test_name_is_accepted_for_username(client):
    resp = await client.post("/postchatt/", json={"name": "carol", "message": "hi"})
    assert resp.status == 200
    rows = await (await client.get("/getchatts/")).json()
    assert rows[-1][0] == "carol"


async def test_limit_returns_the_newest_oldest_first(client):
    for i in range(5):
        await post(client, "ann", f"m{i}")
    rows = await (await client.get("/getchatts/?limit=2")).json()
    assert [r[1] for r in rows] == ["m3", "m4"]


async def test_after_returns_only_later_chatts(client):
    for i in range(4):
        await post(client, "ann", f"m{i}")
    rows = await (await client.get("/getchatts/")).json()
    resp = await client.get(f"/getchatts/?after={rows[1][2]}")
    assert resp.status == 200
    assert [r[1] for r in await resp.json()] == ["m2", "m3"]
    last = await client.get(f"/getchatts/?after={rows[-1][2]}")
    assert await last.json() == []
    both = await client.get(f"/getchatts/?after={rows[0][2]}&limit=1")
    assert [r[1] for r in await both.json()] == ["m3"]


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=1001", "limit=abc", "limit=-1", "limit=1.5", "limit=", "limit=99999999999999999999"]
)
async def test_bad_limit_is_422(client, query):
    resp = await client.get(f"/getchatts/?{query}")
    assert resp.status == 422
    assert "limit" in (await resp.json())["message"]


@pytest.mark.parametrize("after", [str(uuid.uuid4()), "not-a-uuid", "%00", ""])
async def test_unknown_after_is_422(client, after):
    await post(client)
    resp = await client.get(f"/getchatts/?after={after}")
    assert resp.status == 422
    assert "after" in (await resp.json())["message"]


@pytest.mark.parametrize(
    ("field", "length", "status"),
    [("username", 255, 200), ("username", 256, 422), ("message", 1000, 200), ("message", 1001, 422)],
)
async def test_length_limits(client, field, length, status):
    body = {"username": "ann", "message": "hi", field: "x" * length}
    resp = await client.post("/postchatt/", json=body)
    assert resp.status == status
    if status == 422:
        assert str(length - 1) in (await resp.json())["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"message": "no username"},
        {"username": "ann"},
        {"username": "", "message": "x"},
        {"username": "ann", "message": ""},
        {"username": 5, "message": "x"},
        {"username": "ann", "message": ["x"]},
        {"username": "ann", "message": None},
        {"username": "a\x00b", "message": "x"},
        {"username": "ann", "message": "nul\x00"},
    ],
)
async def test_wrong_shapes_are_422(client, body):
    resp = await client.post("/postchatt/", json=body)
    assert resp.status == 422
    assert set(await resp.json()) == {"message"}


async def test_unicode_round_trips(client):
    text = "héllo 👋 世界"
    assert (await post(client, "zoë", text)).status == 200
    rows = await (await client.get("/getchatts/")).json()
    assert rows[-1][:2] == ["zoë", text]


async def test_open_posting_off_is_403(make_client):
    client = await make_client(open_posting=False)
    resp = await post(client)
    assert resp.status == 403
    assert "message" in await resp.json()


async def test_order_is_stable_under_concurrent_posts(client):
    resps = await asyncio.gather(*(post(client, "ann", f"c{i}") for i in range(40)))
    assert all(r.status == 200 for r in resps)
    first = await (await client.get("/getchatts/")).json()
    second = await (await client.get("/getchatts/")).json()
    assert len(first) == 40
    assert first == second
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT id::text FROM chatts ORDER BY seq")
        by_seq = [row[0] for row in await cur.fetchall()]
    assert [r[2] for r in first] == by_seq
    # ?after= of every chatt returns exactly the ones posted after it
    for index in (0, 17, 39):
        later = await (await client.get(f"/getchatts/?after={first[index][2]}")).json()
        assert later == first[index + 1 :]


@pytest.mark.parametrize("query", ["limit=100", "limit=100&after={anchor}"])
async def test_limit_uses_the_index_not_a_scan(client, query):
    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "INSERT INTO chatts (username, message) SELECT 'u', 'm' || g FROM generate_series(1, 20000) AS g"
        )
        await cur.execute("ANALYZE chatts")
        await cur.execute("SELECT id::text FROM chatts ORDER BY seq LIMIT 1 OFFSET 100")
        (anchor,) = await cur.fetchone()

        statement = LIST_CHATTS_AFTER if "after" in query else LIST_NEWEST_CHATTS
        await cur.execute("EXPLAIN " + statement, {"limit": 100, "after": anchor})
        plan = "\n".join(row[0] for row in await cur.fetchall())
    assert "Seq Scan" not in plan, plan
    assert "Index" in plan, plan
    resp = await client.get("/getchatts/?" + query.format(anchor=anchor))
    assert resp.status == 200
    assert len(await resp.json()) == 100
