"""Security notices to the verified address, read from a real SMTP server; none without a verified address."""

from __future__ import annotations

import pyotp

from tests.support.accounts import log_in, register, verified_account
from tests.support.common import bearer


async def turn_totp_on(client, token):
    secret = (await (await client.post("/totp/setup", headers=bearer(token))).json())["secret"]
    totp = pyotp.TOTP(secret)
    assert (await client.post("/totp/enable", json={"otp": totp.now()}, headers=bearer(token))).status == 204
    return totp


async def test_totp_turned_on_and_off_is_told(mail_client, smtp):
    token = await verified_account(mail_client, smtp, "ann", "ann@example.com")
    totp = await turn_totp_on(mail_client, token)
    [_, on] = await smtp.wait_for_mail("ann@example.com", 2)
    assert on["Subject"] == "Two-factor sign-in was turned on" and "127.0.0.1" in on.get_content()
    codes = (await (await mail_client.post("/totp/recovery-codes", headers=bearer(token))).json())["codes"]
    assert (await mail_client.post("/totp/disable", json={"otp": codes[0]}, headers=bearer(token))).status == 204
    [*_, off] = await smtp.wait_for_mail("ann@example.com", 3)
    assert off["Subject"] == "Two-factor sign-in was turned off"
    assert totp.secret  # the secret was real: both changes happened


async def test_a_reused_refresh_token_is_told(make_client, smtp):
    client = await make_client(smtp_url=smtp.url(), refresh_grace_seconds=0)
    await verified_account(client, smtp, "ann", "ann@example.com")
    first = await log_in(client, "ann")
    rotated = await client.post("/token/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status == 200
    replay = await client.post("/token/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status == 401
    [_, notice] = await smtp.wait_for_mail("ann@example.com", 2)
    assert notice["Subject"] == "A chatterd sign-in was ended: its token was used twice"
    assert "Hello ann" in notice.get_content()


async def test_nothing_goes_to_an_unverified_address(mail_client, smtp):
    await register(mail_client, "ann", "ann@example.com")
    token = (await log_in(mail_client, "ann"))["token"]
    await turn_totp_on(mail_client, token)
    body = {"current_password": "correct horse battery", "password": "a new long passphrase"}
    assert (await mail_client.post("/password/change", json=body, headers=bearer(token))).status == 204
    # A message written after those: once it is here, theirs would be too.
    await register(mail_client, "probe", "probe@example.com")
    await smtp.wait_for_mail("probe@example.com")
    [only] = smtp.to("ann@example.com")
    assert only["Subject"].endswith("is your chatterd verification code")
