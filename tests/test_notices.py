"""Security notices to the verified address, read from a real SMTP server; none without a verified address; sign-ins
from devices not seen before."""

from __future__ import annotations

import asyncio

import psycopg2
import pyotp
import pytest

from core.keys import db_key, settings_key
from models.fragments import DEVICE_SEEN_EVERY, KNOWN_DEVICE_DAYS, SIGNED_IN_DEVICE
from tests.support.accounts import PASSWORD, log_in, register, verified_account
from tests.support.authenticator import Authenticator
from tests.support.common import CLIENT_ID, bearer, wait_for
from tests.support.passkeys import ORIGIN, RP_ID, add_passkey


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


async def test_passkeys_added_and_removed_are_told(make_client, smtp):
    client = await make_client(smtp_url=smtp.url(), webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,))
    token = await verified_account(client, smtp, "ann", "ann@example.com")
    created = await add_passkey(client, token, Authenticator(ORIGIN), name="Work laptop")
    [_, added] = await smtp.wait_for_mail("ann@example.com", 2)
    assert added["Subject"] == "A passkey was added to your chatterd account"
    assert "\u201cWork laptop\u201d" in added.get_content() and "127.0.0.1" in added.get_content()
    assert (await client.delete(f"/passkeys/{created['id']}", headers=bearer(token))).status == 204
    assert (await client.delete(f"/passkeys/{created['id']}", headers=bearer(token))).status == 404  # nothing to tell
    [*_, removed] = await smtp.wait_for_mail("ann@example.com", 3)
    assert removed["Subject"] == "A passkey was removed from your chatterd account"
    assert "\u201cWork laptop\u201d" in removed.get_content()
    await settled(client, smtp, "probe")
    assert len(smtp.to("ann@example.com")) == 3


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


FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
NEW_DEVICE = "New sign-in to your chatterd account"


@pytest.fixture
async def proxied_mail_client(make_client, smtp):
    """The app behind one trusted proxy (X-Forwarded-For names the client), mailing to `smtp`."""
    return await make_client(smtp_url=smtp.url(), mail_retry_seconds=0.05, trusted_proxies=1)


async def sign_in(client, agent, address, username="ann"):
    headers = {"User-Agent": agent, "X-Forwarded-For": address}
    resp = await client.post("/login", json={"username": username, "password": PASSWORD}, headers=headers)
    assert resp.status == 200, await resp.text()
    client.session.cookie_jar.clear()
    return await resp.json()


async def settled(client, smtp, probe):
    """Write a message after everything so far and wait for it: once it is here, the earlier ones would be too."""
    await register(client, probe, f"{probe}@example.com")
    await smtp.wait_for_mail(f"{probe}@example.com")


def new_device_notices(smtp, recipient):
    return [m for m in smtp.to(recipient) if m["Subject"] == NEW_DEVICE]


async def test_a_sign_in_from_a_device_not_seen_before_is_told(proxied_mail_client, smtp):
    client = proxied_mail_client
    await verified_account(client, smtp, "ann", "ann@example.com")  # the first sign-in: its device is recorded
    await sign_in(client, FIREFOX.format(v=133), "192.0.2.10")
    [_, notice] = await smtp.wait_for_mail("ann@example.com", 2)
    assert notice["Subject"] == NEW_DEVICE
    assert "Firefox 133 on Linux, from 192.0.2.10" in notice.get_content() and "Hello ann" in notice.get_content()
    # Seen: the same browser and system after an update, from another address of the same network.
    await sign_in(client, FIREFOX.format(v=134), "192.0.2.77")
    await settled(client, smtp, "probe1")
    assert len(new_device_notices(smtp, "ann@example.com")) == 1
    # Not seen: the same browser from another network, another browser from a known network.
    await sign_in(client, FIREFOX.format(v=134), "198.51.100.5")
    await sign_in(client, CHROME_MAC, "192.0.2.10")
    await smtp.wait_for_mail("ann@example.com", 4)
    told = [m.get_content() for m in new_device_notices(smtp, "ann@example.com")]
    assert "Firefox 134 on Linux, from 198.51.100.5" in told[1] and "Chrome 131 on macOS, from 192.0.2.10" in told[2]
    await settled(client, smtp, "probe2")
    assert len(smtp.to("ann@example.com")) == 4


