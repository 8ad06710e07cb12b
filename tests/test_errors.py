"""The error contract: every error is JSON {"message"}, no input gives a 500, Postgres down gives a 503."""

from __future__ import annotations

import io
import time

import pytest

HOSTILE_BODIES = [
    b"",
    b"{",
    b"not json",
    b"\xff\xfe\xfd",  # invalid UTF-8
    b'{"username": "\\ud800", "message": "lone surrogate"}',
    b'{"username": "a", "message": "\\udfff"}',
    b"[" * 5000 + b"]" * 5000,  # deeply nested
    b'{"username": ' + b"[" * 3000 + b"]" * 3000 + b', "message": "x"}',
    b"NaN",
    b"[1e999]",
    b'{"username": 1' + b"0" * 5000 + b', "message": "x"}',  # huge number
    b"[]",
    b'"a string"',
    b"42",
    b"null",
    b'{"username": "a\\u0000b", "message": "nul"}',
    b'{"username": {"nested": true}, "message": "x"}',
    b'{"username": "a", "message": "' + b"x" * 100_000 + b'"}',
]


def assert_json_error(resp_status: int, body: object) -> None:
    assert 400 <= resp_status < 500, resp_status
    assert isinstance(body, dict) and set(body) == {"message"} and isinstance(body["message"], str)


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
async def test_hostile_bodies_never_500(client, body):
    resp = await client.post("/postchatt/", data=body, headers={"Content-Type": "application/json"})
    assert resp.content_type == "application/json"
    assert_json_error(resp.status, await resp.json())
    assert resp.status in {400, 422}


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{", 400), (b"\xff", 400), (b"[]", 422), (b'"x"', 422), (b'{"username": "a", "message": "\\u0000"}', 422)],
)
async def test_400_for_bad_json_422_for_bad_shape(client, body, status):
    resp = await client.post("/postchatt/", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == status


MULTIPART_IN_AN_UNKNOWN_CHARSET = (
    b'--b\r\nContent-Disposition: form-data; name="username"\r\n'
    b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nann\r\n--b--\r\n"
)


@pytest.mark.parametrize("path", ["/register", "/login"])
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded; charset=no-such-charset", b"username=a&password=b"),
        ("multipart/form-data; boundary=b", MULTIPART_IN_AN_UNKNOWN_CHARSET),
    ],
    ids=["urlencoded", "multipart"],
)
async def test_form_in_an_unknown_charset_is_400(client, path, content_type, body):
    resp = await client.post(path, data=body, headers={"Content-Type": content_type})
    assert resp.status == 400
    assert_json_error(resp.status, await resp.json())


async def test_unknown_path_is_json_404(client):
    resp = await client.get("/no/such/path")
    assert resp.status == 404
    assert_json_error(resp.status, await resp.json())


async def test_wrong_method_is_json_405_with_allow(client):
    resp = await client.delete("/getchatts/")
    assert resp.status == 405
    assert_json_error(resp.status, await resp.json())
    assert "GET" in resp.headers["Allow"]


async def test_body_over_one_mebibyte_is_413(client):
    body = io.BytesIO(b'{"m": "' + b"x" * (1024 * 1024 + 10) + b'"}')
    resp = await client.post("/postchatt/", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert_json_error(resp.status, await resp.json())


async def test_odd_query_strings_never_500(client):
    for query in ["limit=%00", "after=%ff%fe", "limit=1&limit=2", "after=" + "a" * 5000, "limit=%F0%9F%98%80"]:
        resp = await client.get("/getchatts/?" + query)
        assert resp.status in {200, 422}, query
        assert resp.content_type == "application/json"


async def test_postgres_down_gives_503_then_recovers(proxied):
    client, proxy = proxied
    assert (await client.get("/getchatts/")).status == 200

    await proxy.cut()
    for _ in range(3):
        resp = await client.get("/getchatts/")
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) >= 1
        assert_json_error(400, await resp.json())  # shape only
        resp = await client.post("/postchatt/", json={"username": "a", "message": "b"})
        assert resp.status == 503

    await proxy.start()
    resp = await client.get("/getchatts/")
    assert resp.status == 200
    assert (await client.post("/postchatt/", json={"username": "a", "message": "back"})).status == 200


async def test_hung_postgres_gives_503_within_the_timeouts(proxied):
    client, proxy = proxied
    assert (await client.get("/getchatts/")).status == 200
    await proxy.cut()
    proxy.black_hole = True
    await proxy.start()
    proxy.black_hole = True
    started = time.monotonic()
    resp = await client.get("/getchatts/")
    elapsed = time.monotonic() - started
    assert resp.status == 503
    # connect (1 s) and acquire (1 s) timeouts bound the wait; far below a hang
    assert elapsed < 5, elapsed
