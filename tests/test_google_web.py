"""Google web sign-in (the redirect flow) end to end: the app, a fake OpenID provider and real signatures over HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY
from yarl import URL

from auth.cookies import HOST_COOKIE_NAME
from core.keys import db_key, settings_key, token_codec_key
from google_signin.certs import GoogleCertificates
from google_signin.idtoken import verify_id_token
from google_signin.web_flow import FLOW_COOKIE, FLOW_LIFETIME, Flow, decode_flow, encode_flow, safe_next
from settings import ConfigError, Settings
from tests.support.common import CLIENT_ID
from tools.fake_google import CERTS_PATH, DISCOVERY_PATH, FakeGoogle

SECRET = "fake-client-secret-for-tests"
LOGIN = "/auth/google/login"
CALLBACK = "/auth/google/callback"


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture
def discovery_url(google_certs_url: str) -> str:
    """The fake provider's discovery document: the same server as the certificates."""
    return google_certs_url.replace(CERTS_PATH, DISCOVERY_PATH)


@pytest.fixture
def web_settings(google: FakeGoogle, discovery_url: str) -> dict[str, Any]:
    """Setting overrides that turn web sign-in on against the fake provider (cookies not Secure: plain HTTP here)."""
    google.register_client(CLIENT_ID, SECRET)
    return {"google_client_secret": SECRET, "google_discovery_url": discovery_url, "cookie_secure": False}


@pytest.fixture
async def web(make_client, web_settings):
    """The app with Google web sign-in on."""
    return await make_client(**web_settings)


def cookie(resp: aiohttp.ClientResponse, name: str) -> Any:
    """The morsel of the cookie `name` the response sets."""
    assert name in resp.cookies, f"{name} not set: {resp.headers.getall('Set-Cookie', [])}"
    return resp.cookies[name]


def set_cookie_header(resp: aiohttp.ClientResponse, name: str) -> str:
    """The raw Set-Cookie header for `name`."""
    return next(h for h in resp.headers.getall("Set-Cookie", []) if h.startswith(name + "="))


