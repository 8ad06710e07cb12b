"""Group commit of chatts: concurrent posts share statements, and each is acknowledged only once stored."""

from __future__ import annotations

import asyncio

import pytest

from core.keys import db_key, writer_key
from tests.support.common import CLIENT_ID, wait_for


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


async def sign_in(client, google, name):
    token = google.id_token(client_id=CLIENT_ID, name=name, sub=name)
    resp = await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})
    assert resp.status == 200
    return await resp.json()


async def sql(client, statement, *params):
    async with client.app[db_key].cursor() as cur:
        await cur.execute(statement, params)


async def test_a_post_the_database_refuses_fails_alone_and_its_batch_is_stored(make_client, make_database, google):
    """A rule an operator added to chatts: the posts that break it get 422, every other post of the burst a 200."""
    client = await make_client(database_url=make_database())
    signed_in = await sign_in(client, google, "Ann")
    await sql(client, "ALTER TABLE chatts ADD CONSTRAINT no_spam CHECK (message NOT LIKE 'spam%%')")

    def body(i):
        message = f"spam {i}" if i % 10 == 3 else f"ham {i}"
        return [
            {"username": "anon", "message": message},
            {"chatterID": signed_in["chatterID"], "message": message},
            {"message": message},
        ][i % 3], message

    bodies = [body(i) for i in range(90)]
    resps = await asyncio.gather(
        *(
            client.post(
                "/postchatt/" if i % 3 == 0 else "/postauth/",
                json=payload,
                headers={"Authorization": f"Bearer {signed_in['token']}"} if i % 3 == 2 else {},
            )
            for i, (payload, _) in enumerate(bodies)
        )
    )
    statuses = [resp.status for resp in resps]
    assert statuses == [422 if message.startswith("spam") else 200 for _, message in bodies]
    rows = await (await client.get("/getchatts/")).json()
    assert sorted(row[1] for row in rows) == sorted(m for _, m in bodies if m.startswith("ham"))


async def user_id(client, name):
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT id FROM users WHERE username = %s", (name,))
        return (await cur.fetchone())[0]


async def test_a_post_whose_user_was_deleted_meanwhile_is_refused_alone(client, google):
    """Authenticated, then the user is deleted before the batch is stored: that post is refused, the rest stored."""
    for name in ("Kept", "Gone"):
        await sign_in(client, google, name)
    kept, gone = await user_id(client, "Kept"), await user_id(client, "Gone")
    writer = client.app[writer_key]
    for deletion, tag in [
        ("UPDATE users SET deleted_at = now() WHERE id = %s", "marked"),
        ("DELETE FROM users WHERE id = %s", "removed"),
    ]:
        await sql(client, deletion, gone)
        stored = await asyncio.gather(
            *(writer.add("Gone", f"gone {tag} {i}", gone) for i in range(5)),
            *(writer.add("Kept", f"kept {tag} {i}", kept) for i in range(5)),
            writer.add("anon", f"anonymous {tag}"),
        )
        assert stored == [False] * 5 + [True] * 6
    rows = await (await client.get("/getchatts/")).json()
    expected = [f"kept {tag} {i}" for tag in ("marked", "removed") for i in range(5)] + [
        "anonymous marked",
        "anonymous removed",
    ]
    assert sorted(row[1] for row in rows) == sorted(expected)
    assert {row[0] for row in rows} == {"Kept", "anon"}


@pytest.mark.parametrize("deletion", ["UPDATE users SET deleted_at = now()", "DELETE FROM users"])
async def test_a_deleted_users_jwt_and_chatterid_post_nothing(client, google, deletion):
    signed_in = await sign_in(client, google, "Gone")
    for credential in (signed_in["token"], signed_in["chatterID"]):
        resp = await client.post(
            "/postauth/", json={"message": "before"}, headers={"Authorization": f"Bearer {credential}"}
        )
        assert resp.status == 200
    await sql(client, deletion)

    async def refused():
        statuses = set()
        for credential in (signed_in["token"], signed_in["chatterID"]):
            for how in ({"headers": {"Authorization": f"Bearer {credential}"}}, {}):
                body = {"message": "after"} if how else {"message": "after", "chatterID": credential}
                statuses.add((await client.post("/postauth/", json=body, **how)).status)
        return statuses == {401}

    await wait_for(refused, timeout=1.0, what="the deleted user's credentials to be refused")
    rows = await (await client.get("/getchatts/")).json()
    assert [row[1] for row in rows] == ["before", "before"]
