"""The admin API: users searched and paged by cursor, one user's details, roles, bans; refusals; races."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from core.keys import settings_key
from tests.support.common import wait_for
from tests.support.identities import (
    PASSWORD,
    adduser,
    google_user,
    log_in,
    password_user,
    rows,
    sql,
    whoami,
)

FUTURE = (datetime.now(UTC) + timedelta(days=30)).isoformat()


def in_(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


@pytest.fixture
async def boss(client):
    """An admin, signed in."""
    return await password_user(client, "boss", role="admin")


ADMIN_CALLS = [
    ("GET", "/admin/users", None),
    ("GET", "/admin/users/1", None),
    ("PUT", "/admin/users/1/role", {"role": "moderator"}),
    ("POST", "/admin/users/1/ban", {}),
    ("DELETE", "/admin/users/1/ban", None),
]


async def test_only_admins_may(client):
    mod = await password_user(client, "mod", role="moderator")
    for method, path, body in ADMIN_CALLS:
        assert (await client.request(method, path, json=body)).status == 401, path
        assert (await client.request(method, path, json=body, headers=mod["headers"])).status == 403, path
    assert (await whoami(client, mod["token"]))[1]["role"] == "moderator"


async def test_users_are_paged_by_cursor_newest_first(client, boss):
    ids = [boss["id"]] + [(await password_user(client, f"user{n}"))["id"] for n in range(6)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/admin/users", params=params, headers=boss["headers"])
        assert resp.status == 200
        page = await resp.json()
        assert set(page) == {"users", "next_cursor"}
        seen += [user["id"] for user in page["users"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True) and pages == 3
    # A page is not shifted by users who arrive meanwhile (a cursor, not an offset).
    first = await (await client.get("/admin/users", params={"limit": "2"}, headers=boss["headers"])).json()
    await password_user(client, "latecomer")
    second = await client.get(
        "/admin/users", params={"limit": "2", "cursor": first["next_cursor"]}, headers=boss["headers"]
    )
    assert [u["id"] for u in (await second.json())["users"]] == sorted(ids, reverse=True)[2:4]
    user = page["users"][-1]
    assert set(user) == {"id", "username", "email", "role", "created_at", "banned_until"}
    assert (user["username"], user["role"], user["banned_until"], user["email"]) == ("boss", "admin", None, None)


async def test_users_are_searched_by_name_address_or_id(client, boss, google):
    ann = await password_user(client, "Annabel")
    await password_user(client, "bob")
    await password_user(client, "100%_real")
    gina = await google_user(client, google, "g-gina", name="Gina", email="gina@Mail.example")

    async def search(q):
        resp = await client.get("/admin/users", params={"q": q}, headers=boss["headers"])
        assert resp.status == 200
        return [user["username"] for user in (await resp.json())["users"]]

    assert await search("NNAB") == ["Annabel"]
    assert await search("mail.EXAMPLE") == ["Gina"]
    assert await search(str(ann["id"])) == ["Annabel"]
    assert await search("%") == ["100%_real"]  # wildcards are plain characters
    assert await search("_") == ["100%_real"]
    assert await search("nobody") == []
    assert len(await search("")) == 5
    assert gina["id"]


async def test_bad_queries_are_refused(client, boss):
    for params in [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "x"},
        {"cursor": "abc"},
        {"cursor": "9" * 30},
        {"q": "x" * 101},
    ]:
        resp = await client.get("/admin/users", params=params, headers=boss["headers"])
        assert resp.status == 422, params


async def test_one_user_with_identities_and_sessions(client, boss, google):
    gina = await google_user(client, google, "g-gina", name="Gina", email="gina@example.com")
    resp = await client.get(f"/admin/users/{gina['id']}", headers=boss["headers"])
    assert resp.status == 200
    found = await resp.json()
    assert (found["id"], found["username"], found["email"], found["ban_reason"]) == (
        gina["id"],
        "Gina",
        "gina@example.com",
        None,
    )
    assert [(i["kind"], i["sub"]) for i in found["identities"]] == [("google", "g-gina")]
    assert [s["kind"] for s in found["sessions"]] == ["google"] and "current" not in found["sessions"][0]
    for missing in ("999999", "9" * 40, "abc", "-1"):
        assert (await client.get(f"/admin/users/{missing}", headers=boss["headers"])).status == 404, missing


async def test_a_role_change_is_in_force_at_once_and_audited(client, boss):
    ann = await password_user(client, "ann")
    resp = await client.put(f"/admin/users/{ann['id']}/role", json={"role": "moderator"}, headers=boss["headers"])
    assert resp.status == 204
    assert (await whoami(client, ann["token"]))[1]["role"] == "moderator"  # the JWT minted as a user
    chatt = await client.post("/postchatt/", json={"username": "x", "message": "spam"})
    assert chatt.status == 200
    chatt_id = (await (await client.get("/getchatts/")).json())[-1][2]
    assert (await client.delete(f"/chatts/{chatt_id}", headers=ann["headers"])).status == 204
    events = await rows(
        client,
        "SELECT detail->>'from', detail->>'to', (detail->>'by')::bigint FROM auth_events WHERE event = 'role_change'",
    )
    assert events == [("user", "moderator", boss["id"])]


async def test_role_refusals(client, boss):
    ann = await password_user(client, "ann")
    for path, body, status in [
        (f"/admin/users/{ann['id']}/role", {"role": "superuser"}, 422),
        (f"/admin/users/{ann['id']}/role", {"role": "Admin"}, 422),
        (f"/admin/users/{ann['id']}/role", {}, 422),
        ("/admin/users/999999/role", {"role": "user"}, 404),
        # The only admin may not step down; with a second admin, either may.
        (f"/admin/users/{boss['id']}/role", {"role": "user"}, 409),
    ]:
        resp = await client.put(path, json=body, headers=boss["headers"])
        assert resp.status == status, (path, body, await resp.text())
    assert (
        await client.put(f"/admin/users/{ann['id']}/role", json={"role": "admin"}, headers=boss["headers"])
    ).status == 204
    assert (
        await client.put(f"/admin/users/{boss['id']}/role", json={"role": "user"}, headers=boss["headers"])
    ).status == 204
    assert (await whoami(client, boss["token"]))[1]["role"] == "user"
    assert (await client.get("/admin/users", headers=boss["headers"])).status == 403


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(make_client):
    """Round after round, on two servers: each admin demotes the other at the same moment; one of them stays admin."""
    a = await make_client(signup_max_per_address=10**6)
    b = await make_client(signup_max_per_address=10**6, secret_key=a.app[settings_key].secret_key)
    results = set()
    for round_ in range(15):
        await sql(a, "UPDATE users SET role = 'user' WHERE role = 'admin'")
        one, two = (
            await password_user(a, f"one{round_}", role="admin"),
            await password_user(b, f"two{round_}", role="admin"),
        )
        answers = await asyncio.gather(
            a.put(f"/admin/users/{two['id']}/role", json={"role": "user"}, headers=one["headers"]),
            b.put(f"/admin/users/{one['id']}/role", json={"role": "user"}, headers=two["headers"]),
        )
        statuses = [resp.status for resp in answers]
        # One demotion goes through; the other is refused, as the last admin's or as no longer an admin's.
        assert sorted(statuses) in ([204, 403], [204, 409]), (round_, statuses)
        assert await rows(a, "SELECT count(*) FROM users WHERE role = 'admin'") == [(1,)], round_
        results.add(tuple(sorted(statuses)))
    assert (204, 409) in results  # the refusal that matters was reached (both requests past the role check at once)


async def test_a_ban_ends_every_session_and_refuses_every_sign_in(client, boss, google):
    gina = await google_user(client, google, "g-gina")
    body = {"username": "gina", "password": PASSWORD}
    assert (await client.post("/identities/password", json=body, headers=gina["headers"])).status == 201
    by_password = await log_in(client, "gina")

    resp = await client.post(
        f"/admin/users/{gina['id']}/ban", json={"until": FUTURE, "reason": "spam"}, headers=boss["headers"]
    )
    assert resp.status == 204
    for credential in (gina["token"], gina["chatterID"], by_password["token"]):
        assert (await whoami(client, credential))[0] == 401
    assert await rows(client, "SELECT count(*) FROM sessions WHERE user_id = %s AND ended_at IS NULL", gina["id"]) == [
        (0,)
    ]
    for refresh in (gina["refresh_token"], by_password["refresh_token"]):
        assert (await client.post("/token/refresh", json={"refresh_token": refresh})).status == 401  # its session ended
    for resp in [await client.post("/login", json=body), await adduser(client, google, "g-gina")]:
        assert resp.status == 403
        assert (await resp.json())["error"] == "banned"
    wrong = await client.post("/login", json={"username": "gina", "password": "not the password"})
    assert wrong.status == 401  # a ban is told only to who knows the password

    listed = await (await client.get("/admin/users", params={"q": "gina"}, headers=boss["headers"])).json()
    assert listed["users"][0]["banned_until"] == datetime.fromisoformat(FUTURE).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    details = await (await client.get(f"/admin/users/{gina['id']}", headers=boss["headers"])).json()
    assert details["ban_reason"] == "spam" and details["sessions"] == []
    [(detail,)] = await rows(client, "SELECT detail FROM auth_events WHERE event = 'ban'")
    assert (detail["ban_reason"], detail["by"]) == ("spam", boss["id"])
    ended = await rows(
        client, "SELECT count(*) FROM auth_events WHERE event = 'session_revoked' AND detail->>'reason' = 'banned'"
    )
    assert ended == [(2,)]  # the Google sign-in's and the password sign-in's

    assert (await client.delete(f"/admin/users/{gina['id']}/ban", headers=boss["headers"])).status == 204
    assert (await log_in(client, "gina"))["token"]
    assert (await adduser(client, google, "g-gina")).status == 200
    assert await rows(client, "SELECT count(*) FROM auth_events WHERE event = 'unban'") == [(1,)]
    # The credentials from before the ban stay ended.
    assert (await whoami(client, gina["token"]))[0] == 401


async def test_a_ban_without_end_and_one_that_ends(client, boss):
    ann = await password_user(client, "ann")
    assert (await client.post(f"/admin/users/{ann['id']}/ban", headers=boss["headers"])).status == 204  # no body
    listed = await (await client.get("/admin/users", params={"q": "ann"}, headers=boss["headers"])).json()
    assert listed["users"][0]["banned_until"] == "infinity"
    assert (await client.post("/login", json={"username": "ann", "password": PASSWORD})).status == 403

    assert (
        await client.post(f"/admin/users/{ann['id']}/ban", json={"until": in_(2)}, headers=boss["headers"])
    ).status == 204
    assert (await client.post("/login", json={"username": "ann", "password": PASSWORD})).status == 403

    async def over():
        return (await client.post("/login", json={"username": "ann", "password": PASSWORD})).status == 200

    await wait_for(over, timeout=10, what="the ban to end")


async def test_ban_refusals(client, boss):
    ann = await password_user(client, "ann")
    path = f"/admin/users/{ann['id']}/ban"
    for body in [
        {"until": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()},
        {"until": "tomorrow"},
        {"until": "2030-01-31T12:00:00"},  # no offset: whose noon?
        {"until": "2030-02-30T12:00:00Z"},
        {"until": 12},
        {"reason": "x" * 501},
    ]:
        resp = await client.post(path, json=body, headers=boss["headers"])
        assert resp.status == 422, (body, await resp.text())
    assert (
        await client.post(path, data=b"{", headers={**boss["headers"], "Content-Type": "application/json"})
    ).status == 400
    assert (await client.post("/admin/users/999999/ban", json={}, headers=boss["headers"])).status == 404
    assert (await client.delete("/admin/users/999999/ban", headers=boss["headers"])).status == 404
    assert (await client.post(f"/admin/users/{boss['id']}/ban", json={}, headers=boss["headers"])).status == 409
    assert (await whoami(client, ann["token"]))[0] == 200  # nothing above banned anyone


async def test_a_ban_in_sql_refuses_refreshes_with_banned(client):
    """An operator's ban leaves the sessions in place: their refreshes answer 403 banned too."""
    ann = await password_user(client, "ann")
    await sql(client, "UPDATE users SET banned_until = now() + interval '1 hour' WHERE id = %s", ann["id"])
    resp = await client.post("/token/refresh", json={"refresh_token": ann["refresh_token"]})
    assert resp.status == 403 and (await resp.json())["error"] == "banned"


