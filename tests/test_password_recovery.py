"""Password reset by a mailed code, password change, and the notices both send, against a real SMTP server."""

from __future__ import annotations

import itertools

import pytest

from core.keys import db_key, settings_key
from tests.support.accounts import NEW_PASSWORD, PASSWORD, log_in, register, verified_account
from tests.support.common import CLIENT_ID, bearer
from tests.support.refreshes import revoke_amid_refreshes

INVALID = "invalid_code"


async def forgot(client, **account):
    return await client.post("/password/forgot", json=account)


async def reset(client, code, password=NEW_PASSWORD, **account):
    return await client.post("/password/reset", json={**account, "code": code, "password": password})


async def change(client, token, current=PASSWORD, password=NEW_PASSWORD):
    body = {"current_password": current, "password": password}
    return await client.post("/password/change", json=body, headers=bearer(token))


async def login_status(client, username, password):
    resp = await client.post("/login", json={"username": username, "password": password})
    client.session.cookie_jar.clear()
    return resp.status


@pytest.mark.parametrize("by", ["email", "username"])
async def test_a_reset_by_code_sets_the_password_and_ends_every_session(mail_client, smtp, by):
    token = await verified_account(mail_client, smtp, "ann", "ann@example.com")
    signed_in = await log_in(mail_client, "ann")
    account = {"email": "ANN@example.com"} if by == "email" else {"username": "Ann"}
    resp = await forgot(mail_client, **account)
    assert resp.status == 202 and await resp.json() == {}
    code = await smtp.code_for("ann@example.com", nth=2)  # the first was the verification code
    assert (await reset(mail_client, code, **account)).status == 204
    assert await login_status(mail_client, "ann", PASSWORD) == 401
    assert await login_status(mail_client, "ann", NEW_PASSWORD) == 200
    # Every credential issued before the reset stops working.
    for jwt in (token, signed_in["token"]):
        assert (await mail_client.get("/get-user", headers=bearer(jwt))).status == 401
    refreshed = await mail_client.post("/token/refresh", json={"refresh_token": signed_in["refresh_token"]})
    assert refreshed.status == 401
    # The code works once, and the account is told.
    again = await reset(mail_client, code, password="yet another passphrase", **account)
    assert again.status == 400 and (await again.json())["error"] == INVALID
    notices = await smtp.wait_for_mail("ann@example.com", 3)
    assert notices[2]["Subject"] == "Your chatterd password was reset"


async def test_forgot_is_202_and_silent_for_accounts_without_a_verified_address(mail_client, smtp):
    await register(mail_client, "unverified", "unverified@example.com")
    await smtp.wait_for_mail("unverified@example.com")  # its verification code
    for account in (
        {"email": "nobody@example.com"},
        {"username": "nobody"},
        {"email": "unverified@example.com"},
        {"username": "unverified"},
    ):
        resp = await forgot(mail_client, **account)
        assert resp.status == 202 and await resp.json() == {}
    # A known account's code, asked for after them, arrives; had the others sent anything, it would be here by then.
    await verified_account(mail_client, smtp, "ann", "ann@example.com")
    assert (await forgot(mail_client, username="ann")).status == 202
    await smtp.code_for("ann@example.com", nth=2)
    assert len(smtp.to("unverified@example.com")) == 1
    assert {r for _, rcpts, _ in smtp.received for r in rcpts} == {"unverified@example.com", "ann@example.com"}


async def test_forgot_wants_one_account_name(mail_client):
    for body in ({}, {"email": "a@example.com", "username": "a"}, {"email": "not an address"}):
        assert (await mail_client.post("/password/forgot", json=body)).status == 422


async def test_wrong_codes_unknown_accounts_and_dead_codes_are_invalid_code(make_client, smtp):
    # The per-account recovery limit (5 by default) would step in first: here the code's own limit shows.
    mail_client = await make_client(smtp_url=smtp.url(), recovery_max_per_account=20)
    await verified_account(mail_client, smtp, "ann", "ann@example.com")
    assert (await forgot(mail_client, username="ann")).status == 202
    code = await smtp.code_for("ann@example.com", nth=2)
    unknown = await reset(mail_client, code, username="nobody")
    assert unknown.status == 400 and (await unknown.json())["error"] == INVALID
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        resp = await reset(mail_client, wrong, username="ann")
        assert resp.status == 400 and (await resp.json())["error"] == INVALID
    dead = await reset(mail_client, code, username="ann")
    assert dead.status == 400 and await login_status(mail_client, "ann", PASSWORD) == 200


