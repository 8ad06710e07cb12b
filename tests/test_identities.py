"""Identities: a password and Google accounts on one user; linking, adding, removing, never the last way in."""

from __future__ import annotations

import asyncio

import pyotp

from core.keys import settings_key
from tests.support.common import CLIENT_ID, bearer
from tests.support.identities import (
    PASSWORD,
    adduser,
    google_user,
    identities,
    link_body,
    log_in,
    password_user,
    rows,
    sign_in_long_ago,
    sql,
    whoami,
)
from tests.support.migrations import before_migration


async def test_a_google_user_has_one_google_identity(client, google):
    gina = await google_user(client, google, "g-gina", name="Gina", email="gina@example.com")
    [identity] = await identities(client, gina["headers"])
    assert identity.keys() == {"kind", "id", "sub", "email", "created_at"}
    assert (identity["kind"], identity["sub"], identity["email"]) == ("google", "g-gina", "gina@example.com")


async def test_a_linked_google_account_signs_in_to_the_same_user(client, google):
    ann = await password_user(client, "ann")
    resp = await client.post(
        "/identities/google", json=link_body(google, "g-ann", name="Ann G"), headers=ann["headers"]
    )
    assert resp.status == 201, await resp.text()
    linked = await resp.json()
    assert (linked["kind"], linked["sub"]) == ("google", "g-ann")
    assert [i["kind"] for i in await identities(client, ann["headers"])] == ["password", "google"]

    # /adduser/ with that account: the same user, under its own name (an account with a password keeps its name),
    # and its chatterID posts as that user.
    signed_in = await (await adduser(client, google, "g-ann", name="Ann G")).json()
    assert signed_in["username"] == "ann"
    assert await whoami(client, signed_in["token"]) == (200, {"id": ann["id"], "username": "ann", "role": "user"})
    assert (await client.post("/postauth/", json={"chatterID": signed_in["chatterID"], "message": "hi"})).status == 200
    assert (await (await client.get("/getchatts/")).json())[-1][:2] == ["ann", "hi"]
    assert await rows(client, "SELECT count(*) FROM users") == [(1,)]

    # Linking it again changes nothing.
    again = await client.post("/identities/google", json=link_body(google, "g-ann"), headers=ann["headers"])
    assert again.status == 200 and (await again.json())["id"] == linked["id"]


async def test_a_google_account_that_is_a_user_of_its_own_is_not_linked(client, google):
    other = await google_user(client, google, "g-other")
    ann = await password_user(client, "ann")
    resp = await client.post("/identities/google", json=link_body(google, "g-other"), headers=ann["headers"])
    assert resp.status == 409
    assert [i["kind"] for i in await identities(client, ann["headers"])] == ["password"]
    assert (await whoami(client, (await (await adduser(client, google, "g-other")).json())["token"]))[1]["id"] == (
        other["id"]
    )


async def test_accounts_are_never_joined_by_email(client, google):
    """Another Google account with a user's address, or a password account's, is a user of its own."""
    ann = await password_user(client, "ann")
    await sql(client, "UPDATE users SET email = 'ann@example.com' WHERE id = %s", ann["id"])
    gina = await google_user(client, google, "g-gina", email="shared@example.com")
    for sub, email in [("g-2", "ann@example.com"), ("g-3", "shared@example.com"), ("g-4", "ANN@example.com")]:
        newcomer = await google_user(client, google, sub, email=email)
        assert newcomer["id"] not in {ann["id"], gina["id"]}
    assert [i["kind"] for i in await identities(client, ann["headers"])] == ["password"]


