"""Passkeys through the API, driven by a software authenticator: register, list, delete, sign in, and every refusal."""

from __future__ import annotations

import copy
from typing import Any

import pyotp
import pytest

from auth.cookies import HOST_COOKIE_NAME
from auth.passkeys import MAX_PASSKEYS
from core.keys import db_key
from settings import ConfigError, Settings, apk_key_hash_origin
from tests.support.accounts import signed_in
from tests.support.authenticator import Authenticator
from tests.support.common import bearer
from tests.support.passkeys import ORIGIN, RP_ID, add_passkey, login_options, passkey_login
from tests.support.signing import b64url, unb64url

APP_FINGERPRINT = ":".join(["4F"] * 32)
APP_ORIGIN = apk_key_hash_origin(APP_FINGERPRINT)


@pytest.fixture
async def client(make_client):
    """The app with a relying party: the site chatter.test and an Android app."""
    return await make_client(webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN, APP_ORIGIN))


async def list_passkeys(client, token: str) -> list[dict[str, Any]]:
    resp = await client.get("/passkeys", headers=bearer(token))
    assert resp.status == 200
    passkeys: list[dict[str, Any]] = (await resp.json())["passkeys"]
    return passkeys


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
async def test_register_sign_in_without_a_name_and_delete(client, algorithm):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN, algorithm=algorithm)
    created = await add_passkey(client, token, authenticator, name="My phone")
    assert created["name"] == "My phone" and created["created_at"].endswith("Z")
    [listed] = await list_passkeys(client, token)
    assert listed == {**created, "last_used_at": None}

    options = await login_options(client)
    assert options["allowCredentials"] == [] and options["rpId"] == RP_ID  # discoverable: no name typed
    resp = await client.post("/passkeys/login", json={"credential": authenticator.get(options)})
    assert resp.status == 200, await resp.text()
    issued = await resp.json()
    assert issued["token_type"] == "Bearer" and issued["refresh_token"] and issued["expires_in"] > 0
    assert resp.cookies[HOST_COOKIE_NAME].value == issued["token"]
    client.session.cookie_jar.clear()
    me = await (await client.get("/get-user", headers=bearer(issued["token"]))).json()
    assert me["user"]["username"] == "ann"
    refreshed = await client.post("/token/refresh", json={"refresh_token": issued["refresh_token"]})
    assert refreshed.status == 200
    [listed] = await list_passkeys(client, token)
    assert listed["last_used_at"] is not None

    resp = await client.delete(f"/passkeys/{created['id']}", headers=bearer(token))
    assert resp.status == 204
    assert await list_passkeys(client, token) == []
    status, body = await passkey_login(client, authenticator.get(await login_options(client)))
    assert status == 401 and "not registered" in body["message"]


async def test_creation_options_follow_the_contract(client):
    token = await signed_in(client)
    resp = await client.post("/passkeys/register/options", headers=bearer(token))
    options = await resp.json()
    assert options["rp"] == {"id": RP_ID, "name": "chatter"}
    assert options["user"]["name"] == "ann" and len(unb64url(options["user"]["id"])) == 32
    assert [param["alg"] for param in options["pubKeyCredParams"]] == [-7, -8]  # ES256, EdDSA
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["excludeCredentials"] == [] and options["attestation"] == "none"
    assert options["timeout"] == 300_000 and len(unb64url(options["challenge"])) == 32

    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, token, authenticator)
    again = await (await client.post("/passkeys/register/options", headers=bearer(token))).json()
    assert again["user"]["id"] == options["user"]["id"]  # one handle per user, for every passkey
    assert [item["id"] for item in again["excludeCredentials"]] == [b64url(authenticator.passkeys[0].credential_id)]
    assert again["excludeCredentials"][0]["transports"] == ["internal", "hybrid"]