async def test_the_first_sign_in_recorded_for_a_user_tells_nobody(proxied_mail_client, smtp):
    client = proxied_mail_client
    await verified_account(client, smtp, "ann", "ann@example.com")
    async with client.app[db_key].cursor() as cur:  # as for an account from before devices were recorded
        await cur.execute("DELETE FROM known_devices")
    await sign_in(client, FIREFOX.format(v=133), "192.0.2.10")
    await settled(client, smtp, "probe1")
    assert new_device_notices(smtp, "ann@example.com") == []
    await sign_in(client, CHROME_MAC, "192.0.2.10")  # the second device is news
    await smtp.wait_for_mail("ann@example.com", 2)
    assert len(new_device_notices(smtp, "ann@example.com")) == 1


async def test_a_device_unseen_for_long_is_new_again_and_old_devices_are_forgotten(proxied_mail_client, smtp):
    client = proxied_mail_client
    await verified_account(client, smtp, "ann", "ann@example.com")
    await sign_in(client, FIREFOX.format(v=133), "192.0.2.10")
    await smtp.wait_for_mail("ann@example.com", 2)
    await register(client, "bob")
    await sign_in(client, CHROME_MAC, "203.0.113.1", "bob")
    await sign_in(client, FIREFOX.format(v=133), "203.0.113.1", "bob")
    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "UPDATE known_devices SET last_seen_at = now() - make_interval(days => %s + (family LIKE 'Chrome%%')::int)",
            (KNOWN_DEVICE_DAYS + 1,),
        )
    await sign_in(client, FIREFOX.format(v=133), "192.0.2.10")  # ann's Firefox, unseen too long
    await smtp.wait_for_mail("ann@example.com", 3)
    assert len(new_device_notices(smtp, "ann@example.com")) == 2
    async with client.app[db_key].cursor() as cur:  # bob's devices, both unseen too long: all but the latest go
        await cur.execute("SELECT family FROM known_devices JOIN users ON users.id = user_id WHERE username = 'bob'")
        assert await cur.fetchall() == [("Firefox on Linux",)]


async def device_row(client, family_prefix):
    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "SELECT xmin::text, last_seen_at, previous_seen_at FROM known_devices WHERE family LIKE %s",
            (family_prefix + "%",),
        )
        return await cur.fetchone()


async def test_a_device_seen_lately_is_not_written_again_and_one_seen_before_that_is(proxied_mail_client, smtp):
    client = proxied_mail_client
    await verified_account(client, smtp, "ann", "ann@example.com")
    await sign_in(client, FIREFOX.format(v=133), "192.0.2.10")
    first = await device_row(client, "Firefox")
    for _ in range(3):
        await sign_in(client, FIREFOX.format(v=133), "192.0.2.10")
    assert await device_row(client, "Firefox") == first  # the same row version: nothing was written
    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "UPDATE known_devices SET last_seen_at = last_seen_at - make_interval(secs => %s)",
            (DEVICE_SEEN_EVERY + 5,),
        )
    aged = await device_row(client, "Firefox")
    await sign_in(client, FIREFOX.format(v=133), "192.0.2.10")
    _, last_seen, previous = await device_row(client, "Firefox")
    assert previous == aged[1] and last_seen > aged[1]
    await settled(client, smtp, "probe3")
    assert len(new_device_notices(smtp, "ann@example.com")) == 1  # the first Firefox sign-in only