async def test_a_ban_racing_sign_ins_leaves_no_session(make_client, google):
    """Password, Google and refresh sign-ins on one server while the user is banned on the other: once the ban has
    answered, the user has no live session, and every later sign-in answers 403 banned."""
    a = await make_client(login_max_failures_per_address=10**6, signup_max_per_address=10**6)
    b = await make_client(login_max_failures_per_address=10**6, secret_key=a.app[settings_key].secret_key)
    boss = await password_user(a, "boss", role="admin")
    for round_ in range(10):
        user = await google_user(a, google, f"g-{round_}")
        body = {"username": f"racer{round_}", "password": PASSWORD}
        assert (await a.post("/identities/password", json=body, headers=user["headers"])).status == 201
        refresh = (await log_in(a, body["username"]))["refresh_token"]
        sign_ins = [b.post("/login", json=body) for _ in range(3)] + [
            adduser(b, google, f"g-{round_}"),
            b.post("/token/refresh", json={"refresh_token": refresh}),
        ]
        ban = a.post(f"/admin/users/{user['id']}/ban", json={"until": FUTURE}, headers=boss["headers"])
        answers = await asyncio.gather(ban, *sign_ins)
        assert answers[0].status == 204
        assert {resp.status for resp in answers[1:]} <= {200, 401, 403}
        assert await rows(a, "SELECT count(*) FROM sessions WHERE user_id = %s AND ended_at IS NULL", user["id"]) == [
            (0,)
        ]
        after = await asyncio.gather(b.post("/login", json=body), adduser(b, google, f"g-{round_}"))
        assert [resp.status for resp in after] == [403, 403]
