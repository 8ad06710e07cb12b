"""The login cookie: `__Host-` prefixed over HTTPS, the bare name for plain-HTTP development, never taken twice."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest

from auth.cookies import COOKIE_NAME, HOST_COOKIE_NAME
from tests.support.common import bearer

PASSWORD = "correct horse battery"


async def sign_in(client, username):
    assert (await client.post("/register", json={"username": username, "password": PASSWORD})).status == 201
    resp = await client.post("/login", json={"username": username, "password": PASSWORD})
    assert resp.status == 200
    client.session.cookie_jar.clear()  # the tests send cookies by hand, exactly as written
    return resp


async def whoami(client, **headers):
    resp = await client.get("/get-user", headers=headers)
    body = await resp.json()
    return resp.status, body.get("user", {}).get("username") or body["message"]


@pytest.mark.parametrize(("secure", "name"), [(True, HOST_COOKIE_NAME), (False, COOKIE_NAME)])
async def test_the_login_cookie_is_host_prefixed_when_secure(make_client, secure, name):
    client = await make_client(cookie_secure=secure)
    resp = await sign_in(client, "ann")
    (header,) = resp.headers.getall("Set-Cookie")
    morsel = SimpleCookie(header)[name]
    assert morsel.value == (await resp.json())["token"]
    # what browsers demand of a __Host- cookie: Secure, Path=/, no Domain
    assert morsel["path"] == "/" and not morsel["domain"]
    assert bool(morsel["secure"]) is secure
    assert (await whoami(client, Cookie=f"{name}={morsel.value}")) == (200, "ann")


async def test_a_bare_named_cookie_is_not_ours_over_https(make_client):
    """On a Secure server a `chatterd_token` cookie can have been planted by a sibling subdomain: it is ignored."""
    client = await make_client(cookie_secure=True)
    token = (await (await sign_in(client, "ann")).json())["token"]
    assert (await whoami(client, Cookie=f"{COOKIE_NAME}={token}"))[0] == 401
    # beside the real one it changes nothing
    mallory = (await (await sign_in(client, "mallory")).json())["token"]
    assert await whoami(client, Cookie=f"{COOKIE_NAME}={mallory}; {HOST_COOKIE_NAME}={token}") == (200, "ann")


@pytest.mark.parametrize("secure", [True, False])
async def test_two_login_cookies_are_refused_whichever_comes_last(make_client, secure):
    client = await make_client(cookie_secure=secure)
    name = HOST_COOKIE_NAME if secure else COOKIE_NAME
    ann = (await (await sign_in(client, "ann")).json())["token"]
    mallory = (await (await sign_in(client, "mallory")).json())["token"]
    for cookie in (f"{name}={ann}; {name}={mallory}", f"{name}={mallory}; {name}={ann}"):
        status, message = await whoami(client, Cookie=cookie)
        assert status == 401 and "twice" in message
    # the same in two Cookie headers, as a proxy may split them
    resp = await client.get("/get-user", headers=[("Cookie", f"{name}={ann}"), ("Cookie", f"{name}={mallory}")])
    assert resp.status == 401
    # and no credential in the body is taken instead
    resp = await client.post(
        "/postauth/",
        json={"chatterID": ann, "message": "m"},
        headers={"Cookie": f"{name}={ann}; {name}={ann}", "Origin": str(client.make_url("")).rstrip("/")},
    )
    assert resp.status == 401
    # a header credential comes first, as ever
    assert await whoami(client, Cookie=f"{name}={ann}; {name}={mallory}", **bearer(mallory)) == (200, "mallory")