async def test_several_named_passkeys_and_username_first(client):
    token = await signed_in(client)
    phone, laptop = Authenticator(ORIGIN), Authenticator(ORIGIN, algorithm="EdDSA")
    await add_passkey(client, token, phone, name="Phone")
    await add_passkey(client, token, laptop)  # no name: named after the device it was added from
    assert [p["name"] for p in await list_passkeys(client, token)] == ["Phone", "Python aiohttp 3"]

    options = await login_options(client, "ANN")  # usernames compare case-folded
    assert {unb64url(item["id"]) for item in options["allowCredentials"]} == {
        phone.passkeys[0].credential_id,
        laptop.passkeys[0].credential_id,
    }
    for authenticator in (phone, laptop):
        status, _ = await passkey_login(client, authenticator.get(await login_options(client, "ann")))
        assert status == 200
    await signed_in(client, "bob")
    for name in ("nobody", "bob"):  # an unknown name and a name without passkeys look alike
        assert (await login_options(client, name))["allowCredentials"] == []
    # A device that does not say what it is: "Passkey".
    options = await (await client.post("/passkeys/register/options", headers=bearer(token))).json()
    credential = Authenticator(ORIGIN).create(options)
    resp = await client.post(
        "/passkeys/register", json={"credential": credential}, headers={**bearer(token), "User-Agent": ""}
    )
    assert resp.status == 201 and (await resp.json())["name"] == "Passkey"


async def test_a_replayed_assertion_is_401(client):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, token, authenticator)
    assertion = authenticator.get(await login_options(client))
    assert (await passkey_login(client, assertion))[0] == 200
    status, body = await passkey_login(client, assertion)
    assert status == 401 and "challenge" in body["message"]


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("https://evil.test", 401),
        ("http://chatter.test", 401),  # the scheme counts
        ("https://chatter.test:8443", 401),
        ("android:apk-key-hash:" + b64url(bytes(32)), 401),
        (APP_ORIGIN, 200),  # the configured Android app
    ],
)
async def test_the_origin_must_be_the_sites_or_its_apps(client, origin, status):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, token, authenticator)
    got, body = await passkey_login(client, authenticator.get(await login_options(client), origin=origin))
    assert got == status, body


async def test_a_wrong_origin_or_rp_id_at_registration_is_401(client):
    token = await signed_in(client)
    for bend in ({"origin": "https://evil.test"}, {"rp_id": "evil.test"}):
        options = await (await client.post("/passkeys/register/options", headers=bearer(token))).json()
        credential = Authenticator(ORIGIN).create(options, **bend)
        resp = await client.post("/passkeys/register", json={"credential": credential}, headers=bearer(token))
        assert resp.status == 401, bend
    assert await list_passkeys(client, token) == []


async def test_a_wrong_rp_id_is_401(client):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, token, authenticator)
    status, body = await passkey_login(client, authenticator.get(await login_options(client), rp_id="evil.test"))
    assert status == 401 and "RP ID" in body["message"]


async def test_a_counter_going_backwards_is_401(client):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, token, authenticator)
    for _ in range(3):
        assert (await passkey_login(client, authenticator.get(await login_options(client))))[0] == 200
    passkey = authenticator.passkeys[0]
    for count in (passkey.sign_count, passkey.sign_count - 1, 0):  # the same count again, lower, reset
        status, body = await passkey_login(client, authenticator.get(await login_options(client), sign_count=count))
        assert status == 401 and "count" in body["message"], (count, body)
    assert (await passkey_login(client, authenticator.get(await login_options(client))))[0] == 200


async def test_an_authenticator_without_a_counter_signs_in_every_time(client):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN, counts=False)
    await add_passkey(client, token, authenticator)
    for _ in range(3):
        assert (await passkey_login(client, authenticator.get(await login_options(client))))[0] == 200


