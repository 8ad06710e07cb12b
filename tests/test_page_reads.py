"""The page's reads: GET /chatts (signed chatts told from anonymous ones, as fresh as /getchatts/) and GET /account."""

from __future__ import annotations

import pytest

from core.keys import db_key, settings_key
from tests.support.accounts import PASSWORD, signed_in
from tests.support.common import CLIENT_ID, bearer
from tests.support.two_factor import signed_in_with_totp

FIELDS = ["id", "username", "message", "timestamp", "signed"]


async def page_chatts(client, query=""):
    resp = await client.get("/chatts" + query)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert list(body) == ["chatts"]
    assert all(list(chatt) == FIELDS for chatt in body["chatts"])
    return body["chatts"]


async def contract_rows(client, query=""):
    resp = await client.get("/getchatts/" + query)
    assert resp.status == 200, await resp.text()
    rows = await resp.json()
    assert all(len(row) == 4 for row in rows)  # as the course apps parse them, signed or not
    return rows


def as_rows(chatts):
    return [[c["username"], c["message"], c["id"], c["timestamp"]] for c in chatts]


async def google_sign_in(client, google):
    resp = await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID)})
    assert resp.status == 200, await resp.text()
    client.session.cookie_jar.clear()
    return await resp.json()


async def test_signed_chatts_are_told_from_anonymous_ones(client, google):
    token = await signed_in(client, "ann")
    assert (await client.post("/postauth/", json={"message": "by JWT"}, headers=bearer(token))).status == 200
    chatter_id = (await google_sign_in(client, google))["chatterID"]
    assert (await client.post("/postauth/", json={"chatterID": chatter_id, "message": "by chatterID"})).status == 200
    # Anyone may post under a registered name: that chatt is not signed.
    assert (await client.post("/postchatt/", json={"username": "ann", "message": "not ann"})).status == 200

    chatts = await page_chatts(client)
    assert [(c["username"], c["message"], c["signed"]) for c in chatts] == [
        ("ann", "by JWT", True),
        ("Test User", "by chatterID", True),
        ("ann", "not ann", False),
    ]
    assert as_rows(chatts) == await contract_rows(client)


async def fill(client, count):
    """`count` chatts, every third one signed by a user."""
    await signed_in(client, "ann")
    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "INSERT INTO chatts (username, message, user_id)"
            " SELECT 'ann', 'm' || g, CASE WHEN g %% 3 = 0 THEN (SELECT id FROM users) END"
            " FROM generate_series(1, %s) AS g",
            (count,),
        )
        await cur.execute("SELECT id::text FROM chatts ORDER BY seq")
        return [row[0] for row in await cur.fetchall()]


async def test_the_same_query_reads_the_same_chatts(client):
    ids = await fill(client, 6)
    for query in ["", "?limit=2", "?limit=1000", f"?after={ids[1]}", f"?after={ids[1]}&limit=2", f"?after={ids[-1]}"]:
        chatts = await page_chatts(client, query)
        assert as_rows(chatts) == await contract_rows(client, query), query
        assert [c["signed"] for c in chatts] == [int(c["message"][1:]) % 3 == 0 for c in chatts], query
    assert len(await page_chatts(client, f"?after={ids[1]}")) == 4


async def test_after_older_than_the_feed_goes_to_the_database_and_still_tells_signed(client):
    ids = await fill(client, 1500)
    assert len(await page_chatts(client)) == 1000
    later = await page_chatts(client, f"?after={ids[9]}&limit=5")
    assert [(c["message"], c["signed"]) for c in later] == [
        ("m1496", False),
        ("m1497", True),
        ("m1498", False),
        ("m1499", False),
        ("m1500", True),
    ]
    assert as_rows(later) == await contract_rows(client, f"?after={ids[9]}&limit=5")


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=x", "after=nope", "after=00000000-0000-4000-8000-000000000000"],
)
async def test_a_bad_query_is_422_as_at_getchatts(client, query):
    resp = await client.get("/chatts?" + query)
    assert resp.status == 422
    assert (await resp.json())["message"] == (await (await client.get("/getchatts/?" + query)).json())["message"]


