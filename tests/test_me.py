"""The caller's own account: GET /me/export (everything kept about them) and DELETE /me (all of it, at once)."""

from __future__ import annotations

import asyncio

import orjson
import pyotp

from core.keys import settings_key, token_codec_key
from tests.support.common import bearer, wait_for
from tests.support.identities import (
    PASSWORD,
    adduser,
    google_user,
    link_body,
    log_in,
    password_user,
    rows,
    sql,
    whoami,
)


async def test_the_export_holds_everything_kept_and_no_secret(client, google):
    ann = await password_user(client, "ann")
    h = ann["headers"]
    secret = (await (await client.post("/totp/setup", headers=h)).json())["secret"]
    assert (await client.post("/totp/enable", json={"otp": pyotp.TOTP(secret).now()}, headers=h)).status == 204
    codes = (await (await client.post("/totp/recovery-codes", headers=h)).json())["codes"]
    assert (
        await client.post("/identities/google", json=link_body(google, "g-ann", email="ann@g.example"), headers=h)
    ).status == 201
    assert (await client.post("/postauth/", json={"message": "mine"}, headers=h)).status == 200
    assert (await client.post("/postchatt/", json={"username": "ann", "message": "anonymous"})).status == 200
    # A Google sign-in, then logged out: its session stays in the table, ended, until the purge.
    assert (
        await client.post(
            "/logout", headers=bearer(await adduser_token(client, google, "g-ann", email="ann@g.example"))
        )
    ).status == 204

    resp = await client.get("/me/export", headers=h)
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == 'attachment; filename="chatterd-export.json"'
    assert resp.headers["Cache-Control"] == "no-store"
    raw = await resp.read()
    export = orjson.loads(raw)
    assert set(export) == {
        "profile",
        "identities",
        "sessions",
        "passkeys",
        "chatts",
        "audit_events",
        "devices",
        "messages",
    }
    profile = export["profile"]
    assert (profile["id"], profile["username"], profile["role"]) == (ann["id"], "ann", "user")
    assert profile["has_password"] and profile["totp_enabled"] and profile["unused_recovery_codes"] == 10
    assert [(i["kind"], i.get("sub"), i.get("email")) for i in export["identities"]] == [
        ("password", None, None),
        ("google", "g-ann", "ann@g.example"),
    ]
    # Every session kept, the ended one (the Google sign-in logged out) too, with where and what from.
    kinds = sorted((s["kind"], s["ended_at"] is not None) for s in export["sessions"])
    assert kinds == [("google", True), ("password", False)]
    assert all(s["ip"] == "127.0.0.1" and s["device"] for s in export["sessions"])
    assert [(c["username"], c["message"]) for c in export["chatts"]] == [("ann", "mine")]  # only the signed ones
    events = {e["event"] for e in export["audit_events"]}
    assert {"sign_in", "identity_linked", "logout"} <= events
    assert all(e["user_id"] == ann["id"] for e in export["audit_events"])
    assert export["passkeys"] == []
    # Secrets are not in it: neither the password's hash nor the TOTP secret nor any credential.
    stored = await rows(client, "SELECT password_hash, totp_secret FROM users WHERE id = %s", ann["id"])
    for value in [*stored[0], secret, ann["token"], ann["refresh_token"], *codes]:
        assert value.encode() not in raw


async def adduser_token(client, google, sub, **claims):
    return (await (await adduser(client, google, sub, **claims)).json())["token"]


async def test_deleting_the_account_stops_every_credential_and_keeps_the_chatts(make_client, google):
    client = await make_client(cookie_secure=False)
    gina = await google_user(client, google, "g-gina", name="Gina", email="gina@example.com")
    assert (
        await client.post(
            "/identities/password", json={"username": "gina", "password": PASSWORD}, headers=gina["headers"]
        )
    ).status == 201
    by_password = await log_in(client, "gina")
    assert (await client.post("/postauth/", json={"chatterID": gina["chatterID"], "message": "first"})).status == 200
    assert (
        await client.post("/postauth/", json={"message": "second"}, headers=bearer(by_password["token"]))
    ).status == 200
    bob = await password_user(client, "bob")
    assert (await client.post("/postauth/", json={"message": "bob's"}, headers=bob["headers"])).status == 200
    # A browser signed in by the login cookie alone.
    browser = await client.post("/login", json={"username": "gina", "password": PASSWORD})
    cookie = browser.cookies["chatterd_token"].value
    client.session.cookie_jar.clear()

    resp = await client.delete("/me", headers=bearer(by_password["token"]))
    assert resp.status == 204
    assert resp.cookies["chatterd_token"].value == ""  # the caller's cookie is cleared
    for credential in (gina["token"], gina["chatterID"], by_password["token"], cookie):
        assert (await whoami(client, credential))[0] == 401
    for refresh in (gina["refresh_token"], by_password["refresh_token"]):
        assert (await client.post("/token/refresh", json={"refresh_token": refresh})).status == 401
    assert (await client.post("/login", json={"username": "gina", "password": PASSWORD})).status == 401
    assert (await client.get("/me/export", headers=bearer(gina["token"]))).status == 401

    # The chatts stay, under "[deleted]"; others' are untouched.
    chatts = await (await client.get("/getchatts/")).json()
    assert [(c[0], c[1]) for c in chatts] == [("[deleted]", "first"), ("[deleted]", "second"), ("bob", "bob's")]
    # Nothing personal is left: no row of the user, their sessions, identities, or addresses in the audit log.
    assert await rows(client, "SELECT count(*) FROM users WHERE id = %s", gina["id"]) == [(0,)]
    for table in ("sessions", "google_identities"):
        assert await rows(client, f"SELECT count(*) FROM {table} WHERE user_id = %s", gina["id"]) == [(0,)]
    # gina had the only chatterID
    assert await rows(client, "SELECT count(*) FROM sessions WHERE chatter_id_hash IS NOT NULL") == [(0,)]
    events = await rows(client, "SELECT event, address, detail::text FROM auth_events WHERE user_id = %s", gina["id"])
    assert ("account_deleted", None, "{}") in events and len(events) > 3
    assert all(address is None and "127.0.0.1" not in detail for _, address, detail in events)
    assert await rows(client, "SELECT count(*) FROM chatts WHERE username = 'gina' OR username = 'Gina'") == [(0,)]

    # The Google account and the name are free: they make a new, empty account.
    newcomer = await google_user(client, google, "g-gina")
    assert newcomer["id"] != gina["id"]
    assert (await client.post("/register", json={"username": "gina", "password": PASSWORD})).status == 201
    assert (await whoami(client, bob["token"]))[0] == 200