async def test_another_users_credential_is_401(client):
    ann, bob = await signed_in(client, "ann"), await signed_in(client, "bob")
    anns, bobs = Authenticator(ORIGIN), Authenticator(ORIGIN)
    await add_passkey(client, ann, anns)
    await add_passkey(client, bob, bobs)
    # Options for bob's passkeys, answered with ann's.
    status, body = await passkey_login(client, anns.get(await login_options(client, "bob"), anns.passkeys[0]))
    assert status == 401 and "another account" in body["message"]
    # Ann's passkey claiming bob's user handle.
    forged = anns.get(await login_options(client), user_handle=bobs.passkeys[0].user_handle)
    assert (await passkey_login(client, forged))[0] == 401
    # A registration answering bob's creation options, sent as ann.
    options = await (await client.post("/passkeys/register/options", headers=bearer(bob))).json()
    credential = Authenticator(ORIGIN).create(options)
    resp = await client.post("/passkeys/register", json={"credential": credential}, headers=bearer(ann))
    assert resp.status == 401
    # Ann cannot delete bob's passkey, nor see it.
    [bobs_entry] = await list_passkeys(client, bob)
    assert (await client.delete(f"/passkeys/{bobs_entry['id']}", headers=bearer(ann))).status == 404
    assert [p["id"] for p in await list_passkeys(client, ann)] != [bobs_entry["id"]]
    assert len(await list_passkeys(client, bob)) == 1


async def test_an_expired_challenge_is_401(client):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, token, authenticator)
    options = await login_options(client)
    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "UPDATE webauthn_challenges SET expires_at = now() - interval '1 second' WHERE challenge = %s",
            (unb64url(options["challenge"]),),
        )
    status, body = await passkey_login(client, authenticator.get(options))
    assert status == 401 and "expired" in body["message"]
    options = await (await client.post("/passkeys/register/options", headers=bearer(token))).json()
    async with client.app[db_key].cursor() as cur:
        await cur.execute("UPDATE webauthn_challenges SET expires_at = now() - interval '1 second'")
    resp = await client.post(
        "/passkeys/register", json={"credential": Authenticator(ORIGIN).create(options)}, headers=bearer(token)
    )
    assert resp.status == 401


async def test_challenges_serve_only_their_own_ceremony(client):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, token, authenticator)
    # A creation challenge answered as a sign-in, and a sign-in challenge answered as a registration.
    creation = await (await client.post("/passkeys/register/options", headers=bearer(token))).json()
    assert (await passkey_login(client, authenticator.get({"challenge": creation["challenge"]})))[0] == 401
    request = await login_options(client)
    forged = {**creation, "challenge": request["challenge"]}
    resp = await client.post(
        "/passkeys/register", json={"credential": Authenticator(ORIGIN).create(forged)}, headers=bearer(token)
    )
    assert resp.status == 401
    # A registration replayed.
    options = await (await client.post("/passkeys/register/options", headers=bearer(token))).json()
    credential = Authenticator(ORIGIN).create(options)
    first = await client.post("/passkeys/register", json={"credential": credential}, headers=bearer(token))
    second = await client.post("/passkeys/register", json={"credential": credential}, headers=bearer(token))
    assert (first.status, second.status) == (201, 401)


async def test_a_bad_signature_is_401(client):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, token, authenticator)
    assertion = authenticator.get(await login_options(client))
    signature = bytearray(unb64url(assertion["response"]["signature"]))
    signature[-1] ^= 1
    assertion["response"]["signature"] = b64url(bytes(signature))
    status, body = await passkey_login(client, assertion)
    assert status == 401 and "signature" in body["message"]


async def test_a_passkey_registered_already_is_409_for_anyone(client):
    ann, bob = await signed_in(client, "ann"), await signed_in(client, "bob")
    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, ann, authenticator)
    for token in (ann, bob):  # a client that ignores excludeCredentials
        options = await (await client.post("/passkeys/register/options", headers=bearer(token))).json()
        credential = authenticator.create(options, reuse=authenticator.passkeys[0])
        resp = await client.post("/passkeys/register", json={"credential": credential}, headers=bearer(token))
        assert resp.status == 409 and "already registered" in (await resp.json())["message"]
    assert len(await list_passkeys(client, ann)) == 1 and await list_passkeys(client, bob) == []


