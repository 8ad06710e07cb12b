"""Password accounts and JWTs: register, login, get-user, logout, roles, TOTP, throttling, CSRF."""

from __future__ import annotations

import asyncio
import time

import jwt
import pyotp
import pytest

import models
from auth.cookies import HOST_COOKIE_NAME
from core.keys import db_key, settings_key
from tests.support.cli import run_manage
from tests.support.common import CLIENT_ID, bearer, wait_for

PASSWORD = "correct horse battery"


async def register(client, username="ann", password=PASSWORD, **kwargs):
    return await client.post("/register", json={"username": username, "password": password}, **kwargs)


async def login(client, username="ann", password=PASSWORD, **extra):
    return await client.post("/login", json={"username": username, "password": password, **extra})


async def token_for(client, username="ann", password=PASSWORD, role=None):
    assert (await register(client, username, password)).status == 201
    if role:
        await models.set_role(client.app[db_key], username, role)
    resp = await login(client, username, password)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["token"]


async def me(client, token):
    return await client.get("/get-user", headers=bearer(token))


# ---- register -------------------------------------------------------------------------------------------------


async def test_register_json_and_form(client):
    resp = await register(client, "ann")
    assert resp.status == 201
    body = await resp.json()
    assert set(body) == {"id", "username"} and body["username"] == "ann" and isinstance(body["id"], int)
    resp = await client.post("/register", data={"username": "bob", "password": PASSWORD})
    assert resp.status == 201
    assert (await resp.json())["username"] == "bob"


@pytest.mark.parametrize("taken", ["ann", "ANN", "Ann"])
async def test_taken_username_is_409_whatever_the_case(client, taken):
    assert (await register(client, "ann")).status == 201
    resp = await register(client, taken)
    assert resp.status == 409
    assert "taken" in (await resp.json())["message"]


@pytest.mark.parametrize(
    ("username", "password", "needle"),
    [
        ("", PASSWORD, "username"),
        ("x" * 65, PASSWORD, "64"),
        ("ann", "short77", "8"),
        ("ann", "p" * 257, "256"),
        ("a\x00", PASSWORD, "NUL"),
        (None, PASSWORD, "username"),
        ("ann", 12345678, "password"),
    ],
)
async def test_register_limits_are_422(client, username, password, needle):
    resp = await client.post("/register", json={"username": username, "password": password})
    assert resp.status == 422
    assert needle in (await resp.json())["message"]


async def test_register_bad_bodies(client):
    assert (await client.post("/register", data=b"{", headers={"Content-Type": "application/json"})).status == 400
    assert (await client.post("/register", json=["ann", PASSWORD])).status == 422


async def test_password_at_the_limits_and_not_truncated(client):
    stem = ("quiet violet lantern, " * 12)[:255]  # strong enough for the password policy
    long_password = stem + "a"
    assert (await register(client, "ann", long_password)).status == 201
    assert (await login(client, "ann", stem + "b")).status == 401
    assert (await login(client, "ann", long_password)).status == 200


# ---- login ----------------------------------------------------------------------------------------------------


async def test_login_returns_a_jwt_and_a_cookie(client):
    await register(client)
    resp = await login(client)
    assert resp.status == 200
    body = await resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == client.app[settings_key].jwt_lifetime == 900
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{HOST_COOKIE_NAME}={body['token']};")
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"]:
        assert attribute in cookie
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert {"exp", "iat", "iss", "aud", "sub", "jti"} <= set(claims)


async def test_login_with_form_data(client):
    await register(client)
    resp = await client.post("/login", data={"username": "ann", "password": PASSWORD})
    assert resp.status == 200
    assert "token" in await resp.json()


async def test_wrong_password_and_unknown_user_get_the_same_401(client):
    await register(client)
    wrong = await login(client, "ann", "wrong password")
    unknown = await login(client, "nobody", PASSWORD)
    assert wrong.status == unknown.status == 401
    assert wrong.headers["WWW-Authenticate"] == "Bearer"
    assert (await wrong.json()) == (await unknown.json())


async def test_google_users_cannot_log_in_with_a_password(client, google):
    token = google.id_token(client_id=CLIENT_ID, name="ann")
    assert (await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})).status == 200
    assert (await login(client, "ann", PASSWORD)).status == 401