async def test_racing_sign_ins_from_one_new_device_tell_once(make_client, smtp):
    shared = {"smtp_url": smtp.url(), "trusted_proxies": 1, "login_max_failures": 100}
    a = await make_client(**shared)
    b = await make_client(**shared, secret_key=a.app[settings_key].secret_key)
    await verified_account(a, smtp, "ann", "ann@example.com")
    # Each round a network not seen before; each sign-in from its own address of it, so no address's limit on
    # password checks in flight is reached.
    for round_ in range(6):
        await asyncio.gather(*(sign_in((a, b)[n % 2], CHROME_MAC, f"10.{round_}.0.{n + 1}") for n in range(12)))
        await settled(a, smtp, f"probe{round_}")
        assert len(new_device_notices(smtp, "ann@example.com")) == round_ + 1


async def test_a_google_sign_in_from_a_new_device_is_told(proxied_mail_client, smtp, google):
    client = proxied_mail_client
    id_token = google.id_token(client_id=CLIENT_ID, sub="g-ann", email="ann@example.com")

    async def add_user(agent):
        body = {"clientID": CLIENT_ID, "idToken": id_token}
        resp = await client.post("/adduser/", json=body, headers={"User-Agent": agent, "X-Forwarded-For": "192.0.2.5"})
        assert resp.status == 200, await resp.text()
        return (await resp.json())["token"]

    token = await add_user("swiftUIChatter/1 CFNetwork/1568.100.1 Darwin/24.0.0")  # a new account: nobody is told
    assert (await client.post("/email", json={"email": "ann@example.com"}, headers=bearer(token))).status == 204
    code = await smtp.code_for("ann@example.com")
    assert (await client.post("/email/verify", json={"code": code}, headers=bearer(token))).status == 204
    await add_user("okhttp/4.12.0")
    [_, notice] = await smtp.wait_for_mail("ann@example.com", 2)
    assert notice["Subject"] == NEW_DEVICE and "chatter Android app, from 192.0.2.5" in notice.get_content()


async def test_sign_ins_that_tell_nobody_wake_no_sender(proxied_mail_client, smtp):
    client = proxied_mail_client
    await verified_account(client, smtp, "ann", "ann@example.com")
    conn = psycopg2.connect(client.app[settings_key].database_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("LISTEN chatterd_events")
        await sign_in(client, FIREFOX.format(v=133), "192.0.2.10")  # a new device: the sender is woken
        for _ in range(3):
            await sign_in(client, FIREFOX.format(v=133), "192.0.2.10")  # seen: nothing to send
        with conn.cursor() as cur:
            cur.execute("NOTIFY chatterd_events, 'marker'")

        async def marker_heard():
            conn.poll()
            payloads = [notify.payload for notify in conn.notifies]
            return payloads if "marker" in payloads else None

        payloads = await wait_for(marker_heard, timeout=5.0, what="the marker notice")
        assert payloads[: payloads.index("marker")].count("mail") == 1, payloads
    finally:
        conn.close()


async def test_forgetting_devices_reads_through_indexes(client):
    await register(client, "ann")
    async with client.app[db_key].cursor() as cur:
        # Many users with a few devices each, seen within KNOWN_DEVICE_DAYS but for a few: as the purge at each
        # sign-in keeps it.
        await cur.execute("INSERT INTO users (username) SELECT 'g' || g FROM generate_series(1, 2000) AS g")
        await cur.execute(
            "INSERT INTO known_devices (user_id, family, network, last_seen_at)"
            " SELECT users.id, 'Firefox on Linux', 'n' || g,"
            "        now() - CASE WHEN users.id % 100 = 0 AND g = 1 THEN interval '200 days'"
            "                     ELSE g * interval '1 day' END"
            " FROM users, generate_series(1, 10) AS g"
        )
        await cur.execute("ANALYZE known_devices")
        statement = f"EXPLAIN WITH {SIGNED_IN_DEVICE.format(user_id='%(user_id)s', source='')} SELECT 1"
        letter = {"device_letter_kind": "new_device", "device_letter_sealed": b""}
        await cur.execute(statement, {"user_id": 1, "device_family": "f", "device_network": "n", **letter})
        plan = "\n".join(row[0] for row in await cur.fetchall())
    assert "Seq Scan on known_devices" not in plan, plan
    assert "known_devices_last_seen_at" in plan, plan