async def test_at_most_so_many_passkeys(client):
    token = await signed_in(client)
    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "INSERT INTO passkeys (user_id, credential_id, public_key, name)"
            " SELECT users.id, decode(md5(i::text), 'hex'), '\\x00', 'filler'"
            " FROM users, generate_series(2, %s) AS i WHERE users.username = 'ann'",
            (MAX_PASSKEYS,),
        )
    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, token, authenticator)
    options = await (await client.post("/passkeys/register/options", headers=bearer(token))).json()
    resp = await client.post(
        "/passkeys/register", json={"credential": Authenticator(ORIGIN).create(options)}, headers=bearer(token)
    )
    assert resp.status == 409 and str(MAX_PASSKEYS) in (await resp.json())["message"]


async def test_with_totp_on_a_verifying_passkey_is_enough_and_one_that_does_not_verify_is_not(client):
    token = await signed_in(client)
    secret = (await (await client.post("/totp/setup", headers=bearer(token))).json())["secret"]
    resp = await client.post("/totp/enable", json={"otp": pyotp.TOTP(secret).now()}, headers=bearer(token))
    assert resp.status == 204
    verifying, present_only = Authenticator(ORIGIN), Authenticator(ORIGIN, user_verification=False)
    await add_passkey(client, token, verifying)
    await add_passkey(client, token, present_only)
    assert (await passkey_login(client, verifying.get(await login_options(client))))[0] == 200
    status, body = await passkey_login(client, present_only.get(await login_options(client)))
    assert status == 401 and "two-factor" in body["message"]


async def test_without_totp_a_passkey_that_only_checks_presence_signs_in(client):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN, user_verification=False)
    await add_passkey(client, token, authenticator)
    assert (await passkey_login(client, authenticator.get(await login_options(client))))[0] == 200


def _mutations(credential: dict[str, Any]) -> list[Any]:
    """Broken versions of an assertion: wrong types, missing parts, bytes that are not base64url or not CBOR."""
    cases: list[Any] = []
    for key in ("id", "rawId", "type", "response"):
        for value in (None, 5, "", "!!!", [], {}):
            broken = copy.deepcopy(credential)
            broken[key] = value
            cases.append(broken)
    for key in ("clientDataJSON", "authenticatorData", "signature", "userHandle"):
        for value in (None, 5, "", "a", "!!!", "é", b64url(b"{}"), b64url(b"not json"), "A" * 5000):
            broken = copy.deepcopy(credential)
            broken["response"][key] = value
            cases.append(broken)
    return cases


async def test_broken_assertions_are_refused_never_a_500(client):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, token, authenticator)
    for broken in _mutations(authenticator.get(await login_options(client))):
        status, body = await passkey_login(client, broken)
        assert status in {401, 422}, (broken, status, body)
    for body in ({}, {"credential": None}, {"credential": "x"}, {"credential": []}):
        resp = await client.post("/passkeys/login", json=body)
        assert resp.status == 422
    assert (await client.post("/passkeys/login", data=b"{")).status == 400


async def test_broken_registrations_are_refused_never_a_500(client):
    token = await signed_in(client)
    options = await (await client.post("/passkeys/register/options", headers=bearer(token))).json()
    good = Authenticator(ORIGIN).create(options)
    for key, value in [("attestationObject", "oA"), ("attestationObject", "!!"), ("clientDataJSON", "e30")]:
        broken = copy.deepcopy(good)
        broken["response"][key] = value
        resp = await client.post("/passkeys/register", json={"credential": broken}, headers=bearer(token))
        assert resp.status in {401, 422}, (key, value, resp.status)
    del good["response"]["attestationObject"]
    resp = await client.post("/passkeys/register", json={"credential": good}, headers=bearer(token))
    assert resp.status == 422


async def test_any_server_finishes_a_ceremony_another_one_started(client, make_client):
    other = await make_client(webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,))
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN)
    options = await (await client.post("/passkeys/register/options", headers=bearer(token))).json()
    resp = await other.post(
        "/passkeys/register", json={"credential": authenticator.create(options)}, headers=bearer(token)
    )
    assert resp.status == 201
    assertion = authenticator.get(await login_options(other))
    assert (await passkey_login(client, assertion))[0] == 200
    assert (await passkey_login(other, assertion))[0] == 401  # and spent for every server


