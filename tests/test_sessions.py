"""Refresh tokens (rotation, reuse detection, the racing-refresh grace), recovery codes and the audit log."""

from __future__ import annotations

import asyncio
import hashlib

import pyotp
import pytest

import models
from core.keys import db_key, settings_key
from tests.support.common import CLIENT_ID, bearer, wait_for

PASSWORD = "correct horse battery"


async def sign_up(client, username="ann", role=None):
    assert (await client.post("/register", json={"username": username, "password": PASSWORD})).status == 201
    if role:
        await models.set_role(client.app[db_key], username, role)
    return await log_in(client, username)


async def log_in(client, username="ann", **extra):
    resp = await client.post("/login", json={"username": username, "password": PASSWORD, **extra})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def refresh(client, token, **kwargs):
    return await client.post("/token/refresh", json={"refresh_token": token}, **kwargs)


async def me(client, token):
    return (await client.get("/get-user", headers=bearer(token))).status


async def test_login_returns_a_refresh_token_that_rotates(client):
    first = await sign_up(client)
    assert len(first["refresh_token"]) == 43
    resp = await refresh(client, first["refresh_token"])
    assert resp.status == 200
    second = await resp.json()
    assert set(second) == {"token", "token_type", "expires_in", "refresh_token"}
    assert second["refresh_token"] != first["refresh_token"]
    assert await me(client, second["token"]) == 200
    resp = await refresh(client, second["refresh_token"])
    assert resp.status == 200


async def test_refresh_tokens_are_stored_hashed(client):
    body = await sign_up(client)
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT token_hash FROM refresh_tokens")
        stored = [bytes(row[0]) for row in await cur.fetchall()]
    assert stored == [hashlib.sha256(body["refresh_token"].encode()).digest()]


async def test_form_refresh_and_bad_tokens(client):
    body = await sign_up(client)
    assert (await client.post("/token/refresh", data={"refresh_token": body["refresh_token"]})).status == 200
    assert (await refresh(client, "x" * 43)).status == 401
    assert (await refresh(client, "short")).status == 401
    assert (await client.post("/token/refresh", json={})).status == 422


async def test_reuse_of_a_rotated_token_ends_the_whole_family(make_client):
    client = await make_client(refresh_grace_seconds=0)
    first = await sign_up(client)
    second = await (await refresh(client, first["refresh_token"])).json()
    third = await (await refresh(client, second["refresh_token"])).json()
    assert await me(client, third["token"]) == 200

    replay = await refresh(client, first["refresh_token"])
    assert replay.status == 401
    assert "already used" in (await replay.json())["message"]
    assert (await refresh(client, third["refresh_token"])).status == 401
    for token in (first["token"], second["token"], third["token"]):
        assert await me(client, token) == 401
    other_sign_in = await log_in(client)
    assert await me(client, other_sign_in["token"]) == 200  # other families are untouched


async def test_two_racing_refreshes_of_one_token_both_succeed(client):
    first = await sign_up(client)
    a, b = await asyncio.gather(refresh(client, first["refresh_token"]), refresh(client, first["refresh_token"]))
    assert a.status == b.status == 200
    body_a, body_b = await a.json(), await b.json()
    assert body_a["refresh_token"] == body_b["refresh_token"]
    assert await me(client, body_a["token"]) == 200 and await me(client, body_b["token"]) == 200
    assert (await refresh(client, body_a["refresh_token"])).status == 200


async def test_a_replay_from_another_client_within_the_grace_is_still_reuse(make_client):
    client = await make_client(trusted_proxies=1)
    first = await sign_up(client)
    here = await refresh(client, first["refresh_token"], headers={"X-Forwarded-For": "10.0.0.1"})
    assert here.status == 200
    there = await refresh(client, first["refresh_token"], headers={"X-Forwarded-For": "10.6.6.6"})
    assert there.status == 401
    assert await me(client, (await here.json())["token"]) == 401


async def test_reuse_detected_on_one_server_is_refused_on_another(make_client, client):
    other = await make_client(secret_key=client.app[settings_key].secret_key, refresh_grace_seconds=0)
    first = await sign_up(client)
    second = await (await refresh(client, first["refresh_token"])).json()
    assert await me(client, second["token"]) == 200
    assert (await refresh(other, first["refresh_token"])).status == 401  # no grace on that server

    async def refused():
        return await me(client, second["token"]) == 401

    await wait_for(refused, timeout=1.0, what="the other server to refuse the family's access token")


async def test_logout_ends_the_refresh_family(client):
    body = await sign_up(client)
    assert (await client.post("/logout", headers=bearer(body["token"]))).status == 204
    assert (await refresh(client, body["refresh_token"])).status == 401


async def test_logout_everywhere_ends_every_refresh_token(client):
    first = await sign_up(client)
    second = await log_in(client)
    assert (await client.post("/logout?everywhere=1", headers=bearer(first["token"]))).status == 204
    assert (await refresh(client, first["refresh_token"])).status == 401
    assert (await refresh(client, second["refresh_token"])).status == 401