async def start(client, **params: str) -> tuple[aiohttp.ClientResponse, URL]:
    """GET /auth/google/login; return the response and where it sends the browser."""
    resp = await client.get(LOGIN, params=params, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    return resp, URL(resp.headers["Location"])


async def consent(client, authorize: URL) -> URL:
    """Follow the redirect to the provider, which consents at once; return the callback URL it sends back to."""
    resp = await client.session.get(authorize, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    return URL(resp.headers["Location"])


async def callback(client, back: URL, **headers: str) -> aiohttp.ClientResponse:
    return await client.session.get(back, allow_redirects=False, headers=headers)


async def sign_in(client, **params: str) -> aiohttp.ClientResponse:
    """The whole flow, each hop by hand; return the callback's response."""
    _, authorize = await start(client, **params)
    return await callback(client, await consent(client, authorize))


def flow_cookie_value(client) -> str:
    jar = client.session.cookie_jar.filter_cookies(client.make_url(CALLBACK))
    return jar[FLOW_COOKIE].value


async def error_message(resp: aiohttp.ClientResponse) -> str:
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"message"}
    return body["message"]


# ---- the whole flow ---------------------------------------------------------------------------------------------


async def test_full_flow_sets_the_login_cookie(web, google):
    resp = await sign_in(web)
    assert resp.status == 302
    assert resp.headers["Location"] == "/"
    assert resp.headers["Cache-Control"] == "no-store"
    login = cookie(resp, "chatterd_token")
    assert login["httponly"] and login["samesite"] == "Lax" and login["path"] == "/"
    assert int(login["max-age"]) == web.app[settings_key].jwt_lifetime
    flow = cookie(resp, FLOW_COOKIE)
    assert flow.value == "" and flow["path"] == "/auth/google"  # the flow is used up

    me = await web.get("/get-user")  # by the cookie
    assert me.status == 200
    user = (await me.json())["user"]
    assert user["username"] == "Test User" and user["role"] == "user"
    claims = web.app[token_codec_key].decode(login.value)
    assert claims.user_id == user["id"]

    web.session.cookie_jar.clear()
    assert (await web.get("/get-user")).status == 401
    bearer = await web.get("/get-user", headers={"Authorization": f"Bearer {login.value}"})
    assert bearer.status == 200

    async with web.app[db_key].cursor() as cur:
        await cur.execute("SELECT sub, identity.email, users.email FROM google_identities AS identity, users")
        assert await cur.fetchall() == [("1234567890", "test@example.com", "test@example.com")]
        await cur.execute("SELECT count(*) FROM sessions WHERE chatter_id_hash IS NOT NULL")
        assert await cur.fetchone() == (0,)  # a cookie sign-in opens no chatterID session


async def test_sign_ins_are_counted(web, google):
    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("chatterd_sign_ins_total", {"kind": "google_web", "outcome": outcome}) or 0.0

    before = count("success"), count("failure")
    assert (await sign_in(web)).status == 302
    google.web_claims = {"nonce": "wrong"}
    assert (await sign_in(web)).status == 401
    assert (count("success"), count("failure")) == (before[0] + 1, before[1] + 1)


async def test_same_google_account_is_the_same_user(web, google):
    first = cookie(await sign_in(web), "chatterd_token").value
    google.web_claims = {"name": "Renamed"}
    second = cookie(await sign_in(web), "chatterd_token").value
    codec = web.app[token_codec_key]
    assert codec.decode(first).user_id == codec.decode(second).user_id
    assert codec.decode(second).username == "Renamed"


async def test_following_every_redirect_lands_on_the_page_signed_in(web):
    resp = await web.get(LOGIN, params={"next": "/docs"})
    assert resp.status == 200 and resp.url.path == "/docs"
    assert [r.status for r in resp.history] == [302, 302, 302]
    assert (await web.get("/get-user")).status == 200


async def test_login_sends_state_nonce_and_pkce(web, google):
    resp, authorize = await start(web)
    assert str(authorize.origin()) == str(URL(web.app[settings_key].google_discovery_url).origin())
    assert authorize.path == "/o/oauth2/v2/auth"
    query = authorize.query
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == str(web.make_url(CALLBACK))
    assert query["scope"] == "openid email profile"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 43 and len(query["nonce"]) >= 43  # 256 bits, base64url

    flow = decode_flow(cookie(resp, FLOW_COOKIE).value, web.app[settings_key].secret_key)
    assert flow is not None
    assert (flow.state, flow.nonce) == (query["state"], query["nonce"])
    assert query["code_challenge"] == s256(flow.code_verifier)
    assert flow.code_verifier not in str(authorize)

    _, again = await start(web)
    assert again.query["state"] != query["state"] and again.query["nonce"] != query["nonce"]


async def test_cookies_are_secure_by_default_and_the_login_cookie_is_as_logins(make_client, web_settings):
    client = await make_client(**{**web_settings, "cookie_secure": True})
    resp, authorize = await start(client)
    header = set_cookie_header(resp, FLOW_COOKIE)
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert attributes >= {"httponly", "secure", "samesite", "path", "max-age"}
    flow = cookie(resp, FLOW_COOKIE)
    assert flow["samesite"] == "Lax" and flow["path"] == "/auth/google" and int(flow["max-age"]) == FLOW_LIFETIME

    back = await consent(client, authorize)
    resp = await callback(client, back, Cookie=f"{FLOW_COOKIE}={flow.value}")  # a Secure cookie: sent by hand
    assert resp.status == 302, await resp.text()
    google_cookie = set_cookie_header(resp, HOST_COOKIE_NAME)

    credentials = {"username": "ann", "password": "correct horse battery"}
    assert (await client.post("/register", json=credentials)).status == 201
    login = await client.post("/login", json=credentials)
    password_cookie = set_cookie_header(login, HOST_COOKIE_NAME)

    def attrs(header: str) -> list[str]:
        return sorted(part.strip() for part in header.split(";")[1:])

    assert attrs(google_cookie) == attrs(password_cookie)
    assert "Secure" in attrs(google_cookie) and "HttpOnly" in attrs(google_cookie)


async def test_public_url_makes_the_redirect_uri(make_client, web_settings):
    client = await make_client(**web_settings, public_url="https://chat.example.com/")
    _, authorize = await start(client)
    assert authorize.query["redirect_uri"] == "https://chat.example.com/auth/google/callback"


@pytest.mark.parametrize("host", ["chat.example.com", "evil.example:8443", "127.0.0.1.evil.example"])
async def test_without_public_url_a_foreign_host_gets_no_redirect_uri(make_client, web_settings, caplog, host):
    with caplog.at_level(logging.WARNING, logger="web"):
        client = await make_client(**web_settings)
    assert any("PUBLIC_URL is not set" in r.getMessage() for r in caplog.records)
    resp = await client.get(LOGIN, headers={"Host": host}, allow_redirects=False)
    assert resp.status == 404
    assert "PUBLIC_URL" in await error_message(resp)
    for loopback in [f"localhost:{client.server.port}", f"127.0.0.1:{client.server.port}"]:
        resp = await client.get(LOGIN, headers={"Host": loopback}, allow_redirects=False)
        assert resp.status == 302  # local development needs no PUBLIC_URL
        assert URL(resp.headers["Location"]).query["redirect_uri"] == f"http://{loopback}{CALLBACK}"


async def test_with_public_url_the_host_header_is_not_used(make_client, web_settings, caplog):
    with caplog.at_level(logging.WARNING, logger="web"):
        client = await make_client(**web_settings, public_url="https://chat.example.com")
    assert not any("PUBLIC_URL" in r.getMessage() for r in caplog.records)
    resp = await client.get(LOGIN, headers={"Host": "evil.example"}, allow_redirects=False)
    assert resp.status == 302
    assert URL(resp.headers["Location"]).query["redirect_uri"] == "https://chat.example.com/auth/google/callback"


async def test_another_server_can_finish_the_flow(make_client, web_settings):
    # Nothing is kept on the server that started the flow: the signed cookie is enough (same SECRET_KEY, PUBLIC_URL).
    first = await make_client(**web_settings, public_url="https://chat.example.com")
    second = await make_client(**web_settings, public_url="https://chat.example.com")
    resp, authorize = await start(first)
    back = await consent(first, authorize)
    assert back.host == "chat.example.com"
    finish = second.make_url(CALLBACK).with_query(back.query)
    resp = await callback(second, finish, Cookie=f"{FLOW_COOKIE}={cookie(resp, FLOW_COOKIE).value}")
    assert resp.status == 302, await resp.text()
    assert "chatterd_token" in resp.cookies


# ---- state, cookie and code ---------------------------------------------------------------------------------------


async def test_state_mismatch_is_refused(web, google):
    _, authorize = await start(web)
    back = await consent(web, authorize)
    resp = await callback(web, back.update_query(state="x" * 43))
    assert resp.status == 400
    assert "state" in await error_message(resp)
    resp = await callback(web, back.without_query_params("state"))
    assert resp.status == 400
    assert google.token_requests == 0


async def test_missing_flow_cookie_is_refused(web, google):
    _, authorize = await start(web)
    back = await consent(web, authorize)
    web.session.cookie_jar.clear()
    resp = await callback(web, back)
    assert resp.status == 400
    assert "start it again" in await error_message(resp)
    assert google.token_requests == 0


async def test_missing_code_is_refused(web):
    _, authorize = await start(web)
    back = await consent(web, authorize)
    resp = await callback(web, back.without_query_params("code"))
    assert resp.status == 400
    assert "code" in await error_message(resp)


async def test_tampered_flow_cookie_is_refused(web, google):
    _, authorize = await start(web)
    back = await consent(web, authorize)
    value = flow_cookie_value(web)
    header, payload, signature = value.split(".")
    # Another flow's payload under this flow's signature, and this payload under a flipped signature.
    other = encode_flow(Flow(back.query["state"], "n" * 43, "v" * 64), web.app[settings_key].secret_key)
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    for forged in (f"{header}.{other.split('.')[1]}.{signature}", f"{header}.{payload}.{flipped}"):
        web.session.cookie_jar.clear()
        resp = await callback(web, back, Cookie=f"{FLOW_COOKIE}={forged}")
        assert resp.status == 400, forged
    assert google.token_requests == 0


async def test_flow_cookie_signed_with_another_key_or_for_another_use_is_refused(web):
    _, authorize = await start(web)
    back = await consent(web, authorize)
    flow = decode_flow(flow_cookie_value(web), web.app[settings_key].secret_key)
    assert flow is not None
    access_token, _ = web.app[token_codec_key].mint(1, "ann", "user")  # same key, another audience
    for value in (encode_flow(flow, "another-secret-key-of-at-least-32-bytes!"), access_token):
        web.session.cookie_jar.clear()
        resp = await callback(web, back, Cookie=f"{FLOW_COOKIE}={value}")
        assert resp.status == 400


async def test_flow_cookie_expires(web, google):
    _, authorize = await start(web)
    back = await consent(web, authorize)
    key = web.app[settings_key].secret_key
    flow = decode_flow(flow_cookie_value(web), key)
    assert flow is not None
    stale = encode_flow(flow, key, now=time.time() - FLOW_LIFETIME - 1)
    assert decode_flow(stale, key) is None
    assert decode_flow(encode_flow(flow, key, now=time.time() - FLOW_LIFETIME + 30), key) == flow
    web.session.cookie_jar.clear()
    resp = await callback(web, back, Cookie=f"{FLOW_COOKIE}={stale}")
    assert resp.status == 400
    assert google.token_requests == 0


async def test_code_cannot_be_used_twice(web):
    _, authorize = await start(web)
    back = await consent(web, authorize)
    value = flow_cookie_value(web)
    assert (await callback(web, back)).status == 302
    web.session.cookie_jar.clear()
    resp = await callback(web, back, Cookie=f"{FLOW_COOKIE}={value}")  # a replay with the flow cookie kept
    assert resp.status == 401
    assert "invalid_grant" in await error_message(resp)
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert "chatterd_token" not in resp.cookies


async def test_pkce_verifier_mismatch_is_refused_by_the_provider(web):
    _, authorize = await start(web)
    # The code gets bound to another challenge than the one of the verifier in our cookie.
    back = await consent(web, authorize.update_query(code_challenge=s256("another verifier" * 4)))
    resp = await callback(web, back)
    assert resp.status == 401
    assert "invalid_grant" in await error_message(resp)


async def test_wrong_client_secret_is_refused_and_logged(make_client, web_settings, caplog):
    client = await make_client(**{**web_settings, "google_client_secret": "not-the-secret"})
    with caplog.at_level(logging.ERROR, logger="views.google_web"):
        resp = await sign_in(client)
    assert resp.status == 401
    assert "invalid_client" in await error_message(resp)
    assert any("GOOGLE_CLIENT_SECRET" in r.getMessage() for r in caplog.records)
    assert "not-the-secret" not in caplog.text


async def test_provider_error_goes_back_to_the_page(web, google):
    google.consent_error = "access_denied"
    resp = await sign_in(web)
    assert resp.status == 302
    assert resp.headers["Location"] == "/#google-error=access_denied"
    assert "chatterd_token" not in resp.cookies
    assert cookie(resp, FLOW_COOKIE).value == ""
    assert google.token_requests == 0


async def test_forged_provider_error_needs_the_state_too(web):
    await start(web)
    resp = await web.get(CALLBACK, params={"error": "access_denied", "state": "guess"}, allow_redirects=False)
    assert resp.status == 400


async def test_odd_provider_error_codes_are_not_echoed(web):
    _, authorize = await start(web)
    state = authorize.query["state"]
    resp = await web.get(CALLBACK, params={"error": "<script>", "state": state}, allow_redirects=False)
    assert resp.headers["Location"] == "/#google-error=error"


# ---- the ID token -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"nonce": "not-this-sign-ins-nonce"}, id="nonce-mismatch"),
        pytest.param({"aud": "another-client.apps.googleusercontent.com"}, id="wrong-aud"),
        pytest.param({"iss": "https://evil.example"}, id="wrong-iss"),
        pytest.param({"lifetime": -3600}, id="expired"),
    ],
)
async def test_bad_id_token_is_refused(web, google, claims):
    google.web_claims = claims
    resp = await sign_in(web)
    assert resp.status == 401
    assert "ID token" in await error_message(resp)
    assert "chatterd_token" not in resp.cookies


