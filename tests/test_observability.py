"""Request ids (echoed when sane, else made; on errors too), JSON log lines carrying them, a redacted access log."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from core.observability import (
    ACCESS_LOG_FORMAT,
    REQUEST_ID_HEADER,
    AccessLogRedactor,
    JsonFormatter,
    RequestIdFilter,
    configure_logconfig,
    redact_request_line,
)
from web import create_app

GENERATED = re.compile(r"[0-9a-f]{32}")


async def test_sane_request_id_is_echoed(client):
    resp = await client.get("/healthz", headers={REQUEST_ID_HEADER: "abc-123_X.y"})
    assert resp.headers[REQUEST_ID_HEADER] == "abc-123_X.y"


async def test_request_id_is_made_when_missing(client):
    first = (await client.get("/healthz")).headers[REQUEST_ID_HEADER]
    second = (await client.get("/healthz")).headers[REQUEST_ID_HEADER]
    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second)
    assert first != second


@pytest.mark.parametrize("bad", ["x" * 65, "has space", "semi;colon", "new\tline", "ünicode", "a/b"])
async def test_insane_request_id_is_replaced(client, bad):
    resp = await client.get("/healthz", headers={REQUEST_ID_HEADER: bad})
    assert GENERATED.fullmatch(resp.headers[REQUEST_ID_HEADER])


async def test_request_id_is_on_error_responses(client):
    resp = await client.get("/no/such/path", headers={REQUEST_ID_HEADER: "err-1"})
    assert resp.status == 404
    assert resp.headers[REQUEST_ID_HEADER] == "err-1"
    resp = await client.post("/postchatt/", data=b"{", headers={REQUEST_ID_HEADER: "err-2"})
    assert resp.status == 400
    assert resp.headers[REQUEST_ID_HEADER] == "err-2"
    resp = await client.delete("/getchatts/", headers={REQUEST_ID_HEADER: "err-3"})
    assert resp.status == 405
    assert resp.headers[REQUEST_ID_HEADER] == "err-3"


@contextmanager
def json_capture(*names: str) -> Iterator[io.StringIO]:
    """Capture the named loggers as JSON lines, the way gunicorn.conf.py configures it for LOG_FORMAT=json."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    saved = []
    for name in names:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        for logger, level in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_app_log_lines_carry_the_request_id(aiohttp_client, settings):
    app = await create_app(settings)
    app_logger = logging.getLogger("chatterd.test")

    async def noisy(request: web.Request) -> web.Response:
        app_logger.warning("something to say", extra={"detail": 42})
        return web.json_response({})

    app.router.add_get("/_noisy", noisy)
    client = await aiohttp_client(app)
    with json_capture("chatterd.test") as stream:
        resp = await client.get("/_noisy", headers={REQUEST_ID_HEADER: "req-42"})
        assert resp.status == 200
    (line,) = json_lines(stream)
    assert line["request_id"] == "req-42"
    assert line["message"] == "something to say"
    assert line["level"] == "WARNING" and line["logger"] == "chatterd.test" and line["detail"] == 42


async def test_error_log_lines_carry_the_request_id(aiohttp_client, settings):
    app = await create_app(settings)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("boom")

    app.router.add_get("/_broken", broken)
    client = await aiohttp_client(app)
    with json_capture("middlewares") as stream:
        resp = await client.get("/_broken", headers={REQUEST_ID_HEADER: "req-500"})
    assert resp.status == 500
    assert resp.headers[REQUEST_ID_HEADER] == "req-500"
    (line,) = json_lines(stream)
    assert line["request_id"] == "req-500"
    assert "RuntimeError: boom" in line["exc_info"]


async def test_json_access_line_has_request_id_and_no_secrets(aiohttp_client, settings):
    server = TestServer(await create_app(settings))
    await server.start_server(access_log_format=ACCESS_LOG_FORMAT)  # the format gunicorn.conf.py sets
    client = await aiohttp_client(server)
    with json_capture("aiohttp.access") as stream:
        resp = await client.get(
            "/getchatts/?limit=5&token=s3cr3t-token&chatterID=c0ffee",
            headers={REQUEST_ID_HEADER: "acc-1", "Authorization": "Bearer very-secret-jwt"},
        )
        assert resp.status == 200
        await client.close()  # the access line is written once the response is sent
    lines = [line for line in json_lines(stream) if line.get("request_id") == "acc-1"]
    assert lines, stream.getvalue()
    (line,) = lines
    assert line["status"] == 200
    assert line["request"].startswith("GET /getchatts/?limit=5&token=REDACTED&chatterID=REDACTED HTTP/1.")
    raw = stream.getvalue()
    for secret in ("s3cr3t-token", "c0ffee", "very-secret-jwt"):
        assert secret not in raw


def test_redact_request_line_keeps_paging_parameters():
    assert redact_request_line('1.2.3.4 "GET /getchatts/?after=abc&limit=5 HTTP/1.1" 200') == (
        '1.2.3.4 "GET /getchatts/?after=abc&limit=5 HTTP/1.1" 200'
    )
    assert (
        redact_request_line("POST /x?token=abc&token=def HTTP/1.1") == "POST /x?token=REDACTED&token=REDACTED HTTP/1.1"
    )
    assert redact_request_line("GET /plain HTTP/1.1") == "GET /plain HTTP/1.1"


def test_access_redactor_rewrites_preformatted_messages():
    record = logging.LogRecord("aiohttp.access", logging.INFO, "", 0, '"GET /a?jwt=xyz HTTP/1.1" 200', None, None)
    record.first_request_line = "GET /a?jwt=xyz HTTP/1.1"
    assert AccessLogRedactor().filter(record)
    assert "xyz" not in record.getMessage() and "xyz" not in record.first_request_line


def test_logconfig_json_uses_the_json_formatter_and_filters():
    config = {
        "version": 1,
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "formatters": {"plain": {"format": "%(message)s"}, "access": {"format": "%(message)s"}},
        "loggers": {"gunicorn.access": {"handlers": ["console"]}},
    }
    configure_logconfig(config, json_lines=True)
    assert config["formatters"] == {"plain": {"()": JsonFormatter}, "access": {"()": JsonFormatter}}
    assert config["handlers"]["console"]["filters"] == ["request_id"]
    assert config["loggers"]["gunicorn.access"]["filters"] == ["redact_access"]
    assert config["loggers"]["aiohttp.access"]["filters"] == ["redact_access"]
    assert config["loggers"]["aiohttp.server"]["filters"] == ["malformed_requests"]
    assert config["loggers"]["gunicorn.error"]["filters"] == ["malformed_requests"]