async def test_login_rehashes_when_the_parameters_change(make_client, client):
    await register(client)
    stronger = await make_client(password_time_cost=2)
    assert (await login(stronger)).status == 200
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT password_hash FROM users WHERE username = 'ann'")
        (stored,) = await cur.fetchone()
    assert ",t=2," in stored
    assert (await login(client)).status == 200


# ---- get-user, logout -----------------------------------------------------------------------------------------


async def test_get_user_with_a_jwt(client):
    token = await token_for(client)
    resp = await me(client, token)
    assert resp.status == 200
    body = await resp.json()
    assert body["user"]["username"] == "ann" and body["user"]["role"] == "user" and isinstance(body["user"]["id"], int)


async def test_get_user_with_a_jwt_costs_no_database_query(client):
    token = await token_for(client)
    assert (await me(client, token)).status == 200
    before = client.app[db_key].queries
    for _ in range(20):
        assert (await me(client, token)).status == 200
    assert client.app[db_key].queries == before


async def test_get_user_with_a_chatterid(client, google):
    token = google.id_token(client_id=CLIENT_ID, name="Gail")
    body = await (await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})).json()
    resp = await client.get("/get-user", headers={"Authorization": body["chatterID"]})
    assert resp.status == 200
    assert (await resp.json())["user"]["username"] == "Gail"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Bearer " + "0" * 64}])
async def test_get_user_without_valid_credentials_is_401(client, headers):
    resp = await client.get("/get-user", headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_expired_and_tampered_jwts_are_401(client):
    token = await token_for(client)
    header, _payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    tampered_payload = jwt.utils.base64url_encode(
        jwt.api_jws.json.dumps({**claims, "role": "admin"}, separators=(",", ":")).encode()
    ).decode()
    assert (await me(client, f"{header}.{tampered_payload}.{signature}")).status == 401
    expired = jwt.encode({**claims, "exp": int(time.time()) - 3600}, "wrong-key" * 8, algorithm="HS256")
    assert (await me(client, expired)).status == 401
    none_alg = jwt.encode(claims, None, algorithm="none")
    assert (await me(client, none_alg)).status == 401


async def test_logout_revokes_only_the_token_used(client):
    await register(client)
    first = (await (await login(client)).json())["token"]
    second = (await (await login(client)).json())["token"]
    resp = await client.post("/logout", headers=bearer(first))
    assert resp.status == 204
    assert (await me(client, first)).status == 401
    assert (await me(client, second)).status == 200
    assert (await client.post("/logout", headers=bearer(first))).status == 401


async def test_logout_everywhere(client, google):
    await register(client)
    first = (await (await login(client)).json())["token"]
    second = (await (await login(client)).json())["token"]
    assert (await client.post("/logout?everywhere=true", headers=bearer(first))).status == 204
    assert (await me(client, first)).status == 401
    assert (await me(client, second)).status == 401
    third = (await (await login(client)).json())["token"]
    assert (await me(client, third)).status == 200


async def test_logout_of_a_chatterid_ends_its_whole_sign_in(client, google):
    token = google.id_token(client_id=CLIENT_ID)
    body = await (await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})).json()
    other = await (await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})).json()
    chatter_id = body["chatterID"]
    assert (await client.get("/get-user", headers={"Authorization": chatter_id})).status == 200
    assert (await client.post("/logout", headers={"Authorization": chatter_id})).status == 204
    assert (await client.get("/get-user", headers={"Authorization": chatter_id})).status == 401
    resp = await client.post("/postauth/", json={"chatterID": chatter_id, "message": "after logout"})
    assert resp.status == 401
    # The JWT and the refresh token of the same sign-in belong to its session, which the logout ended.
    assert (await me(client, body["token"])).status == 401
    assert (await client.post("/token/refresh", json={"refresh_token": body["refresh_token"]})).status == 401
    # Another sign-in of the same user is another session.
    assert (await client.get("/get-user", headers={"Authorization": other["chatterID"]})).status == 200
    assert (await me(client, other["token"])).status == 200


async def test_logout_on_one_server_is_refused_on_another(client, make_client):
    # Two apps on one database and one secret: like two chatterd servers behind a load balancer.
    second = await make_client(secret_key=client.app[settings_key].secret_key)
    token = await token_for(client)
    assert (await me(second, token)).status == 200
    started = time.monotonic()
    assert (await client.post("/logout", headers=bearer(token))).status == 204

    async def refused():
        return (await me(second, token)).status == 401

    await wait_for(refused, timeout=1.0, what="the other server to refuse the token")
    assert time.monotonic() - started < 1.0