async def test_id_token_without_nonce_is_refused(web):
    _, authorize = await start(web)
    back = await consent(web, authorize.without_query_params("nonce"))
    resp = await callback(web, back)
    assert resp.status == 401
    assert "nonce" in await error_message(resp)


async def test_other_client_ids_token_is_refused(make_client, web_settings, google):
    # Both IDs are accepted by /adduser/, but the web flow's ID token must be for the web client.
    client = await make_client(**web_settings, google_client_ids=(CLIENT_ID, "mobile.apps.googleusercontent.com"))
    google.web_claims = {"aud": "mobile.apps.googleusercontent.com"}
    resp = await sign_in(client)
    assert resp.status == 401


async def test_hosted_domain_applies(make_client, web_settings, google):
    client = await make_client(**web_settings, google_hosted_domain="example.com")
    assert (await sign_in(client)).status == 401
    google.web_claims = {"hd": "example.com"}
    assert (await sign_in(client)).status == 302


# ---- next: never an open redirect -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "/\t/evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/ok but space",
        "/" + "a" * 600,
        "",
    ],
)
def test_unsafe_next_becomes_the_page(target):
    assert safe_next(target) == "/"


@pytest.mark.parametrize("target", ["/", "/docs", "/getchatts/?limit=5", "/#top", "/a/b%2F%2Fc"])
def test_same_site_next_is_kept(target):
    assert safe_next(target) == target


