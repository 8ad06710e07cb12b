"""How sessions live: last use without a write per request, idle and absolute limits, purges, refresh rate, pruning."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import models
from auth.cookies import HOST_COOKIE_NAME
from auth.tokens import hash_chatter_id
from core.keys import authenticator_key, db_key, settings_key, token_codec_key
from models.fragments import PURGE_BATCH, PURGE_SESSIONS
from models.records import ChatterIdOwner
from tests.support.common import CLIENT_ID, bearer, wait_for

PASSWORD = "correct horse battery"


async def sign_up(client, username: str = "ann") -> Any:
    assert (await client.post("/register", json={"username": username, "password": PASSWORD})).status == 201
    return await log_in(client, username)


async def log_in(client, username: str = "ann") -> Any:
    resp = await client.post("/login", json={"username": username, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    client.session.cookie_jar.clear()
    return await resp.json()


async def query(client, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """One statement that returns rows (writes say RETURNING)."""
    async with client.app[db_key].cursor() as cur:
        await cur.execute(statement, params)
        return await cur.fetchall()


async def refresh(client, token: str, **kwargs: Any):
    return await client.post("/token/refresh", json={"refresh_token": token}, **kwargs)


def session_of(client, token: str) -> str:
    session_id = client.app[token_codec_key].decode(token).session_id
    assert session_id is not None
    return session_id


async def me(client, token: str) -> int:
    return (await client.get("/get-user", headers=bearer(token))).status


def stale_token(client, token: str, age: float) -> str:
    """A JWT of the same session as `token`, issued `age` seconds ago (as another worker may have minted it)."""
    claims = client.app[token_codec_key].decode(token)
    stale, _ = client.app[token_codec_key].mint(
        claims.user_id, claims.username, claims.role, now=time.time() - age, session_id=claims.session_id
    )
    return stale


# ---- last use ----------------------------------------------------------------------------------------------------


async def test_authenticated_requests_write_no_last_use_each(make_client):
    signer = await make_client()  # another worker signs in: this one has never seen the session
    client = await make_client(secret_key=signer.app[settings_key].secret_key)
    body = await sign_up(signer)
    session_id = session_of(client, body["token"])
    db, activity = client.app[db_key], client.app[authenticator_key].activity
    assert await me(client, body["token"]) == 200  # reads the user's standing once
    before = db.queries
    assert {await me(client, body["token"]) for _ in range(50)} == {200}
    assert db.queries == before  # the JWT was issued a moment ago, with the session's last use written

    # Five minutes later (a JWT of then, the row as old): fifty requests at once cost one statement.
    await query(client, "UPDATE sessions SET last_seen_at = now() - interval '5 minutes' RETURNING 1")
    stale = stale_token(client, body["token"], 300)
    before = db.queries
    assert {
        r.status for r in await asyncio.gather(*(client.get("/get-user", headers=bearer(stale)) for _ in range(50)))
    } == {200}
    await wait_for(lambda: asyncio.sleep(0, activity.idle), timeout=5, what="the last use to be written")
    assert {await me(client, stale) for _ in range(50)} == {200}
    assert db.queries == before + 1
    ((age,),) = await query(
        client, "SELECT extract(epoch FROM now() - last_seen_at) FROM sessions WHERE id = %s", session_id
    )
    assert age < 5


async def test_a_chatterids_use_writes_no_last_use_each(client, google):
    body = await (
        await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID)})
    ).json()
    db = client.app[db_key]
    assert (await client.get("/get-user", headers={"Authorization": body["chatterID"]})).status == 200
    before = db.queries  # after the first look-up, which reads the chatterID and caches it
    for _ in range(30):
        assert (await client.get("/get-user", headers={"Authorization": body["chatterID"]})).status == 200
    assert db.queries == before


async def test_last_use_is_written_once_a_minute_whichever_worker_asks(make_client):
    signer = await make_client()
    one = await make_client(secret_key=signer.app[settings_key].secret_key)
    two = await make_client(secret_key=signer.app[settings_key].secret_key)
    body = await sign_up(signer)
    session_id = session_of(one, body["token"])
    await query(one, "UPDATE sessions SET last_seen_at = now() - interval '5 minutes' RETURNING 1")
    stale = stale_token(one, body["token"], 300)
    row = "SELECT xmin::text::bigint, last_seen_at FROM sessions WHERE id = %s"

    async def written() -> Any:
        ((xmin, seen),) = await query(one, row, session_id)
        return (xmin, seen) if seen.timestamp() > time.time() - 10 else None

    assert await me(one, stale) == 200
    first = await wait_for(written, timeout=5, what="the first worker to write the last use")
    before = two.app[db_key].queries
    assert await me(two, stale) == 200
    activity = two.app[authenticator_key].activity
    await wait_for(lambda: asyncio.sleep(0, activity.idle), timeout=5, what="the second worker to ask")
    assert two.app[db_key].queries == before + 2  # the user's standing, and the last use
    assert await query(one, row, session_id) == [first]  # asked, but not written again: the row is not a minute old
    after = two.app[db_key].queries
    assert {await me(two, stale) for _ in range(20)} == {200}
    assert two.app[db_key].queries == after  # and the second worker now knows it


# ---- idle and absolute limits ------------------------------------------------------------------------------------


async def test_an_idle_session_ends(client):
    idle = client.app[settings_key].session_idle_timeout
    body = await sign_up(client)
    other = await log_in(client)
    resp = await refresh(client, body["refresh_token"])
    assert resp.status == 200
    successor = (await resp.json())["refresh_token"]
    session_id = session_of(client, body["token"])
    await query(
        client,
        "UPDATE sessions SET last_seen_at = now() - make_interval(secs => %s) WHERE id = %s RETURNING 1",
        idle + 1,
        session_id,
    )
    resp = await client.get("/sessions", headers=bearer(other["token"]))
    assert [s["id"] for s in (await resp.json())["sessions"]] == [session_of(client, other["token"])]
    current = "SELECT count(*) FROM refresh_tokens WHERE session_id = %s AND rotated_at IS NULL"
    assert await query(client, current, session_id) == [(1,)]  # its refresh token is still stored, and refused
    assert (await refresh(client, successor)).status == 401
    assert (await refresh(client, other["refresh_token"])).status == 200
    assert (await client.delete(f"/sessions/{session_id}", headers=bearer(other["token"]))).status == 404


async def test_a_session_ends_at_its_absolute_limit_and_its_jwts_never_outlive_it(make_client):
    client = await make_client(session_max_age=600)
    body = await sign_up(client)
    claims = client.app[token_codec_key].decode(body["token"])
    assert body["expires_in"] == 600 and claims.expires_at - claims.issued_at <= 600
    session_id = claims.session_id
    await query(
        client, "UPDATE sessions SET expires_at = now() + interval '30 seconds' WHERE id = %s RETURNING 1", session_id
    )
    resp = await refresh(client, body["refresh_token"])
    assert resp.status == 200
    rotated = await resp.json()
    claims = client.app[token_codec_key].decode(rotated["token"])
    assert rotated["expires_in"] <= 30 and claims.expires_at <= time.time() + 31
    ((later,),) = await query(
        client,
        "SELECT bool_and(t.expires_at <= s.expires_at) FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id"
        " WHERE t.rotated_at IS NULL",
    )
    assert later
    await query(
        client, "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = %s RETURNING 1", session_id
    )
    assert (await refresh(client, rotated["refresh_token"])).status == 401
    other = await log_in(client)
    listed = (await (await client.get("/sessions", headers=bearer(other["token"]))).json())["sessions"]
    assert session_id not in {s["id"] for s in listed}


async def test_sessions_past_their_limits_are_purged_in_bounded_batches(client, google):
    body = await sign_up(client)
    live = session_of(client, body["token"])
    idle, keep = client.app[settings_key].session_idle_timeout, client.app[authenticator_key].policy.keep_ended
    for condition in [
        "expires_at => now() - interval '1 second'",
        f"expires_at => now() + interval '1 day', last_seen_at => now() - interval '{idle + 60} seconds'",
        f"expires_at => now() + interval '1 day', ended_at => now() - interval '{keep + 60} seconds'",
    ]:
        columns = dict(part.split(" => ") for part in condition.split(", "))
        await query(
            client,
            f"INSERT INTO sessions (id, user_id, kind, device, {', '.join(columns)})"
            f" SELECT gen_random_uuid(), 1, 'password', 'old', {', '.join(columns.values())}"
            " FROM generate_series(1, 50) RETURNING 1",
        )
    await query(
        client,
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at)"
        " SELECT sha256(id::text::bytea), id, now() + interval '1 day' FROM sessions WHERE device = 'old' RETURNING 1",
    )
    counts = "SELECT count(*) FILTER (WHERE device = 'old'), count(*) FILTER (WHERE id = %s) FROM sessions"
    assert await query(client, counts, live) == [(150, 1)]
    await log_in(client)  # each sign-in removes up to PURGE_BATCH of each kind
    assert await query(client, counts, live) == [(150 - 3 * PURGE_BATCH, 1)]
    await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID)})
    await log_in(client)
    assert await query(client, counts, live) == [(0, 1)]
    # Their credentials went with them; the live session and the sign-ins' own are untouched.
    assert await query(
        client, "SELECT count(*) FROM refresh_tokens WHERE session_id NOT IN (SELECT id FROM sessions)"
    ) == [(0,)]
    assert await me(client, body["token"]) == 200


async def test_the_purge_reads_through_its_indexes(client):
    await sign_up(client)
    await query(
        client,
        "INSERT INTO sessions (id, user_id, kind, expires_at, last_seen_at)"
        " SELECT gen_random_uuid(), 1, 'password', now() + g * interval '1 minute', now() - g * interval '1 second'"
        " FROM generate_series(1, 20000) AS g RETURNING 1",
    )
    async with client.app[db_key].cursor() as cur:
        await cur.execute("ANALYZE sessions")
    plan = "\n".join(
        row[0]
        for row in await query(
            client,
            f"EXPLAIN WITH {PURGE_SESSIONS} SELECT 1".replace("%(idle_timeout)s", "%s").replace("%(keep_ended)s", "%s"),
            1209600,
            960,
        )
    )
    assert "Seq Scan on sessions" not in plan, plan
    for index in ("sessions_expires_at", "sessions_last_seen_at", "sessions_ended_at"):
        assert index in plan, plan


# ---- refresh: rate, pruning, reuse ---------------------------------------------------------------------------------


async def test_refresh_rotation_is_limited_per_session(make_client):
    client = await make_client(refresh_max_per_session=3, refresh_window_seconds=3600)
    body = await sign_up(client)
    other = await log_in(client)
    token = body["refresh_token"]
    for _ in range(3):
        resp = await refresh(client, token)
        assert resp.status == 200
        token = (await resp.json())["refresh_token"]
    limited = await refresh(client, token)
    assert limited.status == 429
    assert 3590 <= int(limited.headers["Retry-After"]) <= 3600
    assert (await refresh(client, other["refresh_token"])).status == 200  # another session has its own count
    # Racing repeats of one refresh (the grace) count once.
    await query(client, "UPDATE sessions SET refresh_window_start = now() - interval '2 hours' RETURNING 1")
    repeats = await asyncio.gather(*(refresh(client, token) for _ in range(10)))
    assert {resp.status for resp in repeats} == {200}
    ((count,),) = await query(client, "SELECT refreshes FROM sessions WHERE id = %s", session_of(client, body["token"]))
    assert count == 1


async def test_expired_rotated_rows_are_pruned_and_reuse_is_still_caught(make_client):
    client = await make_client(refresh_grace_seconds=0)
    body = await sign_up(client)
    session_id = session_of(client, body["token"])
    chain = [body["refresh_token"]]
    for _ in range(3):
        chain.append((await (await refresh(client, chain[-1])).json())["refresh_token"])
    rows = "SELECT count(*) FROM refresh_tokens WHERE session_id = %s"
    assert await query(client, rows, session_id) == [(4,)]
    # The oldest has expired: reuse detection no longer needs it, and the next rotation prunes it.
    await query(
        client,
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = sha256(%s::bytea)"
        " RETURNING 1",
        chain[0].encode(),
    )
    chain.append((await (await refresh(client, chain[-1])).json())["refresh_token"])
    assert await query(client, rows, session_id) == [(4,)]
    assert (await refresh(client, chain[0])).status == 401  # expired, pruned: refused, the session goes on
    assert await me(client, body["token"]) == 200
    # A rotated token that has not expired is still known: presenting it again ends the whole session.
    resp = await refresh(client, chain[1])
    assert resp.status == 401 and "already used" in (await resp.json())["message"]
    assert await query(client, rows, session_id) == [(0,)]
    assert (await refresh(client, chain[-1])).status == 401


# ---- step-up time and the chatterID cache ---------------------------------------------------------------------------


async def test_the_time_of_the_last_sign_in_is_kept_per_session(client):
    body = await sign_up(client)
    other = await sign_up(client, "bob")
    db, policy = client.app[db_key], client.app[authenticator_key].policy
    session_id = session_of(client, body["token"])
    signed_in = await models.session_authenticated_at(db, session_id=session_id, policy=policy)
    assert signed_in is not None and abs(signed_in - time.time()) < 5
    await query(client, "UPDATE sessions SET authenticated_at = now() - interval '1 hour' RETURNING 1")
    assert await models.session_authenticated_at(db, session_id=session_id, policy=policy) < time.time() - 3500
    assert not await models.mark_authenticated(db, session_id=session_id, user_id=2, policy=policy)  # not bob's
    assert await models.mark_authenticated(db, session_id=session_id, user_id=1, policy=policy)
    assert await models.session_authenticated_at(db, session_id=session_id, policy=policy) > time.time() - 5
    assert (await client.post("/logout", headers=bearer(body["token"]))).status == 204
    assert await models.session_authenticated_at(db, session_id=session_id, policy=policy) is None
    assert not await models.mark_authenticated(db, session_id=session_id, user_id=1, policy=policy)
    assert await me(client, other["token"]) == 200


async def test_a_chatterid_read_before_its_session_ended_is_never_cached_after(client):
    store = client.app[authenticator_key].store
    chatter_hash = hash_chatter_id("a" * 64)
    assert chatter_hash is not None
    owner = ChatterIdOwner(1, "00000000-0000-4000-8000-000000000001", time.time() + 300)
    generation = store.generation  # the row is read now ...
    store.apply(f"session:{owner.session_id}")  # ... the session ends meanwhile ...
    store.cache_chatter_id(chatter_hash, owner, generation)  # ... and the stale row must not be kept
    assert store.cached_chatter_id(chatter_hash, time.time()) is None
    store.cache_chatter_id(chatter_hash, owner, store.generation)
    assert store.cached_chatter_id(chatter_hash, time.time()) == owner
    assert store.session_ended(owner.session_id)  # and even cached, its session is refused


# ---- the login cookie slides ---------------------------------------------------------------------------------------


async def test_a_login_cookie_slides_while_its_session_lives(client):
    body = await sign_up(client)
    codec = client.app[token_codec_key]
    session_id = session_of(client, body["token"])

    async def by_cookie(token: str) -> Any:
        client.session.cookie_jar.clear()
        resp = await client.get("/get-user", headers={"Cookie": f"{HOST_COOKIE_NAME}={token}"})
        return resp.status, resp.cookies.get(HOST_COOKIE_NAME)

    assert await by_cookie(body["token"]) == (200, None)  # fresh: nothing to renew
    old = stale_token(client, body["token"], 600)  # a third of its life left
    status, renewed = await by_cookie(old)
    assert status == 200 and renewed["httponly"] and renewed["samesite"] == "Lax"
    claims = codec.decode(renewed.value)
    assert claims.session_id == session_id and claims.expires_at > codec.decode(old).expires_at
    assert int(renewed["max-age"]) == client.app[settings_key].jwt_lifetime
    resp = await client.get("/get-user", headers=bearer(old))
    assert resp.status == 200 and "Set-Cookie" not in resp.headers  # only a cookie slides

    # Near its absolute limit the new cookie ends with the session; an idle or ended session is never renewed.
    await query(client, "UPDATE sessions SET expires_at = now() + interval '100 seconds' RETURNING 1")
    status, renewed = await by_cookie(old)
    assert status == 200 and int(renewed["max-age"]) <= 100
    await query(client, "UPDATE sessions SET last_seen_at = now() - interval '15 days' RETURNING 1")
    assert await by_cookie(old) == (200, None)
    await query(client, "UPDATE sessions SET last_seen_at = now(), expires_at = now() + interval '1 day' RETURNING 1")
    assert (await client.post("/logout", headers=bearer(body["token"]))).status == 204
    assert await by_cookie(old) == (401, None)