async def test_deleting_the_account_is_refused_to_the_only_admin(client):
    boss = await password_user(client, "boss", role="admin")
    assert (await client.delete("/me", headers=boss["headers"])).status == 409
    assert (await whoami(client, boss["token"]))[0] == 200
    deputy = await password_user(client, "deputy", role="admin")
    assert (await client.delete("/me", headers=boss["headers"])).status == 204
    assert (await client.delete("/me", headers=deputy["headers"])).status == 409


async def test_deleting_the_account_needs_a_recent_sign_in(client):
    ann = await password_user(client, "ann")
    await sql(client, "UPDATE sessions SET authenticated_at = now() - interval '1 hour'")
    resp = await client.delete("/me", headers=ann["headers"])
    assert resp.status == 401 and (await resp.json())["error"] == "reauth_required"
    assert (await whoami(client, ann["token"]))[0] == 200
    assert (await client.get("/me/export", headers=ann["headers"])).status == 200  # reading needs no step-up


async def test_a_deletion_racing_sign_ins_leaves_no_session(make_client, google):
    """Sign-ins of every kind while the account is deleted on another server: afterwards nothing of it is left, and
    no credential a racing sign-in got acts for it (a Google sign-in after the deletion makes a new user)."""
    a = await make_client(signup_max_per_address=10**6, login_max_failures_per_address=10**6)
    b = await make_client(signup_max_per_address=10**6, secret_key=a.app[settings_key].secret_key)
    codec = a.app[token_codec_key]
    for round_ in range(8):
        user = await google_user(a, google, f"g-{round_}")
        name = f"racer{round_}"
        body = {"username": name, "password": PASSWORD}
        assert (await a.post("/identities/password", json=body, headers=user["headers"])).status == 201
        refresh = (await log_in(a, name))["refresh_token"]
        sign_ins = [b.post("/login", json=body) for _ in range(3)] + [
            b.post("/token/refresh", json={"refresh_token": refresh}),
            adduser(b, google, f"g-{round_}"),
        ]
        answers = await asyncio.gather(a.delete("/me", headers=user["headers"]), *sign_ins)
        assert answers[0].status == 204
        assert {resp.status for resp in answers[1:]} <= {200, 401}
        assert await rows(a, "SELECT count(*) FROM sessions WHERE user_id = %s", user["id"]) == [(0,)]
        tokens = [(await resp.json())["token"] for resp in answers[1:] if resp.status == 200]
        theirs = [token for token in tokens if codec.decode(token).user_id == user["id"]]

        async def refused(tokens=theirs):
            return all([(await whoami(server, t))[0] == 401 for t in tokens for server in (a, b)])

        await wait_for(refused, timeout=1.0, what="the racing sign-ins' tokens to be refused")


async def test_deleting_the_account_deletes_its_mail(client):
    """Registered with an address: its verification code waits in the outbox, with the address; both go with the
    account."""
    body = {"username": "mia", "password": PASSWORD, "email": "mia@example.com"}
    assert (await client.post("/register", json=body)).status == 201
    token = (await log_in(client, "mia"))["token"]
    (user_id,) = (await rows(client, "SELECT id FROM users WHERE username = 'mia'"))[0]
    assert await rows(client, "SELECT count(*) FROM mail_outbox WHERE user_id = %s", user_id) != [(0,)]
    exported = await (await client.get("/me/export", headers=bearer(token))).json()
    assert [m["recipient"] for m in exported["messages"]] == ["mia@example.com"]
    assert exported["profile"]["email"] == "mia@example.com" and not exported["profile"]["email_verified"]
    assert (await client.delete("/me", headers=bearer(token))).status == 204
    assert await rows(client, "SELECT count(*) FROM mail_outbox WHERE recipient = 'mia@example.com'") == [(0,)]