async def test_passkey_changes_and_sign_ins_are_audited(client):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN)
    created = await add_passkey(client, token, authenticator)
    assert (await passkey_login(client, authenticator.get(await login_options(client))))[0] == 200
    assert (await passkey_login(client, authenticator.get({"challenge": b64url(bytes(32))})))[0] == 401
    assert (await client.delete(f"/passkeys/{created['id']}", headers=bearer(token))).status == 204
    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "SELECT event, kind FROM auth_events WHERE event <> 'sign_in' OR kind = 'passkey' ORDER BY id"
        )
        events = await cur.fetchall()
    assert events == [
        ("passkey_added", None),
        ("sign_in", "passkey"),
        ("sign_in_failed", "passkey"),
        ("passkey_removed", None),
    ]


@pytest.mark.parametrize("passkey_id", ["00000000-0000-0000-0000-000000000000", "nope", "urn:uuid:" + "0" * 32])
async def test_deleting_an_unknown_passkey_is_404(client, passkey_id):
    token = await signed_in(client)
    assert (await client.delete(f"/passkeys/{passkey_id}", headers=bearer(token))).status == 404


async def test_passkey_endpoints_need_sign_in_where_the_contract_says(client):
    for method, path in [
        ("POST", "/passkeys/register/options"),
        ("POST", "/passkeys/register"),
        ("GET", "/passkeys"),
        ("DELETE", "/passkeys/00000000-0000-0000-0000-000000000000"),
    ]:
        resp = await client.request(method, path, json={})
        assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer", path
    assert (await client.post("/passkeys/login/options")).status == 200  # anyone may start a sign-in, even bodiless


async def test_a_cross_site_passkey_sign_in_is_403(client):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, token, authenticator)
    resp = await client.post(
        "/passkeys/login",
        json={"credential": authenticator.get(await login_options(client))},
        headers={"Origin": "https://evil.test"},
    )
    assert resp.status == 403