@pytest.mark.parametrize("target", ["https://evil.example", "//evil.example"])
async def test_open_redirect_attempts_are_ignored(web, target):
    resp = await sign_in(web, next=target)
    assert resp.status == 302
    assert resp.headers["Location"] == "/"


async def test_next_path_is_where_sign_in_returns(web):
    resp = await sign_in(web, next="/getchatts/?limit=5")
    assert resp.headers["Location"] == "/getchatts/?limit=5"


# ---- dependencies down, flow off ---------------------------------------------------------------------------------


async def test_discovery_document_down_is_503(web, google):
    google.discovery_failing = True
    resp = await web.get(LOGIN, allow_redirects=False)
    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) >= 1
    assert "unavailable" in await error_message(resp)
    assert FLOW_COOKIE not in resp.cookies


async def test_token_endpoint_down_is_503(web, google):
    _, authorize = await start(web)
    back = await consent(web, authorize)
    google.token_failing = True
    resp = await callback(web, back)
    assert resp.status == 503
    assert "Retry-After" in resp.headers


async def test_discovery_document_is_fetched_once_for_many_sign_ins(web, google):
    results = await asyncio.gather(*(web.get(LOGIN, allow_redirects=False) for _ in range(8)))
    assert [r.status for r in results] == [302] * 8
    await sign_in(web)
    assert google.discovery_fetches == 1