async def test_revocations_are_loaded_at_start(client, make_client):
    token = await token_for(client)
    assert (await client.post("/logout", headers=bearer(token))).status == 204
    later = await make_client(secret_key=client.app[settings_key].secret_key)
    assert (await me(later, token)).status == 401


# ---- cookies and CSRF -----------------------------------------------------------------------------------------


async def test_cookie_authenticates_reads_and_needs_same_origin_for_writes(client):
    token = await token_for(client)
    cookie = {"Cookie": f"{HOST_COOKIE_NAME}={token}"}
    assert (await client.get("/get-user", headers=cookie)).status == 200
    resp = await client.post("/logout", headers=cookie)
    assert resp.status == 403
    resp = await client.post("/logout", headers={**cookie, "Origin": "https://evil.example"})
    assert resp.status == 403
    origin = f"http://{client.server.host}:{client.server.port}"
    resp = await client.post("/logout", headers={**cookie, "Origin": origin})
    assert resp.status == 204
    assert f"{HOST_COOKIE_NAME}=" in resp.headers["Set-Cookie"]
    assert (await client.get("/get-user", headers=cookie)).status == 401


# ---- roles ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "status"), [(None, 403), ("moderator", 204), ("admin", 204)])
async def test_deleting_chatts_needs_moderator_or_admin(client, role, status):
    await client.post("/postchatt/", json={"username": "x", "message": "spam"})
    (chatt,) = await (await client.get("/getchatts/")).json()
    token = await token_for(client, role=role)
    resp = await client.delete(f"/chatts/{chatt[2]}", headers=bearer(token))
    assert resp.status == status
    remaining = await (await client.get("/getchatts/")).json()
    assert len(remaining) == (0 if status == 204 else 1)


async def test_deleting_chatts_anonymously_is_401_and_unknown_is_404(client):
    await client.post("/postchatt/", json={"username": "x", "message": "spam"})
    (chatt,) = await (await client.get("/getchatts/")).json()
    assert (await client.delete(f"/chatts/{chatt[2]}")).status == 401
    admin = await token_for(client, role="admin")
    assert (await client.delete("/chatts/00000000-0000-0000-0000-000000000000", headers=bearer(admin))).status == 404
    assert (await client.delete("/chatts/not-a-uuid", headers=bearer(admin))).status == 404


async def test_a_pasted_role_claim_grants_nothing(client):
    token = await token_for(client)
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode({**claims, "role": "admin"}, "guess" * 10, algorithm="HS256")
    await client.post("/postchatt/", json={"username": "x", "message": "m"})
    (chatt,) = await (await client.get("/getchatts/")).json()
    assert (await client.delete(f"/chatts/{chatt[2]}", headers=bearer(forged))).status == 401


async def test_manage_creates_users_and_sets_roles(client, settings):
    create = ("create-user", "boss", "--role", "admin", "--password-stdin")
    result = await asyncio.to_thread(run_manage, *create, settings=settings, stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert "created user 'boss'" in result.stdout
    resp = await login(client, "boss")
    token = (await resp.json())["token"]
    assert (await (await me(client, token)).json())["user"]["role"] == "admin"

    result = await asyncio.to_thread(run_manage, "set-role", "boss", "user", settings=settings)
    assert result.returncode == 0, result.stderr
    assert "set the role of 'boss' to user" in result.stdout
    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "SELECT detail->>'from', detail->>'to' FROM auth_events WHERE event = 'role_change' ORDER BY id"
        )
        assert await cur.fetchall() == [("user", "admin"), ("admin", "user")]

    async def demoted():
        return (await me(client, token)).status == 401

    await wait_for(demoted, timeout=2, what="the old admin token to be refused")
    token = (await (await login(client, "boss")).json())["token"]
    assert (await (await me(client, token)).json())["user"]["role"] == "user"
    missing = await asyncio.to_thread(run_manage, "set-role", "nobody", "admin", settings=settings)
    assert missing.returncode == 1


# ---- TOTP -----------------------------------------------------------------------------------------------------