async def test_sign_in_options_are_limited_per_address(make_client):
    client = await make_client(webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,), passkey_options_max_per_address=3)
    statuses = [(await client.post("/passkeys/login/options", json={})).status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    resp = await client.post("/passkeys/login/options", json={})
    assert int(resp.headers["Retry-After"]) >= 1


async def test_without_a_configured_relying_party_only_loopback_hosts_get_one(make_client):
    client = await make_client()  # no PUBLIC_URL, no WEBAUTHN_RP_ID
    options = await login_options(client)
    assert options["rpId"] == "127.0.0.1"
    resp = await client.post("/passkeys/login/options", json={}, headers={"Host": "localhost:8000"})
    assert (await resp.json())["rpId"] == "localhost"
    resp = await client.post("/passkeys/login/options", json={}, headers={"Host": "chat.example.com"})
    assert resp.status == 404 and "PUBLIC_URL" in (await resp.json())["message"]


async def test_app_association_documents_come_from_the_settings(make_client):
    apps = ("com.example.chatter=" + APP_FINGERPRINT, "com.example.chatter=" + ":".join(["0A"] * 32))
    client = await make_client(
        public_url="https://chatter.test",
        webauthn_android_apps=apps,
        webauthn_apple_app_ids=("ABCDE12345.edu.chatter",),
    )
    resp = await client.get("/.well-known/assetlinks.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.json() == [
        {
            "relation": ["delegate_permission/common.get_login_creds"],
            "target": {
                "namespace": "android_app",
                "package_name": "com.example.chatter",
                "sha256_cert_fingerprints": [APP_FINGERPRINT, ":".join(["0A"] * 32)],
            },
        }
    ]
    resp = await client.get("/.well-known/apple-app-site-association")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.json() == {"webcredentials": {"apps": ["ABCDE12345.edu.chatter"]}}
    # The Android apps' origins are accepted by default, beside the site's own.
    token = await signed_in(client)
    authenticator = Authenticator(APP_ORIGIN)
    await add_passkey(client, token, authenticator)
    assert (await passkey_login(client, authenticator.get(await login_options(client))))[0] == 200


def test_passkey_settings_from_the_environment():
    env = {
        "SECRET_KEY": "k" * 48,
        "PUBLIC_URL": "https://chat.example.com/",
        "WEBAUTHN_ANDROID_APPS": "com.example.chatter=" + APP_FINGERPRINT.lower(),
        "WEBAUTHN_APPLE_APP_IDS": "ABCDE12345.edu.chatter",
    }
    settings = Settings.from_env(env)
    assert settings.passkey_rp_id == "chat.example.com"
    assert settings.passkey_origins == ("https://chat.example.com", APP_ORIGIN)
    assert settings.android_apps == (("com.example.chatter", APP_FINGERPRINT),)
    explicit = Settings.from_env(
        {**env, "WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "https://example.com, https://chat.example.com"}
    )
    assert explicit.passkey_rp_id == "example.com"
    assert explicit.passkey_origins == ("https://example.com", "https://chat.example.com")
    # PUBLIC_URL on an address: no relying party (an address cannot be an RP ID), and the server still starts.
    assert Settings.from_env({"SECRET_KEY": "k" * 48, "PUBLIC_URL": "http://10.0.0.5:8000"}).passkey_rp_id is None


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"WEBAUTHN_RP_ID": "127.0.0.1", "WEBAUTHN_ORIGINS": "https://a.test"}, "domain"),
        ({"WEBAUTHN_RP_ID": "Chatter.Test", "WEBAUTHN_ORIGINS": "https://chatter.test"}, "domain"),
        ({"WEBAUTHN_RP_ID": "chatter.test"}, "needs WEBAUTHN_ORIGINS"),
        ({"WEBAUTHN_ORIGINS": "https://chatter.test"}, "needs WEBAUTHN_RP_ID"),
        ({"WEBAUTHN_RP_ID": "chatter.test", "WEBAUTHN_ORIGINS": "https://evil.test"}, "not on WEBAUTHN_RP_ID"),
        ({"WEBAUTHN_RP_ID": "chatter.test", "WEBAUTHN_ORIGINS": "https://xchatter.test"}, "not on WEBAUTHN_RP_ID"),
        ({"WEBAUTHN_RP_ID": "chatter.test", "WEBAUTHN_ORIGINS": "https://chatter.test/"}, "origins"),
        ({"WEBAUTHN_RP_ID": "chatter.test", "WEBAUTHN_ORIGINS": "https://chatter.test:x"}, "origins"),
        ({"WEBAUTHN_RP_ID": "chatter.test", "WEBAUTHN_ORIGINS": "android:apk-key-hash:abc"}, "apk-key-hash"),
        ({"WEBAUTHN_ANDROID_APPS": "com.example.chatter"}, "WEBAUTHN_ANDROID_APPS"),
        ({"WEBAUTHN_ANDROID_APPS": "chatter=" + APP_FINGERPRINT}, "WEBAUTHN_ANDROID_APPS"),
        ({"WEBAUTHN_APPLE_APP_IDS": "edu.chatter"}, "WEBAUTHN_APPLE_APP_IDS"),
    ],
)
def test_bad_passkey_settings_stop_the_start(env, needle):
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env({"SECRET_KEY": "k" * 48, **env})


async def test_a_passkey_sign_in_opens_a_session_of_its_own_kind(client):
    token = await signed_in(client)
    authenticator = Authenticator(ORIGIN)
    await add_passkey(client, token, authenticator)
    status, issued = await passkey_login(client, authenticator.get(await login_options(client)))
    assert status == 200
    client.session.cookie_jar.clear()
    sessions = (await (await client.get("/sessions", headers=bearer(issued["token"]))).json())["sessions"]
    assert [(s["kind"], s["current"]) for s in sessions] == [("passkey", True), ("password", False)]
    # Its credentials end together: log out with the JWT, and its refresh token is refused too.
    assert (await client.post("/logout", headers=bearer(issued["token"]))).status == 204
    resp = await client.post("/token/refresh", json={"refresh_token": issued["refresh_token"]})
    assert resp.status == 401
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT detail->>'session' FROM auth_events WHERE event = 'sign_in' AND kind = 'passkey'")
        assert await cur.fetchall() == [(sessions[0]["id"],)]