async def test_flow_is_off_without_a_client_secret(client):
    for path in (LOGIN, CALLBACK):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 404
        assert "GOOGLE_CLIENT_SECRET" in await error_message(resp)
    assert (await (await client.get("/config.json")).json())["googleLoginUrl"] is None


async def test_page_config_offers_the_link_when_on(web):
    assert (await (await web.get("/config.json")).json())["googleLoginUrl"] == LOGIN


async def test_callback_is_rate_limited(make_client, web_settings):
    client = await make_client(**web_settings, adduser_max_per_address=1)
    assert (await sign_in(client)).status == 302
    resp = await sign_in(client)
    assert resp.status == 429 and "Retry-After" in resp.headers


async def test_secrets_codes_and_tokens_are_never_logged(web, google, caplog):
    with caplog.at_level(logging.DEBUG):
        _, authorize = await start(web)
        back = await consent(web, authorize)
        resp = await callback(web, back)
        google.token_failing = True
        await sign_in(web)
    token = cookie(resp, "chatterd_token").value
    for secret in (SECRET, back.query["code"], token, authorize.query["nonce"]):
        assert secret not in caplog.text


# ---- settings and the verifier's nonce ---------------------------------------------------------------------------


def test_settings_mask_the_client_secret_and_pick_the_web_client(tmp_path):
    env = {
        "SECRET_KEY": "k" * 40,
        "CHATTERD_VAR_DIR": str(tmp_path),
        "GOOGLE_CLIENT_IDS": "web.apps,mobile.apps",
        "GOOGLE_CLIENT_SECRET": "hush-hush",
        "GOOGLE_DISCOVERY_URL": "http://127.0.0.1:9/.well-known/openid-configuration",
        "PUBLIC_URL": "https://chat.example.com",
    }
    settings = Settings.from_env(env)
    assert "hush-hush" not in repr(settings)
    assert settings.google_client_secret == "hush-hush"
    assert settings.web_client_id == "web.apps"
    assert settings.public_url == "https://chat.example.com"
    assert settings.google_discovery_url.startswith("http://127.0.0.1:9/")
    assert Settings.from_env({**env, "GOOGLE_WEB_CLIENT_ID": "mobile.apps"}).web_client_id == "mobile.apps"
    defaults = Settings.from_env({"SECRET_KEY": "k" * 40, "CHATTERD_VAR_DIR": str(tmp_path)})
    assert defaults.google_client_secret is None
    assert defaults.google_discovery_url == "https://accounts.google.com/.well-known/openid-configuration"


