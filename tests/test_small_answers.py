"""The cheap paths of small answers keep every feature: a flooded /adduser/'s 429, errors answered without reference
cycles, the access line and the metrics of each."""

from __future__ import annotations

import gc
import io
import logging
import re
import types
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from core.access_log import BufferedStreamHandler
from core.errors import ApiError
from core.headers import SERVER
from core.keys import refused_addresses_key
from core.observability import (
    ACCESS_LOG_FORMAT,
    REQUEST_ID_HEADER,
    AccessLogRedactor,
    RequestIdFilter,
    new_request_id,
)
from tests.support.common import CLIENT_ID
from web import create_app

GENERATED = re.compile(r"[0-9a-f]{32}")
FLOOD_MESSAGE = "Too many adduser attempts from your address; try again later."


@contextmanager
def plain_access_log() -> Iterator[io.StringIO]:
    """The access log as gunicorn.conf.py sets it up by default: plain lines into a BufferedStreamHandler."""
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("aiohttp.access")
    saved = logger.handlers, logger.filters, logger.propagate, logger.level
    logger.handlers, logger.filters, logger.propagate = [handler], [AccessLogRedactor()], False
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        handler.flush()
        logger.handlers, logger.filters, logger.propagate = saved[0], saved[1], saved[2]
        logger.setLevel(saved[3])


async def served(aiohttp_client, settings):
    server = TestServer(await create_app(settings))
    await server.start_server(access_log_format=ACCESS_LOG_FORMAT)  # the format gunicorn.conf.py sets
    return await aiohttp_client(server)


def sample(client, name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_flooded_adduser_429_carries_everything(aiohttp_client, settings, google):
    """Refused before its body is read, the 429 still has the contract's JSON, Retry-After, the request id and the
    security headers; it is logged and counted exactly."""
    with plain_access_log() as stream:
        client = await served(aiohttp_client, settings)
        client.app[refused_addresses_key].refuse("127.0.0.1", 30)
        requests_before = sample(client, "chatterd_http_requests_total", method="POST", route="/adduser", status="429")
        throttles_before = sample(client, "chatterd_throttles_total", kind="adduser")
        body = {"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID)}
        for n in range(5):
            resp = await client.post("/adduser/", json=body, headers={REQUEST_ID_HEADER: f"flood-{n}"})
            assert resp.status == 429
            assert await resp.json() == {"message": FLOOD_MESSAGE}
            assert resp.content_type == "application/json"
            assert 0 < int(resp.headers["Retry-After"]) <= 30
            assert resp.headers[REQUEST_ID_HEADER] == f"flood-{n}"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["Server"] == SERVER
        unnamed = await client.post("/adduser/", json=body)
        assert unnamed.status == 429 and len(unnamed.headers[REQUEST_ID_HEADER]) == 32
        await client.close()  # the access lines are written once the answers are sent
    lines = stream.getvalue().splitlines()
    for n in range(5):
        (line,) = [line for line in lines if line.endswith(f"rid=flood-{n}")]
        assert '"POST /adduser/ HTTP/1.1" 429 ' in line
    assert sample(client, "chatterd_http_requests_total", method="POST", route="/adduser", status="429") == (
        requests_before + 6
    )
    assert sample(client, "chatterd_throttles_total", kind="adduser") == throttles_before + 6


async def test_errors_leave_no_reference_cycles(aiohttp_client, settings):
    """An error answered by the middleware leaves no request, error, frame or traceback for the garbage collector
    (their reference cycles made an error answer cost a worker twice what a small one does). aiohttp's own 404 route
    refers to itself, a few small objects, which is not looked at."""
    app = await create_app(settings)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("boom")

    app.router.add_get("/_broken", broken)
    client = await aiohttp_client(app)
    logging.getLogger("middlewares").disabled = True  # the 500's traceback is logged; not what this test is about
    try:
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for path, status in [("/no/such/path", 404), ("/_broken", 500), ("/get-user", 401)] * 10:
                assert (await client.get(path)).status == status
            assert (await client.delete("/getchatts/")).status == 405
            assert (await client.post("/postauth/", data=b"{")).status in {400, 401}
            gc.collect()
            kept = (web.BaseRequest, ApiError, types.FrameType, types.TracebackType)
            left = [obj for obj in gc.garbage if isinstance(obj, kept)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    finally:
        logging.getLogger("middlewares").disabled = False
    assert left == []


async def test_an_error_answer_is_the_contracts_json_with_its_headers(client):
    resp = await client.delete("/getchatts/", headers={REQUEST_ID_HEADER: "e-405"})
    assert resp.status == 405
    assert orjson.loads(await resp.read()) == {"message": "Method not allowed."}
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "GET" in resp.headers["Allow"]
    assert resp.headers[REQUEST_ID_HEADER] == "e-405"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    unauthorized = await client.get("/get-user")
    assert unauthorized.status == 401 and unauthorized.headers["WWW-Authenticate"] == "Bearer"


def test_made_request_ids_are_fresh_hex_across_batches():
    """Ids come from a pool of random bytes read a batch at a time: each is 32 hex digits and none repeats, across
    several batches."""
    ids = [new_request_id() for _ in range(3 * 256 + 7)]
    assert all(GENERATED.fullmatch(request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)
