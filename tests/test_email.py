"""Email addresses on accounts, verified by a 6-digit code read from the mail a real SMTP server received."""

from __future__ import annotations

import pytest

from core.keys import db_key
from tests.support.accounts import PASSWORD, log_in, me, register, verified_account, verify
from tests.support.common import CLIENT_ID, bearer

INVALID = {"error": "invalid_code"}


async def set_email(client, token, email):
    return await client.post("/email", json={"email": email}, headers=bearer(token))


async def error_of(resp):
    body = await resp.json()
    return {"error": body.get("error")}


async def test_an_address_given_at_registration_is_verified_by_the_mailed_code(mail_client, smtp):
    await register(mail_client, "ann", "Ann.Smith@Example.com")
    token = (await log_in(mail_client, "ann"))["token"]
    assert await me(mail_client, token) == {
        "id": 1,
        "username": "ann",
        "role": "user",
        "email": "Ann.Smith@Example.com",  # as typed
        "email_verified": False,
    }
    code = await smtp.code_for("Ann.Smith@Example.com")
    assert (await verify(mail_client, token, code)).status == 204
    assert (await me(mail_client, token))["email_verified"] is True
    used = await verify(mail_client, token, code)
    assert used.status == 400 and await error_of(used) == INVALID


async def test_without_an_address_get_user_shows_none(mail_client):
    await register(mail_client, "ann")
    token = (await log_in(mail_client, "ann"))["token"]
    user = await me(mail_client, token)
    assert (user["email"], user["email_verified"]) == (None, False)
    resp = await verify(mail_client, token, "123456")
    assert resp.status == 400 and await error_of(resp) == INVALID


async def test_an_address_set_later_is_verified_the_same_way(mail_client, smtp):
    await register(mail_client, "ann")
    token = (await log_in(mail_client, "ann"))["token"]
    assert (await set_email(mail_client, token, "ann@example.com")).status == 204
    assert (await me(mail_client, token))["email"] == "ann@example.com"
    assert (await verify(mail_client, token, await smtp.code_for("ann@example.com"))).status == 204
    assert (await me(mail_client, token))["email_verified"] is True


async def test_changing_a_verified_address_tells_the_old_one_and_needs_a_new_code(mail_client, smtp):
    token = await verified_account(mail_client, smtp, "ann", "old@example.com")
    assert (await set_email(mail_client, token, "new@example.com")).status == 204
    user = await me(mail_client, token)
    assert (user["email"], user["email_verified"]) == ("new@example.com", False)
    [_, notice] = await smtp.wait_for_mail("old@example.com", 2)
    assert notice["Subject"] == "The email address of your chatterd account was changed"
    assert "new@example.com" in notice.get_content() and "Hello ann" in notice.get_content()
    assert (await verify(mail_client, token, await smtp.code_for("new@example.com"))).status == 204
    assert (await me(mail_client, token))["email_verified"] is True


async def test_setting_the_verified_address_again_changes_nothing(mail_client, smtp):
    token = await verified_account(mail_client, smtp, "ann", "ann@example.com")
    assert (await set_email(mail_client, token, "ANN@example.COM")).status == 204
    user = await me(mail_client, token)
    assert (user["email"], user["email_verified"]) == ("ann@example.com", True)
    await register(mail_client, "probe", "probe@example.com")  # mail written after: once it is here, so would be ann's
    await smtp.wait_for_mail("probe@example.com")
    assert len(smtp.to("ann@example.com")) == 1


async def test_five_wrong_tries_kill_the_code(mail_client, smtp):
    await register(mail_client, "ann", "ann@example.com")
    token = (await log_in(mail_client, "ann"))["token"]
    code = await smtp.code_for("ann@example.com")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for guess in [wrong, "12345", "abcdef", wrong, wrong]:
        resp = await verify(mail_client, token, guess)
        assert resp.status == 400 and await error_of(resp) == INVALID
    dead = await verify(mail_client, token, code)
    assert dead.status == 400 and await error_of(dead) == INVALID
    assert (await me(mail_client, token))["email_verified"] is False


async def test_an_expired_code_is_refused(mail_client, smtp):
    await register(mail_client, "ann", "ann@example.com")
    token = (await log_in(mail_client, "ann"))["token"]
    code = await smtp.code_for("ann@example.com")
    async with mail_client.app[db_key].cursor() as cur:
        await cur.execute("UPDATE email_codes SET expires_at = now() - interval '1 second'")
    resp = await verify(mail_client, token, code)
    assert resp.status == 400 and await error_of(resp) == INVALID


