"""Step-up: sensitive actions need a recent sign-in in the session; POST /reauthenticate gives one."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyotp
import pytest

from core.keys import db_key
from tests.support.accounts import PASSWORD, call, signed_in, signed_in_at
from tests.support.authenticator import Authenticator
from tests.support.common import CLIENT_ID, bearer
from tests.support.launcher import base_env, running
from tests.support.passkeys import ORIGIN, RP_ID, add_passkey, login_options

MAX_FAILURES = 3


@pytest.fixture
async def client(make_client):
    return await make_client(webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,), login_max_failures=MAX_FAILURES)


async def age_sign_ins(client, seconds: int = 600) -> None:
    """Make every session's last proof of identity `seconds` old, as if it had signed in that long ago."""
    async with client.app[db_key].cursor() as cur:
        await cur.execute("UPDATE sessions SET authenticated_at = now() - make_interval(secs => %s)", (seconds,))


async def reauthenticate(client, token: str, **body: Any) -> tuple[int, Any]:
    resp = await client.post("/reauthenticate", json=body, headers=bearer(token))
    return resp.status, (await resp.json() if resp.content_length else None)


async def turn_on_totp(client, token: str) -> pyotp.TOTP:
    secret = (await (await client.post("/totp/setup", headers=bearer(token))).json())["secret"]
    totp = pyotp.TOTP(secret)
    assert (await client.post("/totp/enable", json={"otp": totp.now()}, headers=bearer(token))).status == 204
    return totp


def later_code(totp: pyotp.TOTP) -> str:
    """The next step's code: valid (within the window) and not used yet."""
    return totp.at(time.time() + 30)


# Each sensitive action that exists, with what it needs first: it returns the request to try, and what the step-up
# sends beside the password.
async def _totp_disable(client, token):
    totp = await turn_on_totp(client, token)
    codes = (await (await client.post("/totp/recovery-codes", headers=bearer(token))).json())["codes"]
    return ("POST", "/totp/disable", {"otp": codes[0]}), {"otp": later_code(totp)}


async def _recovery_codes(client, token):
    totp = await turn_on_totp(client, token)
    return ("POST", "/totp/recovery-codes", None), {"otp": later_code(totp)}


async def _register_options(client, token):
    return ("POST", "/passkeys/register/options", None), {}


async def _register(client, token):
    options = await (await client.post("/passkeys/register/options", headers=bearer(token))).json()
    return ("POST", "/passkeys/register", {"credential": Authenticator(ORIGIN).create(options)}), {}


async def _delete_passkey(client, token):
    created = await add_passkey(client, token, Authenticator(ORIGIN))
    return ("DELETE", f"/passkeys/{created['id']}", None), {}


async def _set_email(client, token):
    return ("POST", "/email", {"email": "ann@example.com"}), {}


async def _change_password(client, token):
    return ("POST", "/password/change", {"current_password": PASSWORD, "password": "a new long passphrase"}), {}


@pytest.mark.parametrize(
    ("prepare", "status"),
    [
        pytest.param(_set_email, 204, id="email"),
        pytest.param(_change_password, 204, id="password-change"),
        pytest.param(_totp_disable, 204, id="totp-disable"),
        pytest.param(_recovery_codes, 200, id="totp-recovery-codes"),
        pytest.param(_register_options, 200, id="passkey-register-options"),
        pytest.param(_register, 201, id="passkey-register"),
        pytest.param(_delete_passkey, 204, id="passkey-delete"),
    ],
)
async def test_a_sensitive_action_needs_a_recent_sign_in(client, prepare, status):
    token = await signed_in(client)
    (method, path, body), second_factor = await prepare(client, token)
    await age_sign_ins(client)
    resp = await client.request(method, path, json=body, headers=bearer(token))
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
    assert (await resp.json())["error"] == "reauth_required"
    assert (await reauthenticate(client, token, password=PASSWORD, **second_factor))[0] == 204
    resp = await client.request(method, path, json=body, headers=bearer(token))
    assert resp.status == status, await resp.text()


async def test_a_sign_in_is_recent_for_reauth_max_age_seconds(make_client):
    client = await make_client(reauth_max_age=100)
    token = await signed_in(client)
    await age_sign_ins(client, 60)
    assert (await client.post("/passkeys/register/options", headers=bearer(token))).status != 401
    await age_sign_ins(client, 140)
    resp = await client.post("/passkeys/register/options", headers=bearer(token))
    assert resp.status == 401 and (await resp.json())["error"] == "reauth_required"


async def test_reauthenticating_with_the_password_is_counted_like_a_sign_in(client):
    token = await signed_in(client)
    await age_sign_ins(client)
    for _ in range(MAX_FAILURES):
        status, body = await reauthenticate(client, token, password="wrong password")
        assert status == 401 and body["message"] == "Wrong username or password."
    status, _ = await reauthenticate(client, token, password=PASSWORD)  # locked out, as /login is
    assert status == 429
    resp = await client.post("/login", json={"username": "ann", "password": PASSWORD})
    assert resp.status == 429  # the same counters: a stolen token buys no extra guesses
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT count(*) FROM auth_events WHERE event = 'reauthenticate_failed'")
        assert await cur.fetchone() == (MAX_FAILURES,)


async def test_with_totp_on_reauthenticating_needs_the_code(client):
    token = await signed_in(client)
    totp = await turn_on_totp(client, token)
    await age_sign_ins(client)
    status, body = await reauthenticate(client, token, password=PASSWORD)
    assert status == 401 and body["error"] == "otp_required"
    assert (await reauthenticate(client, token, password=PASSWORD, otp=later_code(totp)))[0] == 204
    assert (await client.post("/totp/recovery-codes", headers=bearer(token))).status == 200


