"""One body reader for the auth middleware and the views: JSON whatever its label, forms where accepted, read once."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core.bodies import accepts_form, json_response, read_body
from core.keys import body_key, settings_key, user_key
from middlewares import reads_caller
from settings import Settings
from tests.support.common import CLIENT_ID, truncate_all
from web import create_app

PASSWORD = "correct horse battery"
# The labels older course apps put on JSON bodies, and none at all.
LABELS = ["application/x-www-form-urlencoded", "text/plain", None, "application/json; charset=utf-8"]


@reads_caller
async def _probe(request: web.Request) -> web.Response:
    """Who the middleware says the caller is, whether it had read the body already, and the body as the view reads."""
    read_before = body_key in request
    kept = request.get(body_key)
    body = await read_body(request)
    user = request[user_key]
    return json_response(
        {
            "user": None if user is None else user.username,
            "read_before_view": read_before,
            "same_object": kept is body,
            "fields": sorted(body),
        }
    )


@reads_caller
async def _form_probe(request: web.Request) -> web.Response:
    """The probe on a route that accepts forms."""
    return await _probe(request)


async def _anonymous_probe(request: web.Request) -> web.Response:
    """A view that does not act on its caller: whether the middleware had read its body, and who it says called."""
    read_before = body_key in request
    user = request[user_key]
    await read_body(request)
    return json_response({"user": None if user is None else user.username, "read_before_view": read_before})


@pytest.fixture
async def probed(aiohttp_client: Any, settings: Settings) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The real app, plus two routes that report what the middleware did: one JSON only, one accepting forms."""
    app = await create_app(replace(settings))
    app.router.add_post("/probe/json", _probe)
    app.router.add_post("/probe/form", accepts_form(_form_probe))
    app.router.add_post("/probe/anonymous", _anonymous_probe)
    client: TestClient[web.Request, web.Application] = await aiohttp_client(app)
    await truncate_all(app)
    yield client


async def chatter_id(client: TestClient[web.Request, web.Application], google: Any, name: str = "Ann Smith") -> str:
    token = google.id_token(client_id=CLIENT_ID, name=name)
    resp = await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": token})
    assert resp.status == 200
    value: str = (await resp.json())["chatterID"]
    return value


def labelled(label: str | None) -> dict[str, Any]:
    """Request options that send exactly this Content-Type, or none at all."""
    if label is None:
        return {"skip_auto_headers": ("Content-Type",)}
    return {"headers": {"Content-Type": label}}


@pytest.mark.parametrize("label", LABELS)
async def test_postauth_signs_in_a_chatterid_in_json_whatever_its_label(probed, google, label):
    cid = await chatter_id(probed, google)
    body = b'{"chatterID": "%s", "message": "labelled %s"}' % (cid.encode(), str(label).encode())
    resp = await probed.post("/postauth/", data=body, **labelled(label))
    assert resp.status == 200, await resp.text()
    rows = await (await probed.get("/getchatts/")).json()
    assert [row[:2] for row in rows] == [["Ann Smith", f"labelled {label}"]]


@pytest.mark.parametrize("route", ["/probe/json", "/probe/form"])
@pytest.mark.parametrize("label", LABELS)
async def test_the_middleware_reads_the_body_once_and_the_view_reuses_it(probed, google, route, label):
    cid = await chatter_id(probed, google)
    body = b'{"chatterID": "%s", "message": "m"}' % cid.encode()
    resp = await probed.post(route, data=body, **labelled(label))
    assert resp.status == 200
    assert await resp.json() == {
        "user": "Ann Smith",
        "read_before_view": True,
        "same_object": True,
        "fields": ["chatterID", "message"],
    }


async def test_form_data_signs_in_where_forms_are_accepted(probed, google):
    cid = await chatter_id(probed, google)
    urlencoded = await probed.post("/probe/form", data={"chatterID": cid, "message": "m"})
    multipart = aiohttp.FormData({"chatterID": cid, "message": "m"})
    multipart.add_field("ignored", b"file contents", filename="a.txt")  # a file part: closed and left out
    parts = await probed.post("/probe/form", data=multipart)
    for resp in (urlencoded, parts):
        assert resp.status == 200
        assert (await resp.json())["user"] == "Ann Smith"
    assert (await parts.json())["fields"] == ["chatterID", "message"]


async def test_form_data_where_it_is_not_accepted_signs_no_one_in(probed, google):
    cid = await chatter_id(probed, google)
    resp = await probed.post("/probe/json", data={"chatterID": cid, "message": "m"})
    assert resp.status == 400
    # the guard of a protected view answers before it would read the body
    assert (await probed.post("/postauth/", data={"chatterID": cid, "message": "m"})).status == 401


async def test_login_and_register_still_take_forms_of_both_kinds(probed):
    form = {"username": "ann", "password": PASSWORD}
    assert (await probed.post("/register", data=form)).status == 201
    assert (await probed.post("/login", data=form)).status == 200
    assert (await probed.post("/login", data=aiohttp.FormData(form, default_to_multipart=True))).status == 200
    # JSON labelled as a form is JSON there too
    labelled_json = b'{"username": "ann", "password": "%s"}' % PASSWORD.encode()
    resp = await probed.post("/login", data=labelled_json, **labelled("application/x-www-form-urlencoded"))
    assert resp.status == 200


@pytest.mark.parametrize("label", ["application/x-www-form-urlencoded", "text/plain", None])
async def test_a_body_over_the_limit_is_413_before_any_view(probed, label):
    resp = await probed.post(
        "/postauth/", data=io.BytesIO(b"x" * (probed.app[settings_key].max_body_size + 1)), **labelled(label)
    )
    assert resp.status == 413


async def test_a_body_that_is_not_json_leaves_the_caller_anonymous_and_the_view_says_400(probed):
    resp = await probed.post("/probe/json", data=b"chatterID=abc", **labelled("text/plain"))
    assert resp.status == 400
    assert (await probed.post("/postauth/", data=b"not json", **labelled(None))).status == 401


async def test_a_view_that_does_not_act_on_its_caller_gets_its_body_unread_and_no_body_credential(probed, google):
    cid = await chatter_id(probed, google)
    resp = await probed.post("/probe/anonymous", json={"chatterID": cid, "message": "m"})
    assert resp.status == 200
    assert await resp.json() == {"user": None, "read_before_view": False}
    # a header still signs such a request in (as it does the login cookie)
    token = (await (await probed.post("/adduser/", json=google_body(google, "Bob Jones"))).json())["token"]
    resp = await probed.post("/probe/anonymous", json={}, headers={"Authorization": f"Bearer {token}"})
    assert (await resp.json())["user"] == "Bob Jones"


def google_body(google: Any, name: str) -> dict[str, str]:
    return {"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID, name=name)}