async def test_a_link_checks_the_id_token_as_adduser_does(make_client, google):
    client = await make_client(google_hosted_domain="example.com")
    ann = await password_user(client, "ann")
    bad = [
        {"clientID": "another-client", "idToken": google.id_token(client_id=CLIENT_ID, hd="example.com")},
        {"clientID": CLIENT_ID, "idToken": google.id_token(client_id="another-client", hd="example.com")},
        {"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID, hd="other.com")},
        {"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID, hd="example.com", lifetime=-120)},
        {"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID, issuer="https://evil.example.com")},
        {"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID, hd="example.com")[:-4] + "AAAA"},
    ]
    for body in bad:
        resp = await client.post("/identities/google", json=body, headers=ann["headers"])
        assert resp.status == 401, (body, await resp.text())
        assert await adduser_status(client, body) == 401  # the same verdict from /adduser/
    good = {"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID, hd="example.com")}
    assert (await client.post("/identities/google", json=good, headers=ann["headers"])).status == 201
    assert [i["kind"] for i in await identities(client, ann["headers"])] == ["password", "google"]


async def adduser_status(client, body):
    return (await client.post("/adduser/", json=body)).status


async def test_a_google_user_adds_a_password(client, google):
    gina = await google_user(client, google, "g-gina", name="Gina Google")
    resp = await client.post(
        "/identities/password", json={"username": "gina", "password": PASSWORD}, headers=gina["headers"]
    )
    assert resp.status == 201 and await resp.json() == {"kind": "password", "username": "gina"}
    assert [i["kind"] for i in await identities(client, gina["headers"])] == ["password", "google"]
    # The login name is the account's name from now on, on every credential; a Google sign-in no longer renames it.
    assert (await whoami(client, gina["token"]))[1]["username"] == "gina"
    logged_in = await log_in(client, "GINA")
    assert await whoami(client, logged_in["token"]) == (200, {"id": gina["id"], "username": "gina", "role": "user"})
    assert (await (await adduser(client, google, "g-gina", name="Gina Google")).json())["username"] == "gina"

    again = await client.post(
        "/identities/password", json={"username": "g2", "password": PASSWORD}, headers=gina["headers"]
    )
    assert again.status == 409


async def test_adding_a_password_refuses_taken_and_bad_names(client, google):
    await password_user(client, "taken")
    gina = await google_user(client, google, "g-gina")
    for body, status in [
        ({"username": "TAKEN", "password": PASSWORD}, 409),
        ({"username": "bad\u200bname", "password": PASSWORD}, 422),
        ({"username": "ok", "password": "short"}, 422),
        ({"username": "ok", "password": "password"}, 422),  # the password policy, as at /register
        ({"username": "ok"}, 422),
    ]:
        resp = await client.post("/identities/password", json=body, headers=gina["headers"])
        assert resp.status == status, (body, await resp.text())
    assert [i["kind"] for i in await identities(client, gina["headers"])] == ["google"]


async def test_the_last_way_in_is_never_removed(client, google):
    gina = await google_user(client, google, "g-gina")
    assert (await client.delete("/identities/google", headers=gina["headers"])).status == 409
    assert (await client.delete("/identities/password", headers=gina["headers"])).status == 404
    assert (await client.delete("/identities/passkey", headers=gina["headers"])).status == 404
    add = {"username": "gina", "password": PASSWORD}
    assert (await client.post("/identities/password", json=add, headers=gina["headers"])).status == 201

    # With a password the Google account can go: its next /adduser/ is a new user.
    assert (await client.delete("/identities/google", headers=gina["headers"])).status == 204
    assert [i["kind"] for i in await identities(client, gina["headers"])] == ["password"]
    assert (await google_user(client, google, "g-gina"))["id"] != gina["id"]
    assert (await client.delete("/identities/password", headers=gina["headers"])).status == 409
    assert (await log_in(client, "gina"))["token"]


async def test_removing_the_password_frees_the_name_and_its_second_factor(client, google):
    ann = await password_user(client, "ann")
    secret = (await (await client.post("/totp/setup", headers=ann["headers"])).json())["secret"]
    assert (
        await client.post("/totp/enable", json={"otp": pyotp.TOTP(secret).now()}, headers=ann["headers"])
    ).status == 204
    assert (await client.post("/totp/recovery-codes", headers=ann["headers"])).status == 200
    assert (
        await client.post("/identities/google", json=link_body(google, "g-ann"), headers=ann["headers"])
    ).status == 201
    assert (await client.delete("/identities/password", headers=ann["headers"])).status == 204

    assert (await client.post("/login", json={"username": "ann", "password": PASSWORD})).status == 401
    assert await rows(client, "SELECT totp_enabled, totp_secret, username_key FROM users") == [(False, None, None)]
    assert await rows(client, "SELECT count(*) FROM recovery_codes") == [(0,)]
    assert (await client.post("/register", json={"username": "Ann", "password": PASSWORD})).status == 201
    assert (await whoami(client, ann["token"]))[0] == 200  # still signed in: only a way in went


async def test_several_google_accounts_are_told_apart_by_id(client, google):
    ann = await password_user(client, "ann")
    for sub in ("g-1", "g-2"):
        assert (
            await client.post("/identities/google", json=link_body(google, sub), headers=ann["headers"])
        ).status == 201
    linked = {i["sub"]: i["id"] for i in await identities(client, ann["headers"]) if i["kind"] == "google"}
    assert (await client.delete("/identities/google", headers=ann["headers"])).status == 422
    for bad in ("not-a-uuid", "00000000-0000-4000-8000-000000000000"):
        assert (await client.delete(f"/identities/google?id={bad}", headers=ann["headers"])).status == 404
    assert (await client.delete(f"/identities/google?id={linked['g-1']}", headers=ann["headers"])).status == 204
    assert [i.get("sub") for i in await identities(client, ann["headers"])] == [None, "g-2"]
    # Another user cannot name it.
    bob = await password_user(client, "bob")
    assert (await client.delete(f"/identities/google?id={linked['g-2']}", headers=bob["headers"])).status == 404


async def test_a_user_links_at_most_so_many_google_accounts(client, google):
    from core.shapes import GOOGLE_ACCOUNTS_PER_USER

    ann = await password_user(client, "ann")
    for n in range(GOOGLE_ACCOUNTS_PER_USER):
        assert (
            await client.post("/identities/google", json=link_body(google, f"g-{n}"), headers=ann["headers"])
        ).status == 201
    resp = await client.post("/identities/google", json=link_body(google, "one-too-many"), headers=ann["headers"])
    assert resp.status == 409


async def test_changing_identities_needs_a_recent_sign_in(client, google):
    ann = await password_user(client, "ann")
    assert (
        await client.post("/identities/google", json=link_body(google, "g-ann"), headers=ann["headers"])
    ).status == 201
    await sign_in_long_ago(client, ann["id"], client.app[settings_key].reauth_max_age + 5)
    for method, path, body in [
        ("POST", "/identities/google", link_body(google, "g-more")),
        ("POST", "/identities/password", {"username": "x", "password": PASSWORD}),
        ("DELETE", "/identities/google", None),
        ("DELETE", "/identities/password", None),
        ("DELETE", "/me", None),
    ]:
        resp = await client.request(method, path, json=body, headers=ann["headers"])
        assert resp.status == 401, (method, path)
        assert (await resp.json())["error"] == "reauth_required"
        assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert [i["kind"] for i in await identities(client, ann["headers"])] == ["password", "google"]
    # A fresh sign-in is recent again.
    fresh = bearer((await log_in(client, "ann"))["token"])
    assert (await client.delete("/identities/google", headers=fresh)).status == 204


async def test_identities_need_a_sign_in(client):
    for method, path in [
        ("GET", "/identities"),
        ("POST", "/identities/google"),
        ("POST", "/identities/password"),
        ("DELETE", "/identities/google"),
        ("DELETE", "/identities/password"),
    ]:
        resp = await client.request(method, path, json={})
        assert resp.status == 401 and "error" not in await resp.json(), (method, path)


async def test_two_removals_at_once_leave_a_way_in(make_client, google):
    """The password and the Google account removed at the same moment, on two servers: one of them stays."""
    a = await make_client(signup_max_per_address=10**6)
    b = await make_client(signup_max_per_address=10**6, secret_key=a.app[settings_key].secret_key)
    for round_ in range(12):
        ann = await password_user(a, f"ann{round_}")
        assert (
            await a.post("/identities/google", json=link_body(google, f"g-{round_}"), headers=ann["headers"])
        ).status == 201
        statuses = sorted(
            resp.status
            for resp in await asyncio.gather(
                a.delete("/identities/password", headers=ann["headers"]),
                b.delete("/identities/google", headers=ann["headers"]),
            )
        )
        assert statuses == [204, 409], (round_, statuses)
        assert len(await identities(a, ann["headers"])) == 1


async def test_one_google_account_linked_to_two_users_at_once_goes_to_one(make_client, google):
    a = await make_client(signup_max_per_address=10**6)
    b = await make_client(signup_max_per_address=10**6, secret_key=a.app[settings_key].secret_key)
    for round_ in range(12):
        ann, bob = await password_user(a, f"ann{round_}"), await password_user(b, f"bob{round_}")
        body = link_body(google, f"g-{round_}")
        statuses = [
            resp.status
            for resp in await asyncio.gather(
                a.post("/identities/google", json=body, headers=ann["headers"]),
                b.post("/identities/google", json=body, headers=bob["headers"]),
            )
        ]
        assert sorted(statuses) == [201, 409], (round_, statuses)
        owner = ann if statuses[0] == 201 else bob
        assert (await google_user(a, google, f"g-{round_}"))["id"] == owner["id"]


async def test_a_first_sign_in_racing_a_link_of_the_same_account_makes_one_owner(make_client, google):
    """/adduser/ of a new Google account and a link of it, at once: either the link wins (and /adduser/ lands in the
    linked user) or the sign-in makes a user (and the link is refused); never an extra user, never two owners."""
    a = await make_client(signup_max_per_address=10**6)
    b = await make_client(signup_max_per_address=10**6, secret_key=a.app[settings_key].secret_key)
    outcomes = set()
    for round_ in range(16):
        ann = await password_user(a, f"ann{round_}")
        sub = f"g-race-{round_}"
        signed_in, linked = await asyncio.gather(
            adduser(b, google, sub), a.post("/identities/google", json=link_body(google, sub), headers=ann["headers"])
        )
        assert signed_in.status == 200
        signed_in_id = (await whoami(a, (await signed_in.json())["token"]))[1]["id"]
        if linked.status == 201:
            assert signed_in_id == ann["id"]
        else:
            assert linked.status == 409 and signed_in_id != ann["id"]
        outcomes.add(linked.status)
        assert await rows(a, "SELECT count(*) FROM google_identities WHERE sub = %s", sub) == [(1,)]
    # Users: one per password account, plus one per sign-in that won; none without a way in.
    assert await rows(
        a,
        "SELECT count(*) FROM users WHERE password_hash IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM google_identities WHERE user_id = users.id)",
    ) == [(0,)]
    assert outcomes  # (which side wins each round is the race's)


async def test_identity_changes_are_audited(client, google):
    ann = await password_user(client, "ann")
    assert (
        await client.post("/identities/google", json=link_body(google, "g-ann"), headers=ann["headers"])
    ).status == 201
    assert (await client.delete("/identities/password", headers=ann["headers"])).status == 204
    events = await rows(
        client,
        "SELECT event, kind FROM auth_events WHERE event LIKE 'identity%%' AND user_id = %s ORDER BY id",
        ann["id"],
    )
    assert events == [("identity_linked", "google"), ("identity_unlinked", "password")]


async def test_existing_google_users_keep_their_accounts_through_the_migration(make_database, make_client, google):
    """Users made before identities had a table of their own (users.google_sub, one kind per user) keep signing in
    to the same account, their chatterIDs working as before; password accounts keep their names."""
    url = make_database()
    async with before_migration(url, "identities") as db, db.cursor() as cur:
        await cur.execute(
            "INSERT INTO users (username, google_sub, email, role)"
            " VALUES ('Old Google', 'g-old', 'old@example.com', 'moderator') RETURNING id"
        )
        (old_id,) = await cur.fetchone()
        await cur.execute(
            "INSERT INTO users (username, username_key, password_hash) VALUES ('Pat', 'pat', 'x') RETURNING id"
        )
    client = await make_client(database_url=url)
    signed_in = await (await adduser(client, google, "g-old", name="Old Google", email="old@example.com")).json()
    assert await whoami(client, signed_in["token"]) == (
        200,
        {"id": old_id, "username": "Old Google", "role": "moderator"},
    )
    assert (
        await client.post("/postauth/", json={"chatterID": signed_in["chatterID"], "message": "still me"})
    ).status == 200
    [identity] = await identities(client, bearer(signed_in["token"]))
    assert (identity["sub"], identity["email"]) == ("g-old", "old@example.com")
    # The password account's name is still taken, by its key.
    assert (await client.post("/register", json={"username": "PAT", "password": PASSWORD})).status == 409
