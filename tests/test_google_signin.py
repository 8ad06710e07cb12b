"""POST /adduser/ and POST /postauth/: Google ID tokens in, chatterIDs and JWTs out, and posting with them."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time

import jwt
import pytest

from auth.cookies import HOST_COOKIE_NAME
from core.keys import db_key, token_codec_key
from models.fragments import PURGE_BATCH
from tests.support.common import CLIENT_ID, wait_for
from tests.support.migrations import before_migration

HEX64 = re.compile(r"^[0-9a-f]{64}$")


async def add_user(client, google, *, client_id=CLIENT_ID, **token_args):
    token = google.id_token(client_id=client_id, **token_args)
    return await client.post("/adduser/", json={"clientID": client_id, "idToken": token})


async def sign_in(client, google, **token_args):
    resp = await add_user(client, google, **token_args)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def query(client, sql, *params):
    async with client.app[db_key].cursor() as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def test_adduser_issues_a_chatterid_and_a_jwt(client, google):
    body = await sign_in(client, google, name="Ann Smith", sub="g-1")
    assert set(body) == {"username", "chatterID", "lifetime", "token", "refresh_token"}
    assert body["username"] == "Ann Smith"
    assert HEX64.match(body["chatterID"])
    assert body["lifetime"] == 300
    claims = client.app[token_codec_key].decode(body["token"])
    (user_id,) = (await query(client, "SELECT user_id FROM google_identities WHERE sub = %s", "g-1"))[0]
    assert claims.user_id == user_id
    assert claims.username == "Ann Smith"
    assert claims.role == "user"


async def test_only_a_hash_of_the_chatterid_is_stored(client, google):
    body = await sign_in(client, google)
    rows = await query(client, "SELECT chatter_id_hash FROM sessions")
    assert [bytes(r[0]) for r in rows] == [hashlib.sha256(body["chatterID"].encode()).digest()]
    dump = await query(client, "SELECT row_to_json(s)::text FROM sessions s")
    assert body["chatterID"] not in dump[0][0]


async def test_missing_name_is_profile_na(client, google):
    body = await sign_in(client, google, name=None)
    assert body["username"] == "Profile NA"


async def test_lifetime_never_outlives_the_id_token(client, google):
    body = await sign_in(client, google, lifetime=100)
    assert 99 <= body["lifetime"] <= 101


async def test_same_google_account_is_always_the_same_user(client, google):
    first = await sign_in(client, google, sub="same", name="Old Name")
    second = await sign_in(client, google, sub="same", name="New Name")
    codec = client.app[token_codec_key]
    assert codec.decode(first["token"]).user_id == codec.decode(second["token"]).user_id
    assert second["username"] == "New Name"
    assert await query(client, "SELECT count(*), min(username) FROM users") == [(1, "New Name")]
    assert first["chatterID"] != second["chatterID"]


async def test_concurrent_first_sign_ins_make_one_user(client, google):
    resps = await asyncio.gather(*(add_user(client, google, sub="racer") for _ in range(10)))
    assert all(r.status == 200 for r in resps)
    assert await query(client, "SELECT count(*) FROM users") == [(1,)]


async def test_clientid_not_allowed_is_401(client, google):
    resp = await add_user(client, google, client_id="someone-else")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert "clientID" in (await resp.json())["message"]


@pytest.mark.parametrize(
    "token_args",
    [
        {"lifetime": -120},  # expired beyond the 50 s skew
        {"iat": int(time.time()) + 600},  # issued in the future
        {"issuer": "https://evil.example.com"},
        {"aud": "another-client"},
        {"sub": ""},
    ],
    ids=["expired", "iat-future", "iss", "aud", "empty-sub"],
)
async def test_refused_id_tokens_are_401(client, google, token_args):
    resp = await add_user(client, google, **token_args)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert (await resp.json())["message"]


async def test_forged_signatures_are_401(client, google):
    from tools.fake_google import FakeGoogle

    other = FakeGoogle()
    forged = other.sign(
        {
            "iss": "accounts.google.com",
            "aud": CLIENT_ID,
            "sub": "x",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
        },
        headers={"kid": google.kid},  # the real key's id on a signature by another key
    )
    none_alg = jwt.encode({"iss": "accounts.google.com", "aud": CLIENT_ID, "sub": "x"}, None, algorithm="none")
    for token in [forged, none_alg, "garbage", "a.b.c", forged[:-10]]:
        resp = await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})
        assert resp.status == 401, token


async def test_hosted_domain_is_enforced(make_client, google):
    client = await make_client(google_hosted_domain="example.edu")
    assert (await add_user(client, google, hd="example.edu")).status == 200
    assert (await add_user(client, google, hd="other.edu")).status == 401
    assert (await add_user(client, google)).status == 401


async def test_without_configured_client_ids_the_request_clientid_is_the_audience(make_client, google):
    client = await make_client(google_client_ids=())
    assert (await add_user(client, google, client_id="lab-client")).status == 200
    token = google.id_token(client_id="lab-client")
    resp = await client.post("/adduser/", json={"clientID": "other-client", "idToken": token})
    assert resp.status == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"clientID": CLIENT_ID},
        {"idToken": "x"},
        {"clientID": 1, "idToken": "x"},
        {"clientID": CLIENT_ID, "idToken": ""},
    ],
)
async def test_wrong_shapes_are_422(client, body):
    resp = await client.post("/adduser/", json=body)
    assert resp.status == 422


async def test_a_thousand_warm_sign_ins_fetch_no_certificates(client, google):
    await sign_in(client, google)
    fetches = google.fetches
    for batch in range(20):
        resps = await asyncio.gather(*(add_user(client, google, sub=f"u{batch}-{i}") for i in range(50)))
        assert all(r.status == 200 for r in resps)
    assert google.fetches == fetches


async def test_forged_kids_cannot_make_chatterd_hammer_google(client, google):
    await sign_in(client, google)
    fetches = google.fetches
    for i in range(20):
        token = google.sign(
            {
                "iss": "accounts.google.com",
                "aud": CLIENT_ID,
                "sub": "x",
                "iat": int(time.time()),
                "exp": int(time.time()) + 60,
            },
            headers={"kid": f"forged-{i}"},
        )
        resp = await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})
        assert resp.status == 401
    assert google.fetches - fetches <= 1


async def test_certificates_down_and_none_cached_is_503_then_recovers(client, google):
    google.failing = True
    resp = await add_user(client, google)
    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) >= 1
    assert "message" in await resp.json()

    google.failing = False

    async def signs_in():
        return (await add_user(client, google)).status == 200

    await wait_for(signs_in, timeout=40, what="sign-in to work once Google is back")


# ---- POST /postauth/ -------------------------------------------------------------------------------------------


async def chatts(client):
    return await (await client.get("/getchatts/")).json()


async def test_postauth_with_chatterid_in_body(client, google):
    body = await sign_in(client, google, name="Ann")
    resp = await client.post("/postauth/", json={"chatterID": body["chatterID"], "message": "signed"})
    assert resp.status == 200
    assert await resp.json() == {}
    assert [r[:2] for r in await chatts(client)] == [["Ann", "signed"]]


@pytest.mark.parametrize("scheme", ["Bearer ", "bearer ", ""])
@pytest.mark.parametrize("kind", ["chatterID", "token"])
async def test_postauth_with_authorization_header(client, google, scheme, kind):
    body = await sign_in(client, google, name="Bo")
    resp = await client.post("/postauth/", json={"message": "hi"}, headers={"Authorization": scheme + body[kind]})
    assert resp.status == 200
    assert [r[:2] for r in await chatts(client)] == [["Bo", "hi"]]


@pytest.mark.parametrize(
    "credential",
    ["0" * 64, "not-a-credential", "", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."],
)
async def test_postauth_with_unknown_or_forged_credential_is_401(client, credential):
    resp = await client.post("/postauth/", json={"chatterID": credential, "message": "x"})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert await chatts(client) == []


async def test_postauth_without_credentials_is_401(client):
    resp = await client.post("/postauth/", json={"message": "x"})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_postauth_with_expired_chatterid_is_401(client, google):
    body = await sign_in(client, google)
    await query(client, "UPDATE sessions SET chatter_id_expires_at = now() - interval '1 second' RETURNING 1")
    resp = await client.post("/postauth/", json={"chatterID": body["chatterID"], "message": "late"})
    assert resp.status == 401
    assert await chatts(client) == []


async def test_postauth_jwt_signed_with_another_key_is_401(client, google):
    body = await sign_in(client, google)
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    forged = jwt.encode({**claims, "role": "admin"}, "x" * 48, algorithm="HS256")
    resp = await client.post("/postauth/", json={"message": "x"}, headers={"Authorization": f"Bearer {forged}"})
    assert resp.status == 401


async def test_header_credential_comes_before_the_body(client, google):
    body = await sign_in(client, google)
    resp = await client.post(
        "/postauth/",
        json={"chatterID": body["chatterID"], "message": "x"},
        headers={"Authorization": "Bearer " + "1" * 64},
    )
    assert resp.status == 401


async def test_postauth_message_limits(client, google):
    body = await sign_in(client, google)
    resp = await client.post("/postauth/", json={"chatterID": body["chatterID"], "message": "x" * 1001})
    assert resp.status == 422
    assert "1000" in (await resp.json())["message"]


async def test_cookie_credential_needs_same_origin_for_posts(client, google):
    body = await sign_in(client, google, name="Cy")
    cookie = {"Cookie": f"{HOST_COOKIE_NAME}={body['token']}"}
    resp = await client.post("/postauth/", json={"message": "csrf"}, headers=cookie)
    assert resp.status == 403
    origin = f"http://{client.server.host}:{client.server.port}"
    resp = await client.post("/postauth/", json={"message": "ok"}, headers={**cookie, "Origin": origin})
    assert resp.status == 200
    resp = await client.post("/postauth/", json={"message": "x"}, headers={**cookie, "Origin": "https://evil.example"})
    assert resp.status == 403


async def test_sign_ins_purge_expired_sessions_with_their_chatterids_a_bounded_number_at_a_time(client, google):
    await sign_in(client, google, sub="owner")
    await query(
        client,
        "INSERT INTO sessions (id, user_id, kind, expires_at, chatter_id_hash, chatter_id_expires_at)"
        " SELECT gen_random_uuid(), (SELECT min(user_id) FROM sessions), 'google', now() - interval '1 hour',"
        " sha256(g::text::bytea), now() - interval '2 hours' FROM generate_series(1, 50) AS g RETURNING 1",
    )
    expired = "SELECT count(*) FROM sessions WHERE expires_at < now() AND chatter_id_hash IS NOT NULL"
    await sign_in(client, google, sub="owner")
    assert await query(client, expired) == [(50 - PURGE_BATCH,)]
    for _ in range(2):
        await sign_in(client, google, sub="owner")
    assert await query(client, expired) == [(0,)]
    assert await query(client, "SELECT count(*) FROM sessions WHERE chatter_id_hash IS NOT NULL") == [(4,)]


async def test_chatterids_issued_before_they_moved_onto_sessions_keep_working(make_database, make_client):
    """Live chatterIDs of live sessions carry over to the sessions' rows; expired ones and those of ended sessions
    do not."""
    live, expired, ended = (f"{n:064x}" for n in (1, 2, 3))
    url = make_database()
    async with before_migration(url, "chatter_ids_on_sessions") as db, db.cursor() as cur:
        await cur.execute("INSERT INTO users (username) VALUES ('Old Google') RETURNING id")
        (user_id,) = await cur.fetchone()
        for n, (chatter_id, lifetime, ended_at) in enumerate(
            ((live, "1 hour", None), (expired, "-1 second", None), (ended, "1 hour", "now()"))
        ):
            session_id = f"00000000-0000-0000-0000-00000000000{n}"
            await cur.execute(
                f"INSERT INTO sessions (id, user_id, kind, expires_at, ended_at)"
                f" VALUES (%s, %s, 'google', now() + interval '1 day', {ended_at or 'NULL'})",
                (session_id, user_id),
            )
            await cur.execute(
                "INSERT INTO chatter_sessions (id_hash, session_id, expires_at)"
                " VALUES (sha256(%s::bytea), %s, now() + %s::interval)",
                (chatter_id.encode(), session_id, lifetime),
            )
    client = await make_client(database_url=url)
    statuses = [
        (await client.post("/postauth/", json={"chatterID": chatter_id, "message": "hi"})).status
        for chatter_id in (live, expired, ended)
    ]
    assert statuses == [200, 401, 401]
    assert [chatt[:2] for chatt in await (await client.get("/getchatts/")).json()] == [["Old Google", "hi"]]
