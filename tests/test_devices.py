"""Sessions and devices: GET /sessions across kinds with the current one, device names, signing out one or the rest."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY
from yarl import URL

from auth.devices import (
    ANDROID_APP,
    IOS_APP,
    MAX_DEVICE,
    MAX_USER_AGENT,
    UNKNOWN,
    clip_user_agent,
    describe,
    identify,
    identify_async,
    network_of,
)
from core.keys import db_key, token_codec_key
from tests.support.common import CLIENT_ID, bearer
from tools.fake_google import CERTS_PATH, DISCOVERY_PATH

PASSWORD = "correct horse battery"
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
# What the course's apps send: URLSession's and Alamofire's default agents on iOS, OkHttp's and Dalvik's on Android.
URLSESSION = "swiftUIChatter/1 CFNetwork/1568.100.1 Darwin/24.0.0"
ALAMOFIRE = "swiftUIChatter/1.0 (edu.umich.swiftUIChatter; build:1; iOS 18.0.0) Alamofire/5.9.1"
OKHTTP = "okhttp/4.12.0"
DALVIK = "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240805.005)"
FIELDS = {"id", "kind", "created_at", "last_seen_at", "ip", "user_agent", "device", "current"}


@pytest.mark.parametrize(
    ("user_agent", "device"),
    [
        (CHROME_MAC, "Chrome 131 on macOS"),
        (FIREFOX_LINUX, "Firefox 133 on Linux"),
        (SAFARI_IPHONE, "Mobile Safari 17 on iOS"),
        (URLSESSION, IOS_APP),
        (ALAMOFIRE, IOS_APP),
        (OKHTTP, ANDROID_APP),
        (DALVIK, ANDROID_APP),
        ("Ktor client", ANDROID_APP),
        ("curl/8.5.0", "curl 8"),
        ("", UNKNOWN),
        ("zzz", UNKNOWN),
    ],
)
def test_devices_are_described_for_people(user_agent, device):
    assert describe(user_agent) == device


@pytest.mark.parametrize(
    ("user_agent", "family"),
    [
        (CHROME_MAC, "Chrome on macOS"),
        (FIREFOX_LINUX, "Firefox on Linux"),
        (SAFARI_IPHONE, "Mobile Safari on iOS"),
        (URLSESSION, IOS_APP),
        (OKHTTP, ANDROID_APP),
        ("curl/8.5.0", "curl"),
        ("", UNKNOWN),
    ],
)
def test_a_devices_family_leaves_the_versions_out(user_agent, family):
    assert identify(user_agent) == (describe(user_agent), family)


async def test_agents_identified_before_are_answered_the_same_from_memory():
    agents = [CHROME_MAC, FIREFOX_LINUX, URLSESSION, OKHTTP, "", "zzz"]
    first = [await identify_async(agent) for agent in agents]
    again = await asyncio.gather(*(identify_async(agent) for agent in agents))
    assert first == list(again) == [identify(agent) for agent in agents]


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1:2::5", "2001:db8:1::/48"),
        ("::ffff:10.1.2.3", "10.1.2.0/24"),
        ("unknown", "unknown"),
    ],
)
def test_addresses_are_compared_by_network(address, network):
    assert network_of(address) == network


def test_user_agents_are_kept_bounded_and_printable():
    assert clip_user_agent("curl/8\x00\r\n x") == "curl/8 x"
    assert len(clip_user_agent("a" * 10_000)) == MAX_USER_AGENT
    assert clip_user_agent(None) == ""
    assert len(describe("Mozilla/5.0 (" + "x" * 500 + ") " + "Y" * 300 + "/1.0")) <= MAX_DEVICE


async def add_user(client, google, *, sub: str = "1234567890", user_agent: str = URLSESSION, address: str = "") -> Any:
    """/adduser/ as the course's app does it; the chatterID, JWT and refresh token it gives."""
    headers = {"User-Agent": user_agent, **({"X-Forwarded-For": address} if address else {})}
    resp = await client.post(
        "/adduser/",
        json={"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID, sub=sub)},
        headers=headers,
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def log_in(client, username: str = "ann", user_agent: str = CHROME_MAC) -> Any:
    resp = await client.post(
        "/login", json={"username": username, "password": PASSWORD}, headers={"User-Agent": user_agent}
    )
    assert resp.status == 200, await resp.text()
    client.session.cookie_jar.clear()  # each credential on its own: the tests present them one at a time
    return await resp.json()


async def register(client, username: str = "ann") -> None:
    assert (await client.post("/register", json={"username": username, "password": PASSWORD})).status == 201


async def sessions(client, headers: dict[str, str]) -> tuple[int, Any]:
    resp = await client.get("/sessions", headers=headers)
    return resp.status, await resp.json()


def session_of(client, token: str) -> str:
    """The `sid` of a JWT: the listed id of its session."""
    session_id = client.app[token_codec_key].decode(token).session_id
    assert session_id is not None
    return session_id


async def works(client, headers: dict[str, str]) -> bool:
    status = (await client.get("/get-user", headers=headers)).status
    assert status in {200, 401}
    return status == 200


async def test_sessions_are_listed_across_kinds_newest_first_with_the_current_one(
    make_client, google, google_certs_url
):
    google.register_client(CLIENT_ID, "web secret")
    discovery = google_certs_url.replace(CERTS_PATH, DISCOVERY_PATH)
    client = await make_client(
        google_client_secret="web secret", google_discovery_url=discovery, cookie_secure=False, trusted_proxies=1
    )
    phone = await add_user(client, google, address="198.51.100.7")
    android = await add_user(client, google, user_agent=OKHTTP, address="198.51.100.8")
    # Google web sign-in in a browser, hop by hop; the login cookie is its only credential.
    browser = {"User-Agent": CHROME_MAC, "X-Forwarded-For": "203.0.113.9"}
    started = await client.get("/auth/google/login", allow_redirects=False, headers=browser)
    consented = await client.session.get(URL(started.headers["Location"]), allow_redirects=False)
    back = await client.session.get(URL(consented.headers["Location"]), allow_redirects=False, headers=browser)
    assert back.status == 302
    cookie = {"Cookie": f"chatterd_token={back.cookies['chatterd_token'].value}"}
    client.session.cookie_jar.clear()

    status, body = await sessions(client, {"Authorization": phone["chatterID"]})
    assert status == 200
    listed = body["sessions"]
    assert [s["kind"] for s in listed] == ["google_web", "google", "google"]
    assert [s["device"] for s in listed] == ["Chrome 131 on macOS", ANDROID_APP, IOS_APP]
    assert [s["ip"] for s in listed] == ["203.0.113.9", "198.51.100.8", "198.51.100.7"]
    assert [s["user_agent"] for s in listed] == [CHROME_MAC, OKHTTP, URLSESSION]
    assert all(set(s) == FIELDS for s in listed)
    assert [s["created_at"] for s in listed] == sorted((s["created_at"] for s in listed), reverse=True)
    assert all(s["created_at"].endswith("Z") and s["last_seen_at"] >= s["created_at"] for s in listed)
    # The id is the JWT's `sid`; opaque: neither a credential nor a credential's hash.
    assert listed[2]["id"] == session_of(client, phone["token"])
    assert listed[1]["id"] == session_of(client, android["token"])
    secrets_ = [phone["chatterID"], phone["token"], phone["refresh_token"]]
    hashes = [hashlib.sha256(secret.encode()).hexdigest() for secret in secrets_]
    assert not {s["id"].replace("-", "") for s in listed} & {*secrets_, *hashes}

    # `current` is the session of the credential used, whichever kind of credential it is.
    for headers, current in [
        ({"Authorization": phone["chatterID"]}, 2),
        (bearer(phone["token"]), 2),
        (bearer(android["token"]), 1),
        (cookie, 0),
    ]:
        status, body = await sessions(client, headers)
        assert status == 200
        assert [s["current"] for s in body["sessions"]] == [n == current for n in range(3)], headers


async def test_a_password_users_sessions(client):
    await register(client)
    first = await log_in(client, user_agent=FIREFOX_LINUX)
    second = await log_in(client, user_agent=SAFARI_IPHONE)
    status, body = await sessions(client, bearer(first["token"]))
    assert status == 200
    assert [(s["kind"], s["device"], s["current"]) for s in body["sessions"]] == [
        ("password", "Mobile Safari 17 on iOS", False),
        ("password", "Firefox 133 on Linux", True),
    ]
    assert body["sessions"][0]["id"] == session_of(client, second["token"])
    await register(client, "bob")
    status, body = await sessions(client, bearer((await log_in(client, "bob"))["token"]))
    assert [s["current"] for s in body["sessions"]] == [True]  # only one's own


async def test_signing_out_one_device_stops_every_credential_of_it(client, google):
    phone = await add_user(client, google)
    laptop = await add_user(client, google, user_agent=CHROME_MAC)
    phone_id = session_of(client, phone["token"])
    credentials = [{"Authorization": phone["chatterID"]}, bearer(phone["token"])]
    assert all([await works(client, headers) for headers in credentials])

    resp = await client.delete(f"/sessions/{phone_id}", headers=bearer(laptop["token"]))
    assert resp.status == 204
    assert "chatterd_token" not in resp.headers.get("Set-Cookie", "")  # not the caller's own session
    assert not any([await works(client, headers) for headers in credentials])
    post = await client.post("/postauth/", json={"chatterID": phone["chatterID"], "message": "after"})
    assert post.status == 401
    assert (await client.post("/token/refresh", json={"refresh_token": phone["refresh_token"]})).status == 401
    assert await works(client, bearer(laptop["token"]))
    status, body = await sessions(client, bearer(laptop["token"]))
    assert status == 200
    assert [s["id"] for s in body["sessions"]] == [session_of(client, laptop["token"])]
    assert (await client.delete(f"/sessions/{phone_id}", headers=bearer(laptop["token"]))).status == 404

    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "SELECT event, detail->>'session', detail->>'reason' FROM auth_events WHERE event LIKE 'sess%%'"
        )
        assert await cur.fetchall() == [("session_revoked", phone_id, "revoked")]
        await cur.execute(
            "SELECT count(*) FROM sessions WHERE chatter_id_hash IS NOT NULL"
            " UNION ALL SELECT count(*) FROM refresh_tokens"
        )
        assert await cur.fetchall() == [(1,), (1,)]  # the laptop's only


async def test_signing_out_the_current_device_is_a_logout(client):
    await register(client)
    body = await log_in(client)
    resp = await client.delete(f"/sessions/{session_of(client, body['token'])}", headers=bearer(body["token"]))
    assert resp.status == 204
    assert "chatterd_token=" in resp.headers["Set-Cookie"]
    assert not await works(client, bearer(body["token"]))


async def test_no_one_can_probe_or_end_sessions_not_their_own(client, google):
    victim = await add_user(client, google, sub="victim")
    victim_id = session_of(client, victim["token"])
    await register(client)
    attacker = bearer((await log_in(client))["token"])
    for candidate in [
        victim_id,
        victim_id.upper(),
        str(uuid.uuid4()),
        "not-a-session",
        f"urn:uuid:{victim_id}",
        victim_id.replace("-", ""),
        "%00",
        "1" * 5000,
    ]:
        resp = await client.delete(f"/sessions/{candidate}", headers=attacker)
        assert resp.status == 404, candidate
        assert set(await resp.json()) == {"message"}
    assert await works(client, bearer(victim["token"]))
    assert await works(client, {"Authorization": victim["chatterID"]})

    for method, path in [
        ("GET", "/sessions"),
        ("DELETE", f"/sessions/{victim_id}"),
        ("POST", "/sessions/revoke-others"),
    ]:
        for headers in [{}, bearer("not-a-token"), {"Authorization": "0" * 64}]:
            resp = await client.request(method, path, headers=headers)
            assert resp.status == 401, (method, path, headers)
            assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert await works(client, bearer(victim["token"]))


async def test_signing_out_everywhere_else_keeps_the_current_session(client, google):
    await register(client)
    logins = [await log_in(client) for _ in range(3)]
    assert (await client.post("/sessions/revoke-others", headers=bearer(logins[1]["token"]))).status == 204
    assert [await works(client, bearer(body["token"])) for body in logins] == [False, True, False]
    refreshed = [
        (await client.post("/token/refresh", json={"refresh_token": body["refresh_token"]})).status for body in logins
    ]
    assert refreshed == [401, 200, 401]
    status, body = await sessions(client, bearer(logins[1]["token"]))
    assert (status, [s["current"] for s in body["sessions"]]) == (200, [True])

    # The same from a chatterID: its session (its JWT too) stays, the others go.
    phone, tablet = await add_user(client, google), await add_user(client, google)
    assert (await client.post("/sessions/revoke-others", headers={"Authorization": phone["chatterID"]})).status == 204
    assert await works(client, bearer(phone["token"])) and await works(client, {"Authorization": phone["chatterID"]})
    assert not await works(client, bearer(tablet["token"]))
    assert not await works(client, {"Authorization": tablet["chatterID"]})


async def test_revocations_are_audited_and_counted(client):
    def count(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    await register(client)
    logins = [await log_in(client) for _ in range(4)]
    before = {
        "session": count("chatterd_revocations_total", kind="session"),
        "others": count("chatterd_revocations_total", kind="others"),
        "revoked": count("chatterd_sessions_ended_total", reason="revoked"),
        "revoke_others": count("chatterd_sessions_ended_total", reason="revoke_others"),
    }
    keep = bearer(logins[0]["token"])
    assert (await client.delete(f"/sessions/{session_of(client, logins[1]['token'])}", headers=keep)).status == 204
    assert (await client.post("/sessions/revoke-others", headers=keep)).status == 204
    assert count("chatterd_revocations_total", kind="session") == before["session"] + 1
    assert count("chatterd_revocations_total", kind="others") == before["others"] + 1
    assert count("chatterd_sessions_ended_total", reason="revoked") == before["revoked"] + 1
    assert count("chatterd_sessions_ended_total", reason="revoke_others") == before["revoke_others"] + 2
    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "SELECT detail->>'session', detail->>'reason', address FROM auth_events"
            " WHERE event = 'session_revoked' ORDER BY id"
        )
        audited = await cur.fetchall()
    ended = [session_of(client, body["token"]) for body in logins[1:]]
    assert sorted(audited) == sorted(
        [
            (ended[0], "revoked", "127.0.0.1"),
            (ended[1], "revoke_others", "127.0.0.1"),
            (ended[2], "revoke_others", "127.0.0.1"),
        ]
    )