async def test_a_reset_code_dies_when_the_address_changes(mail_client, smtp):
    token = await verified_account(mail_client, smtp, "ann", "ann@example.com")
    assert (await forgot(mail_client, email="ann@example.com")).status == 202
    code = await smtp.code_for("ann@example.com", nth=2)
    assert (await mail_client.post("/email", json={"email": "ann2@example.com"}, headers=bearer(token))).status == 204
    assert (await reset(mail_client, code, username="ann")).status == 400


async def test_a_weak_new_password_is_422_at_reset_and_change(mail_client, smtp):
    token = await verified_account(mail_client, smtp, "ann", "ann@example.com")
    assert (await forgot(mail_client, username="ann")).status == 202
    code = await smtp.code_for("ann@example.com", nth=2)
    weak = await reset(mail_client, code, password="password1", username="ann")
    assert weak.status == 422 and "guess" in (await weak.json())["message"]
    assert (await reset(mail_client, code, username="ann")).status == 204  # the code was not spent by the 422
    token = (await log_in(mail_client, "ann", NEW_PASSWORD))["token"]
    resp = await change(mail_client, token, current=NEW_PASSWORD, password="ann12345")
    assert resp.status == 422


async def test_recovery_is_throttled_per_account_named_and_per_address(make_client, smtp):
    client = await make_client(smtp_url=smtp.url(), recovery_max_per_account=2, recovery_max_per_address=5)
    for _ in range(2):
        assert (await forgot(client, username="ann")).status == 202
    throttled = await forgot(client, username="ANN")  # however it is spelled: the same account
    assert throttled.status == 429 and int(throttled.headers["Retry-After"]) > 0
    assert (await reset(client, "123456", username="ann")).status == 429  # resets share the account's count
    assert (await forgot(client, email="bob@example.com")).status == 202  # the address's fifth attempt
    resp = await forgot(client, username="carol")  # a new account, but the address is spent
    assert resp.status == 429


async def test_a_password_change_needs_the_current_password_and_tells_the_account(mail_client, smtp):
    token = await verified_account(mail_client, smtp, "ann", "ann@example.com")
    wrong = await change(mail_client, token, current="not the password")
    assert wrong.status == 403
    assert (await change(mail_client, token)).status == 204
    assert await login_status(mail_client, "ann", NEW_PASSWORD) == 200
    assert await login_status(mail_client, "ann", PASSWORD) == 401
    assert (await mail_client.get("/get-user", headers=bearer(token))).status == 200  # this session stays
    [_, notice] = await smtp.wait_for_mail("ann@example.com", 2)
    assert notice["Subject"] == "Your chatterd password was changed"
    assert "127.0.0.1" in notice.get_content()


async def test_wrong_current_passwords_are_throttled_like_sign_ins(make_client, smtp):
    client = await make_client(smtp_url=smtp.url(), login_max_failures=2)
    await register(client, "ann")
    token = (await log_in(client, "ann"))["token"]
    assert (await change(client, token, current="wrong one")).status == 403
    assert (await change(client, token, current="wrong two")).status == 403
    assert (await change(client, token)).status == 429  # even the right password, until the lockout passes
    assert (await client.post("/login", json={"username": "ann", "password": PASSWORD})).status == 429


async def test_password_change_needs_a_sign_in_and_a_password_account(mail_client, google):
    assert (await mail_client.post("/password/change", json={"current_password": "x", "password": "y"})).status == 401
    id_token = google.id_token(client_id=CLIENT_ID)
    resp = await mail_client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": id_token})
    token = (await resp.json())["token"]
    assert (await change(mail_client, token)).status == 422