async def test_both_reads_share_one_feed_and_one_version_check(client):
    await fill(client, 3)
    assert len(await page_chatts(client)) == 3
    before = client.app[db_key].queries
    for query in ["", "?limit=2", "?limit=1"]:
        await page_chatts(client, query)
        await contract_rows(client, query)
    assert client.app[db_key].queries == before + 6  # the version, nothing else: no cache of its own


async def test_writes_and_deletes_on_another_server_are_read_at_once(client, make_client):
    other = await make_client(secret_key=client.app[settings_key].secret_key)
    await signed_in(other, "mod")
    async with other.app[db_key].cursor() as cur:
        await cur.execute("UPDATE users SET role = 'moderator'")
    moderator = (await (await other.post("/login", json={"username": "mod", "password": PASSWORD})).json())["token"]
    other.session.cookie_jar.clear()
    assert await page_chatts(client) == []
    assert (await other.post("/postauth/", json={"message": "there"}, headers=bearer(moderator))).status == 200
    [there] = await page_chatts(client)
    assert (there["username"], there["message"], there["signed"]) == ("mod", "there", True)
    assert (await other.post("/postchatt/", json={"username": "mod", "message": "again"})).status == 200
    assert [c["signed"] for c in await page_chatts(client, f"?after={there['id']}")] == [False]
    assert (await other.delete(f"/chatts/{there['id']}", headers=bearer(moderator))).status == 204
    assert [c["message"] for c in await page_chatts(client)] == ["again"]


# ---- GET /account ------------------------------------------------------------------------------------------------


async def account(client, headers=None):
    resp = await client.get("/account", headers=headers or {})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_an_anonymous_caller_is_told_so_without_a_401(client):
    assert await account(client) == {"signed_in": False}
    assert await account(client, bearer("not-a-token")) == {"signed_in": False}
    token = await signed_in(client, "gone")
    async with client.app[db_key].cursor() as cur:
        await cur.execute("DELETE FROM users")
    assert await account(client, bearer(token)) == {"signed_in": False}


async def test_a_password_user_with_totp_off_then_on(client):
    token = await signed_in(client, "ann")
    assert await account(client, bearer(token)) == {
        "signed_in": True,
        "sign_in_kind": "password",
        "has_password": True,
        "totp_enabled": False,
        "recovery_codes_left": 0,
    }
    token, _ = await signed_in_with_totp(client, "bea")
    assert (await account(client, bearer(token)))["totp_enabled"] is True
    codes = (await (await client.post("/totp/recovery-codes", headers=bearer(token))).json())["codes"]
    assert (await account(client, bearer(token)))["recovery_codes_left"] == 10
    login = {"username": "bea", "password": PASSWORD, "otp": codes[0]}
    assert (await client.post("/login", json=login)).status == 200
    client.session.cookie_jar.clear()
    assert (await account(client, bearer(token)))["recovery_codes_left"] == 9
    assert (await client.post("/totp/disable", json={"otp": codes[1]}, headers=bearer(token))).status == 204
    after = await account(client, bearer(token))
    assert (after["totp_enabled"], after["recovery_codes_left"]) == (False, 0)


async def test_a_google_user_has_no_password_to_guard(client, google):
    signed = await google_sign_in(client, google)
    for credential in (signed["token"], signed["chatterID"]):
        assert await account(client, bearer(credential)) == {
            "signed_in": True,
            "sign_in_kind": "google",
            "has_password": False,
            "totp_enabled": False,
            "recovery_codes_left": 0,
        }
    # which is why the page offers no two-factor set-up: the server would refuse it
    assert (await client.post("/totp/setup", headers=bearer(signed["token"]))).status == 422


async def test_the_login_cookie_is_enough(make_client):
    client = await make_client(cookie_secure=False)
    assert (await client.post("/register", json={"username": "ann", "password": PASSWORD})).status == 201
    assert (await client.post("/login", json={"username": "ann", "password": PASSWORD})).status == 200
    assert (await account(client))["sign_in_kind"] == "password"  # by the cookie alone