async def test_another_accounts_code_is_refused(mail_client, smtp):
    await register(mail_client, "ann", "ann@example.com")
    await register(mail_client, "bob", "bob@example.com")
    ann_code, bob_code = await smtp.code_for("ann@example.com"), await smtp.code_for("bob@example.com")
    if ann_code == bob_code:
        pytest.skip("the two random codes happen to be equal (one chance in a million)")
    bob = (await log_in(mail_client, "bob"))["token"]
    resp = await verify(mail_client, bob, ann_code)
    assert resp.status == 400 and await error_of(resp) == INVALID
    assert (await verify(mail_client, bob, bob_code)).status == 204


async def test_a_new_code_replaces_the_previous_one(mail_client, smtp):
    await register(mail_client, "ann", "ann@example.com")
    token = (await log_in(mail_client, "ann"))["token"]
    first = await smtp.code_for("ann@example.com")
    assert (await set_email(mail_client, token, "ann@example.com")).status == 204  # unverified: a new code
    second = await smtp.code_for("ann@example.com", nth=2)
    if first != second:
        assert (await verify(mail_client, token, first)).status == 400
    assert (await verify(mail_client, token, second)).status == 204


async def test_an_address_verified_by_another_account_is_409_whatever_its_case(mail_client, smtp):
    await verified_account(mail_client, smtp, "ann", "ann@example.com")
    resp = await mail_client.post(
        "/register", json={"username": "bob", "password": PASSWORD, "email": "ANN@example.com"}
    )
    assert resp.status == 409 and "email" in (await resp.json())["message"]
    await register(mail_client, "bob")
    bob = (await log_in(mail_client, "bob"))["token"]
    assert (await set_email(mail_client, bob, "Ann@Example.com")).status == 409


async def test_an_unverified_address_can_be_claimed_and_the_first_to_verify_keeps_it(mail_client, smtp):
    await register(mail_client, "ann", "shared@example.com")
    await register(mail_client, "bob", "shared@example.com")
    ann, bob = (await log_in(mail_client, "ann"))["token"], (await log_in(mail_client, "bob"))["token"]
    ann_code, bob_code = await smtp.code_for("shared@example.com"), await smtp.code_for("shared@example.com", nth=2)
    assert (await verify(mail_client, ann, ann_code)).status == 204
    assert (await verify(mail_client, bob, bob_code)).status == 409


@pytest.mark.parametrize(
    ("email", "needle"),
    [
        ("ann@example.com\r\nBcc: eve@example.com", "line breaks"),
        ("ann@example.com\nBcc: eve@example.com", "line breaks"),
        ("ann", "address like"),
        ("ann smith@example.com", "address like"),
        ('"ann"@example.com', "address like"),
        ("ann@example..com", "address like"),
        ("änn@example.com", "ASCII"),
        ("a" * 65 + "@example.com", "address like"),
        ("a@" + "b" * 253, "254"),
        (12345, "string"),
    ],
)
async def test_addresses_that_are_not_plain_addresses_are_422(mail_client, email, needle):
    resp = await mail_client.post("/register", json={"username": "ann", "password": PASSWORD, "email": email})
    assert resp.status == 422 and needle in (await resp.json())["message"]
    await register(mail_client, "bob")
    bob = (await log_in(mail_client, "bob"))["token"]
    resp = await set_email(mail_client, bob, email)
    assert resp.status == 422 and needle in (await resp.json())["message"]


async def test_email_endpoints_need_a_sign_in(mail_client):
    assert (await mail_client.post("/email", json={"email": "ann@example.com"})).status == 401
    assert (await mail_client.post("/email/verify", json={"code": "123456"})).status == 401


async def test_codes_mailed_per_account_are_limited(make_client, smtp):
    client = await make_client(smtp_url=smtp.url(), recovery_max_per_account=2)
    await register(client, "ann")
    token = (await log_in(client, "ann"))["token"]
    assert (await set_email(client, token, "a1@example.com")).status == 204
    assert (await set_email(client, token, "a2@example.com")).status == 204
    resp = await set_email(client, token, "a3@example.com")
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0


async def test_a_google_users_address_is_googles_at_first_then_their_own(mail_client, smtp, google):
    async def google_sign_in(email):
        id_token = google.id_token(client_id=CLIENT_ID, sub="g-1", name="Gail", email=email)
        resp = await mail_client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": id_token})
        assert resp.status == 200
        return (await resp.json())["token"]

    token = await google_sign_in("gail@gmail.example")
    user = await me(mail_client, token)
    assert (user["email"], user["email_verified"]) == ("gail@gmail.example", False)  # Google's, not verified here
    assert (await set_email(mail_client, token, "gail@example.com")).status == 204
    assert (await verify(mail_client, token, await smtp.code_for("gail@example.com"))).status == 204
    # Later sign-ins (Google's claim changed meanwhile) leave the user's own verified address alone.
    token = await google_sign_in("gail.new@gmail.example")
    user = await me(mail_client, token)
    assert (user["email"], user["email_verified"]) == ("gail@example.com", True)