@pytest.mark.parametrize(
    "overrides",
    [
        {"GOOGLE_WEB_CLIENT_ID": "not-one-of-them"},
        {"GOOGLE_CLIENT_IDS": ""},
        {"GOOGLE_DISCOVERY_URL": "ftp://example.com/x"},
        {"PUBLIC_URL": "chat.example.com"},
        {"PUBLIC_URL": "https://chat.example.com/?a=b"},
    ],
)
def test_settings_refuse_unusable_web_sign_in_values(tmp_path, overrides):
    env = {
        "SECRET_KEY": "k" * 40,
        "CHATTERD_VAR_DIR": str(tmp_path),
        "GOOGLE_CLIENT_IDS": "web.apps",
        "GOOGLE_CLIENT_SECRET": "hush-hush",
    }
    with pytest.raises(ConfigError):
        Settings.from_env({**env, **overrides})


async def test_verifier_returns_the_nonce(google, google_certs_url):
    async with aiohttp.ClientSession() as session:
        certificates = GoogleCertificates(session, google_certs_url)

        async def verify(**claims: Any) -> Any:
            return await verify_id_token(
                google.id_token(client_id=CLIENT_ID, **claims), certificates, audiences=[CLIENT_ID]
            )

        with_nonce, without, odd = await verify(nonce="n-123"), await verify(), await verify(nonce=42)
    assert with_nonce.nonce == "n-123"
    assert without.nonce is None
    assert odd.nonce is None  # not a string: ignored, not refused, so /adduser/ accepts what it always did


async def test_adduser_still_accepts_tokens_with_any_nonce(client, google):
    for nonce in ("abc", 42, None):
        extra = {} if nonce is None else {"nonce": nonce}
        token = google.id_token(client_id=CLIENT_ID, **extra)
        resp = await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})
        assert resp.status == 200, await resp.text()


def test_simple_cookie_parses_our_flow_cookie():
    # The flow cookie is a JWT: only characters a cookie value may carry unquoted.
    value = encode_flow(Flow("s" * 43, "n" * 43, "v" * 64, "/a?b=c"), "k" * 40)
    parsed = SimpleCookie()
    parsed.load(f"{FLOW_COOKIE}={value}")
    assert parsed[FLOW_COOKIE].value == value


async def test_a_banned_users_web_sign_in_is_refused(web, google):
    assert (await sign_in(web)).status == 302
    async with web.app[db_key].cursor() as cur:
        await cur.execute("UPDATE users SET banned_until = now() + interval '1 day'")
        await cur.execute("SELECT count(*) FROM sessions WHERE ended_at IS NULL")
        (live,) = await cur.fetchone()
    resp = await sign_in(web)
    assert resp.status == 403
    assert (await resp.json())["error"] == "banned"
    async with web.app[db_key].cursor() as cur:
        await cur.execute("SELECT count(*) FROM sessions WHERE ended_at IS NULL")
        assert await cur.fetchone() == (live,)  # no session opened for it