async def test_totp_setup_enable_and_login(client):
    token = await token_for(client)
    resp = await client.post("/totp/setup", headers=bearer(token))
    assert resp.status == 200
    body = await resp.json()
    assert body["uri"].startswith("otpauth://totp/") and body["secret"] in body["uri"]
    totp = pyotp.TOTP(body["secret"])
    wrong = "000000" if totp.now() != "000000" else "111111"
    assert (await client.post("/totp/enable", json={"otp": wrong}, headers=bearer(token))).status == 422
    assert (await login(client)).status == 200  # not enabled yet

    assert (await client.post("/totp/enable", json={"otp": totp.now()}, headers=bearer(token))).status == 204

    resp = await login(client)
    assert resp.status == 401
    assert "one-time code" in (await resp.json())["message"]
    resp = await login(client, otp=wrong)
    assert resp.status == 401
    assert "one-time code" in (await resp.json())["message"]
    # The code used to enable is spent; the next step's code is within the accepted window.
    next_code = totp.at(time.time() + 30)
    assert (await login(client, otp=next_code)).status == 200
    assert (await login(client, otp=next_code)).status == 401  # each code once


async def test_totp_needs_sign_in(client):
    assert (await client.post("/totp/setup")).status == 401
    assert (await client.post("/totp/enable", json={"otp": "123456"})).status == 401


# ---- throttling -----------------------------------------------------------------------------------------------


async def test_failed_logins_lock_the_account_even_for_the_right_password(client):
    await register(client)
    for _ in range(5):
        assert (await login(client, password="wrong password")).status == 401
    resp = await login(client)
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert "message" in await resp.json()


async def test_failed_logins_are_counted_per_address(make_client):
    client = await make_client(login_max_failures=100, login_max_failures_per_address=3)
    for i in range(3):
        assert (await login(client, f"user{i}", "wrong password")).status == 401
    assert (await login(client, "someone-else", "wrong password")).status == 429


async def test_throttling_counts_across_servers(client, make_client):
    second = await make_client()
    await register(client)
    for app in [client, second, client, second, client]:
        assert (await login(app, password="wrong password")).status == 401
    assert (await login(second)).status == 429


async def test_x_forwarded_for_is_trusted_only_behind_a_trusted_proxy(make_client):
    direct = await make_client(login_max_failures=100, login_max_failures_per_address=2)
    for i in range(2):
        resp = await direct.post(
            "/login", json={"username": "u", "password": "wrong pass"}, headers={"X-Forwarded-For": f"10.0.0.{i}"}
        )
        assert resp.status == 401
    spoofed = await direct.post(
        "/login", json={"username": "u", "password": "x" * 8}, headers={"X-Forwarded-For": "10.9.9.9"}
    )
    assert spoofed.status == 429

    proxied = await make_client(login_max_failures=100, login_max_failures_per_address=2, trusted_proxies=1)
    for i in range(3):
        resp = await proxied.post(
            "/login", json={"username": "v", "password": "wrong pass"}, headers={"X-Forwarded-For": f"10.1.0.{i}"}
        )
        assert resp.status == 401


async def test_register_is_limited_per_address(make_client):
    client = await make_client(signup_max_per_address=2)
    assert (await register(client, "a1")).status == 201
    assert (await register(client, "a2")).status == 201
    resp = await register(client, "a3")
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0


async def test_adduser_is_limited_per_address(make_client, google):
    client = await make_client(adduser_max_per_address=2)
    statuses = []
    for _ in range(3):
        token = google.id_token(client_id=CLIENT_ID)
        statuses.append((await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})).status)
    assert statuses == [200, 200, 429]


async def test_a_refused_address_gets_its_429_before_its_body_is_read(make_client, google):
    client = await make_client(adduser_max_per_address=1)
    token = google.id_token(client_id=CLIENT_ID)
    assert (await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})).status == 200
    assert (await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})).status == 429
    # refused before any work: a body that is not even JSON is never looked at (else it would be a 400)
    resp = await client.post("/adduser/", data=b"not json", headers={"Content-Type": "application/json"})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0


async def test_adduser_limit_zero_counts_nothing(make_client, google):
    client = await make_client(adduser_max_per_address=0)
    for _ in range(4):
        token = google.id_token(client_id=CLIENT_ID)
        assert (await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})).status == 200
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT count(*) FROM throttle")
        assert await cur.fetchone() == (0,)