async def test_a_right_current_password_settles_the_sign_in_counters(make_client, smtp):
    client = await make_client(smtp_url=smtp.url(), login_max_failures=2, login_max_failures_per_address=2)
    await register(client, "ann")
    token = (await log_in(client, "ann"))["token"]
    assert (await change(client, token, current="wrong one")).status == 403
    passwords = [PASSWORD, NEW_PASSWORD, "yet another passphrase", "and one more passphrase"]
    for current, new in itertools.pairwise(passwords):
        assert (await change(client, token, current=current, password=new)).status == 204
    assert await login_status(client, "ann", passwords[-1]) == 200  # neither the account nor the address is locked


async def live_sessions(client, user_id):
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT end_reason FROM sessions WHERE user_id = %s ORDER BY created_at", (user_id,))
        return [reason for (reason,) in await cur.fetchall()]


async def test_a_change_ends_every_other_session_and_keeps_this_one(mail_client, smtp):
    await verified_account(mail_client, smtp, "ann", "ann@example.com")
    here, phone, tablet = [await log_in(mail_client, "ann") for _ in range(3)]
    assert (await change(mail_client, here["token"])).status == 204
    for other in (phone, tablet):
        assert (await mail_client.get("/get-user", headers=bearer(other["token"]))).status == 401
        refreshed = await mail_client.post("/token/refresh", json={"refresh_token": other["refresh_token"]})
        assert refreshed.status == 401
    refreshed = await mail_client.post("/token/refresh", json={"refresh_token": here["refresh_token"]})
    assert refreshed.status == 200  # this session goes on, refresh token and all
    listed = await mail_client.get("/sessions", headers=bearer((await refreshed.json())["token"]))
    assert [s["current"] for s in (await listed.json())["sessions"]] == [True]
    user_id = (await (await mail_client.get("/get-user", headers=bearer(here["token"]))).json())["user"]["id"]
    reasons = await live_sessions(mail_client, user_id)  # the first sign-in (verified_account's) and the other two
    assert reasons.count("password_change") == 3 and reasons.count(None) == 1


async def test_a_refresh_in_flight_never_outlives_a_password_change(make_client, smtp):
    """Refresh loops of the other sessions on one server, a password change on the other: nothing the loops send
    after the answer succeeds, and every JWT they got is refused on both within a second."""
    a = await make_client(smtp_url=smtp.url(), refresh_max_per_session=100_000)
    b = await make_client(
        smtp_url=smtp.url(), secret_key=a.app[settings_key].secret_key, refresh_max_per_session=100_000
    )
    await register(a, "ann")
    passwords = [PASSWORD] + [f"passphrase number {n} of many" for n in range(8)]
    for round_, (current, new) in enumerate(itertools.pairwise(passwords)):
        here, *others = [await log_in(a, "ann", current) for _ in range(3)]
        await revoke_amid_refreshes(
            a,
            b,
            [s["refresh_token"] for s in others],
            lambda here=here, current=current, new=new: change(a, here["token"], current=current, password=new),
            round_=round_,
        )
        assert (await a.get("/get-user", headers=bearer(here["token"]))).status == 200


async def test_a_refresh_in_flight_never_outlives_a_reset(make_client, smtp):
    """Refresh loops on one server, a reset by code on the other: every session ends, whatever was in flight."""
    a = await make_client(smtp_url=smtp.url(), refresh_max_per_session=100_000)
    b = await make_client(
        smtp_url=smtp.url(), secret_key=a.app[settings_key].secret_key, refresh_max_per_session=100_000
    )
    await verified_account(a, smtp, "ann", "ann@example.com")
    passwords = [PASSWORD] + [f"passphrase number {n} of many" for n in range(6)]
    for round_, (current, new) in enumerate(itertools.pairwise(passwords)):
        sessions = [await log_in(a, "ann", current) for _ in range(3)]
        assert (await forgot(a, username="ann")).status == 202
        code = await smtp.code_for("ann@example.com", nth=2 + round_)  # the first was the verification code
        await revoke_amid_refreshes(
            a,
            b,
            [s["refresh_token"] for s in sessions],
            lambda code=code, new=new: reset(a, code, password=new, username="ann"),
            round_=round_,
        )
        async with a.app[db_key].cursor() as cur:
            await cur.execute("SELECT count(*) FROM sessions WHERE ended_at IS NULL")
            assert await cur.fetchone() == (0,), round_
