"""Passkeys as identities: listed with the others, never the last way in, and refused to a banned user."""

from __future__ import annotations

import asyncio

import pytest

from core.keys import settings_key
from tests.support.authenticator import Authenticator
from tests.support.common import bearer
from tests.support.identities import identities, password_user, rows, sql
from tests.support.passkeys import ORIGIN, RP_ID, add_passkey, login_options, passkey_login


@pytest.fixture
async def client(make_client):
    return await make_client(webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,))


async def test_passkeys_are_ways_in_and_never_the_last(client):
    ann = await password_user(client, "ann")
    phone = Authenticator(ORIGIN)
    created = await add_passkey(client, ann["token"], phone, name="Phone")
    listed = await identities(client, ann["headers"])
    assert [i["kind"] for i in listed] == ["password", "passkey"]
    assert listed[1] == {
        "kind": "passkey",
        "id": created["id"],
        "name": "Phone",
        "created_at": created["created_at"],
        "last_used_at": None,
    }

    # Without the password the passkey is the only way in: neither endpoint removes it.
    assert (await client.delete("/identities/password", headers=ann["headers"])).status == 204
    assert (await client.delete(f"/passkeys/{created['id']}", headers=ann["headers"])).status == 409
    assert (await client.delete("/identities/passkey", headers=ann["headers"])).status == 409
    status, signed_in = await passkey_login(client, phone.get(await login_options(client)))
    assert status == 200
    me = await (await client.get("/get-user", headers=bearer(signed_in["token"]))).json()
    assert me["user"]["id"] == ann["id"]

    laptop = Authenticator(ORIGIN)
    second = await add_passkey(client, ann["token"], laptop, name="Laptop")
    assert (await client.delete("/identities/passkey", headers=ann["headers"])).status == 422  # which one?
    assert (await client.delete(f"/identities/passkey?id={created['id']}", headers=ann["headers"])).status == 204
    assert [i.get("name") for i in await identities(client, ann["headers"])] == ["Laptop"]
    assert (await client.delete(f"/passkeys/{second['id']}", headers=ann["headers"])).status == 409
    events = await rows(client, "SELECT event FROM auth_events WHERE event = 'passkey_removed'")
    assert events == [("passkey_removed",)]


async def test_a_passkey_sign_in_of_a_banned_user_is_refused(client):
    ann = await password_user(client, "ann")
    phone = Authenticator(ORIGIN)
    await add_passkey(client, ann["token"], phone)
    await sql(client, "UPDATE users SET banned_until = now() + interval '1 hour'")
    status, body = await passkey_login(client, phone.get(await login_options(client)))
    assert (status, body.get("error")) == (403, "banned")


async def test_a_ban_racing_passkey_sign_ins_leaves_no_session(make_client):
    """Passkey sign-ins on one server while an admin bans the user on the other: once the ban has answered, the user
    has no live session, and the next passkey sign-in answers 403 banned."""
    a = await make_client(webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,), signup_max_per_address=10**6)
    b = await make_client(webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,), secret_key=a.app[settings_key].secret_key)
    boss = await password_user(a, "boss", role="admin")
    for round_ in range(8):
        user = await password_user(a, f"racer{round_}")
        keys = [Authenticator(ORIGIN) for _ in range(4)]
        for key in keys:
            await add_passkey(a, user["token"], key)
        assertions = [key.get(await login_options(b)) for key in keys]
        ban = a.post(f"/admin/users/{user['id']}/ban", json={}, headers=boss["headers"])
        answers = await asyncio.gather(ban, *(passkey_login(b, assertion) for assertion in assertions))
        assert answers[0].status == 204
        assert {status for status, _ in answers[1:]} <= {200, 403}, answers[1:]
        live = await rows(a, "SELECT count(*) FROM sessions WHERE user_id = %s AND ended_at IS NULL", user["id"])
        assert live == [(0,)], round_
        status, body = await passkey_login(b, keys[0].get(await login_options(b)))
        assert (status, body.get("error")) == (403, "banned")