async def test_google_sign_in_returns_a_refresh_token(client, google):
    token = google.id_token(client_id=CLIENT_ID, name="Gus")
    body = await (await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})).json()
    resp = await refresh(client, body["refresh_token"])
    assert resp.status == 200
    assert await me(client, (await resp.json())["token"]) == 200


# ---- recovery codes and switching TOTP off ---------------------------------------------------------------------


async def turn_on_totp(client, token):
    secret = (await (await client.post("/totp/setup", headers=bearer(token))).json())["secret"]
    totp = pyotp.TOTP(secret)
    assert (await client.post("/totp/enable", json={"otp": totp.now()}, headers=bearer(token))).status == 204
    return totp


async def test_recovery_codes_sign_in_once_each(client):
    body = await sign_up(client)
    assert (await client.post("/totp/recovery-codes", headers=bearer(body["token"]))).status == 422  # TOTP off
    await turn_on_totp(client, body["token"])
    resp = await client.post("/totp/recovery-codes", headers=bearer(body["token"]))
    assert resp.status == 200
    codes = (await resp.json())["codes"]
    assert len(codes) == len(set(codes)) == 10
    assert (await client.post("/login", json={"username": "ann", "password": PASSWORD})).status == 401
    assert (await log_in(client, otp=codes[0].upper()))["token"]
    again = await client.post("/login", json={"username": "ann", "password": PASSWORD, "otp": codes[0]})
    assert again.status == 401
    # a new set replaces the old one
    fresh = (await (await client.post("/totp/recovery-codes", headers=bearer(body["token"]))).json())["codes"]
    stale = await client.post("/login", json={"username": "ann", "password": PASSWORD, "otp": codes[1]})
    assert stale.status == 401
    assert (await log_in(client, otp=fresh[0]))["token"]
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT count(*) FROM recovery_codes WHERE code_hash = %s", (fresh[1].encode(),))
        assert await cur.fetchone() == (0,)


async def test_totp_can_be_turned_off_with_a_code(client):
    body = await sign_up(client)
    totp = await turn_on_totp(client, body["token"])
    wrong = await client.post(
        "/totp/disable", json={"otp": "000000" if totp.now() != "000000" else "111111"}, headers=bearer(body["token"])
    )
    assert wrong.status == 422
    import time

    resp = await client.post("/totp/disable", json={"otp": totp.at(time.time() + 30)}, headers=bearer(body["token"]))
    assert resp.status == 204
    assert (await log_in(client))["token"]
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT event FROM auth_events WHERE event LIKE 'totp%%' ORDER BY id")
        assert await cur.fetchall() == [("totp_on",), ("totp_off_failed",), ("totp_off",)]


# ---- the audit log -----------------------------------------------------------------------------------------------


async def audit(client, token, query=""):
    resp = await client.get("/audit" + query, headers=bearer(token))
    return resp.status, (await resp.json())


async def test_audit_log_records_auth_events_for_admins(make_client, google):
    client = await make_client(refresh_grace_seconds=0, trusted_proxies=1)
    admin = await sign_up(client, "root", role="admin")
    user = await sign_up(client, "ann")
    assert (await client.post("/login", json={"username": "ann", "password": "wrong password"})).status == 401
    # A refresh is audited when it comes from another address than the session's last (its last use says the rest).
    moved = {"X-Forwarded-For": "192.0.2.7"}
    rotated = await (await refresh(client, user["refresh_token"], headers=moved)).json()
    assert (await refresh(client, user["refresh_token"])).status == 401  # reuse
    assert await me(client, rotated["token"]) == 401
    await turn_on_totp(client, (await log_in(client, "ann"))["token"])
    second = await log_in(client, "root")
    assert (await client.post("/logout", headers=bearer(second["token"]))).status == 204
    token = google.id_token(client_id=CLIENT_ID, name="Gus")
    assert (await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})).status == 200

    status, body = await audit(client, admin["token"])
    assert status == 200
    seen = {(event["event"], event["kind"]) for event in body["events"]}
    for expected in [
        ("sign_in", "password"),
        ("sign_in", "google"),
        ("sign_in_failed", "password"),
        ("refresh", None),
        ("refresh_reuse", None),
        ("totp_on", None),
        ("logout", "jwt"),
    ]:
        assert expected in seen, expected
    ids = [event["id"] for event in body["events"]]
    assert ids == sorted(ids, reverse=True)
    status, page = await audit(client, admin["token"], f"?limit=2&before={ids[0]}")
    assert [event["id"] for event in page["events"]] == ids[1:3]


@pytest.mark.parametrize("role", [None, "moderator"])
async def test_audit_log_is_for_admins_only(client, role):
    body = await sign_up(client, role=role)
    assert (await audit(client, body["token"]))[0] == 403
    assert (await client.get("/audit")).status == 401