async def test_reauthenticating_with_a_passkey(client):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, token, authenticator)
    await age_sign_ins(client)
    assertion = authenticator.get(await login_options(client, "ann"))
    assert (await reauthenticate(client, token, credential=assertion))[0] == 204
    assert (await client.post("/passkeys/register/options", headers=bearer(token))).status == 200
    status, body = await reauthenticate(client, token, credential=assertion)  # replayed
    assert status == 401 and "challenge" in body["message"]
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT kind FROM auth_events WHERE event = 'reauthenticate'")
        assert await cur.fetchall() == [("passkey",)]


async def test_reauthenticating_with_another_users_passkey_or_a_weak_one_is_401(client):
    ann, bob = await signed_in(client, "ann"), await signed_in(client, "bob")
    bobs = Authenticator(ORIGIN)
    await add_passkey(client, bob, bobs)
    await age_sign_ins(client)
    status, body = await reauthenticate(client, ann, credential=bobs.get(await login_options(client)))
    assert status == 401 and "another account" in body["message"]
    # With TOTP on, a passkey that did not verify its user is not enough.
    await reauthenticate(client, bob, password=PASSWORD)
    await turn_on_totp(client, bob)
    weak = Authenticator(ORIGIN, user_verification=False)
    await add_passkey(client, bob, weak)
    await age_sign_ins(client)
    status, body = await reauthenticate(client, bob, credential=weak.get(await login_options(client, "bob"), None))
    assert status == 401 and "two-factor" in body["message"]
    resp = await client.post("/passkeys/register/options", headers=bearer(bob))
    assert (await resp.json())["error"] == "reauth_required"


@pytest.mark.parametrize(
    "body",
    [{}, {"otp": "123456"}, {"password": PASSWORD, "credential": {}}, {"password": 5}, {"credential": "x"}],
)
async def test_reauthenticate_wants_a_password_or_a_passkey(client, body):
    token = await signed_in(client)
    assert (await reauthenticate(client, token, **body))[0] == 422


async def test_reauthenticate_needs_sign_in(client):
    assert (await client.post("/reauthenticate", json={"password": PASSWORD})).status == 401


async def test_a_refresh_is_not_a_proof_of_identity(client):
    resp = await client.post("/register", json={"username": "ann", "password": PASSWORD})
    issued = await (await client.post("/login", json={"username": "ann", "password": PASSWORD})).json()
    client.session.cookie_jar.clear()
    await age_sign_ins(client)
    refreshed = await (await client.post("/token/refresh", json={"refresh_token": issued["refresh_token"]})).json()
    resp = await client.post("/passkeys/register/options", headers=bearer(refreshed["token"]))
    assert resp.status == 401 and (await resp.json())["error"] == "reauth_required"
    # A step-up with one credential of the session counts for all of them.
    assert (await reauthenticate(client, issued["token"], password=PASSWORD))[0] == 204
    assert (await client.post("/passkeys/register/options", headers=bearer(refreshed["token"]))).status == 200


async def test_a_step_up_counts_only_in_its_own_session(client):
    first = await signed_in(client)
    resp = await client.post("/login", json={"username": "ann", "password": PASSWORD})
    second = (await resp.json())["token"]
    client.session.cookie_jar.clear()
    await age_sign_ins(client)
    assert (await reauthenticate(client, first, password=PASSWORD))[0] == 204
    assert (await client.post("/passkeys/register/options", headers=bearer(first))).status == 200
    resp = await client.post("/passkeys/register/options", headers=bearer(second))
    assert resp.status == 401 and (await resp.json())["error"] == "reauth_required"


async def test_a_google_user_steps_up_with_a_passkey_over_a_chatterid(client, google):
    id_token = google.id_token(client_id=CLIENT_ID, name="Gus")
    signed = await (await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": id_token})).json()
    chatter_id = signed["chatterID"]
    authenticator = Authenticator(ORIGIN)
    created = await add_passkey(client, chatter_id, authenticator)
    await age_sign_ins(client)
    resp = await client.delete(f"/passkeys/{created['id']}", headers=bearer(chatter_id))
    assert resp.status == 401 and (await resp.json())["error"] == "reauth_required"
    status, body = await reauthenticate(client, chatter_id, password="anything at all")
    assert status == 401 and "no password" in body["message"]
    assertion = authenticator.get(await login_options(client))
    assert (await reauthenticate(client, chatter_id, credential=assertion))[0] == 204
    assert (await client.delete(f"/passkeys/{created['id']}", headers=bearer(chatter_id))).status == 204


async def test_a_burst_of_wrong_passwords_at_reauthenticate_gets_no_more_tries_than_the_limit(
    make_database: Any, tmp_path: Path
):
    env = base_env(
        DATABASE_URL=make_database(), CHATTERD_VAR_DIR=str(tmp_path / "var"), LOGIN_MAX_FAILURES=str(MAX_FAILURES)
    )
    async with running(env, tmp_path / "gunicorn.log") as server:
        token = await signed_in_at(server.url)
        # Twenty wrong passwords and the right one, at once, over new connections to both workers.
        passwords = [f"wrong password {n}" for n in range(20)] + [PASSWORD]
        url = f"{server.url}/reauthenticate"
        results = await asyncio.gather(*(call("POST", url, token=token, json={"password": p}) for p in passwords))
    statuses = Counter(status for status, _ in results)
    assert statuses[401] + statuses[204] <= MAX_FAILURES, statuses
    assert statuses[429] >= len(passwords) - MAX_FAILURES, statuses
