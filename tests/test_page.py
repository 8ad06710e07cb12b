"""The web page's server side: the HTML and its assets, /config.json, and QR codes for TOTP set-up."""

from __future__ import annotations

import re

import pytest

from tests.support.common import PROJECT_DIR

URI = "otpauth://totp/chatterd:alice?secret=JBSWY3DPEHPK3PXP&issuer=chatterd"


async def test_index_and_its_assets(client):
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    html = await resp.text()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert {"/static/app.js", "/static/style.css"} <= set(assets)
    for asset in assets:
        assert (await client.get(asset)).status == 200, asset


async def test_static_does_not_leave_its_folder(client):
    for path in ["/static/../web.py", "/static/%2e%2e/web.py", "/static/..%2fsettings.py"]:
        resp = await client.get(path)
        assert resp.status in {403, 404}, path


async def test_config_without_google(make_client):
    client = await make_client(google_client_ids=())
    assert await (await client.get("/config.json")).json() == {"googleClientIds": [], "googleLoginUrl": None}


async def test_config_with_google(make_client):
    client = await make_client(google_client_ids=("a.apps.googleusercontent.com", "b.apps.googleusercontent.com"))
    body = await (await client.get("/config.json")).json()
    assert body == {
        "googleClientIds": ["a.apps.googleusercontent.com", "b.apps.googleusercontent.com"],
        "googleLoginUrl": None,
    }


async def signed_in(client) -> dict[str, str]:
    """The Authorization header of a fresh password account: /totp/qr draws only for a signed-in caller."""
    credentials = {"username": "qr-user", "password": "correct horse battery"}
    assert (await client.post("/register", json=credentials)).status == 201
    resp = await client.post("/login", json=credentials)
    client.session.cookie_jar.clear()
    return {"Authorization": "Bearer " + (await resp.json())["token"]}


async def test_totp_qr_is_an_svg(client):
    resp = await client.post("/totp/qr", json={"uri": URI}, headers=await signed_in(client))
    assert resp.status == 200
    assert resp.content_type == "image/svg+xml"
    assert resp.headers["Cache-Control"] == "no-store"
    svg = await resp.text()
    assert "<svg" in svg and "<path" in svg
    assert "JBSWY3DPEHPK3PXP" not in svg  # the secret is only in the pattern


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"uri": "https://example.com/not-otpauth"}, 422),
        ({"uri": "otpauth://" + "x" * 3000}, 422),
        ({}, 422),
        ({"uri": 5}, 422),
    ],
)
async def test_totp_qr_refuses_other_input(client, body, status):
    resp = await client.post("/totp/qr", json=body, headers=await signed_in(client))
    assert resp.status == status
    assert set(await resp.json()) == {"message"}


async def test_totp_qr_is_not_a_get(client):
    resp = await client.get("/totp/qr?uri=" + URI)
    assert resp.status == 405


def test_each_message_the_page_rewords_is_one_the_server_says():
    """static/messages.js puts the API's messages in plain words, keyed by their text: each key must still be said."""
    script = (PROJECT_DIR / "static" / "messages.js").read_text()
    table = script.split("const PLAIN = {", 1)[1].split("\n};", 1)[0]
    keys = re.findall(r'^  "((?:[^"\\]|\\.)*)":', table, re.MULTILINE)
    assert len(keys) >= 10
    server = "\n".join(
        path.read_text() for folder in ("auth", "core", "views") for path in (PROJECT_DIR / folder).glob("*.py")
    )
    server += (PROJECT_DIR / "middlewares.py").read_text()
    assert [key for key in keys if key not in server] == []
