"""Findings of an outside attack, each pinned: QR codes, login CSRF, origins, HSTS, /docs, ids, headers and logs."""

from __future__ import annotations

import asyncio
import io
import logging
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pyotp
import pytest
import qrcode.main
from aiohttp.test_utils import TestServer

import models
from auth.cookies import HOST_COOKIE_NAME
from core.keys import db_key
from core.observability import ACCESS_LOG_FORMAT, AccessLogRedactor
from tests.support.launcher import Gunicorn, base_env
from tests.support.tls import self_signed_certificate
from web import create_app

PASSWORD = "correct horse battery"
URI = "otpauth://totp/chatterd:alice?secret=JBSWY3DPEHPK3PXP&issuer=chatterd"
EVIL = "https://evil.example"
ALLOWED = "https://app.example.com"


async def register(client, username="ann", password=PASSWORD):
    resp = await client.post("/register", json={"username": username, "password": password})
    assert resp.status == 201, await resp.text()


async def sign_in(client, username="ann", role=None) -> str:
    """A JWT for a fresh password account (with `role`, when given)."""
    await register(client, username)
    if role:
        await models.set_role(client.app[db_key], username, role)
    resp = await client.post("/login", json={"username": username, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    client.session.cookie_jar.clear()  # the Bearer header alone from here on
    token: str = (await resp.json())["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def own_origin(client, scheme: str = "http") -> str:
    return f"{scheme}://{client.server.host}:{client.server.port}"


async def raw_exchange(host: str, port: int, request: bytes) -> bytes:
    """Send bytes as they are (no client library to tidy them up) and read the answer until the server closes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


@contextmanager
def captured(name: str, level: int = logging.DEBUG) -> Iterator[list[logging.LogRecord]]:
    """The records the logger `name` lets through (after its filters), at `level` and up."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(name)
    handler, saved = Keep(level), logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


# ---- 6: QR codes only for signed-in callers, bounded, drawn off the event loop ---------------------------------


async def test_totp_qr_needs_sign_in(client):
    resp = await client.post("/totp/qr", json={"uri": URI})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "uri",
    [
        "otpauth://" + "€" * 1000,  # few characters, three bytes each: more than a QR code holds
        "otpauth://" + "é" * 600,  # under the character limit, over the byte limit
        "otpauth://" + "a" * 1100,  # over the character limit
    ],
)
async def test_totp_qr_bounds_characters_and_bytes(client, uri):
    token = await sign_in(client)
    resp = await client.post("/totp/qr", json={"uri": uri}, headers=bearer(token))
    assert resp.status == 422
    assert "'uri'" in (await resp.json())["message"]


async def test_totp_qr_at_the_limit_is_drawn(client):
    token = await sign_in(client)
    resp = await client.post("/totp/qr", json={"uri": "otpauth://" + "a" * 1014}, headers=bearer(token))
    assert resp.status == 200
    assert resp.content_type == "image/svg+xml"


async def test_totp_qr_is_drawn_off_the_event_loop(client, monkeypatch):
    token = await sign_in(client)
    threads: list[int] = []
    real = qrcode.main.QRCode.make_image

    def spy(self, *args, **kwargs):
        threads.append(threading.get_ident())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(qrcode.main.QRCode, "make_image", spy)
    resp = await client.post("/totp/qr", json={"uri": URI}, headers=bearer(token))
    assert resp.status == 200
    assert threads and threading.get_ident() not in threads  # the test's loop is the app's loop


# ---- 10: login CSRF ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Referer": EVIL + "/attack.html"},
        {"Origin": "null"},  # a sandboxed frame or a privacy-stripped origin: not ours
        {"Origin": EVIL, "Referer": "http://127.0.0.1/"},  # the Origin decides when there is one
    ],
)
@pytest.mark.parametrize("as_form", [False, True])
async def test_login_from_a_foreign_site_is_refused(client, headers, as_form):
    await register(client)
    credentials = {"username": "ann", "password": PASSWORD}
    body = {"data": credentials} if as_form else {"json": credentials}
    resp = await client.post("/login", headers=headers, **body)
    assert resp.status == 403
    assert "Set-Cookie" not in resp.headers
    assert set(await resp.json()) == {"message"}


async def test_login_from_this_site_a_trusted_one_or_no_browser_is_allowed(make_client):
    client = await make_client(cors_origins=(ALLOWED,))
    await register(client)
    credentials = {"username": "ann", "password": PASSWORD}
    for headers in [
        {},  # native apps and httpie send neither Origin nor Referer
        {"Origin": own_origin(client)},
        {"Referer": own_origin(client) + "/"},
        {"Origin": ALLOWED},
        {"Origin": "HTTP://127.0.0.1:" + str(client.server.port)},  # schemes and hosts are case-insensitive
    ]:
        resp = await client.post("/login", json=credentials, headers=headers)
        assert resp.status == 200, (headers, await resp.text())
        assert f"{HOST_COOKIE_NAME}=" in resp.headers["Set-Cookie"]


# ---- 11: the origin check compares scheme, host and port; HSTS over TLS ------------------------------------------


async def _cookie_for(client) -> dict[str, str]:
    return {"Cookie": f"{HOST_COOKIE_NAME}={await sign_in(client)}"}


@pytest.mark.parametrize(
    "origin",
    [
        lambda c: own_origin(c, "https"),  # same host and port, another scheme
        lambda c: f"http://{c.server.host}:{c.server.port + 1}",
        lambda c: f"http://{c.server.host}.evil.example:{c.server.port}",
        lambda c: f"http://user@{c.server.host}:{c.server.port}",
    ],
)
async def test_cookie_writes_need_the_same_scheme_host_and_port(client, origin):
    cookie = await _cookie_for(client)
    resp = await client.post("/logout", headers={**cookie, "Origin": origin(client)})
    assert resp.status == 403
    assert (await client.get("/get-user", headers=cookie)).status == 200


async def test_cookie_writes_from_this_site_pass(client):
    cookie = await _cookie_for(client)
    resp = await client.post("/logout", headers={**cookie, "Referer": own_origin(client) + "/page?x=1"})
    assert resp.status == 204


async def test_public_url_is_this_site_behind_a_tls_proxy(make_client):
    # A proxy ends TLS and forwards plain HTTP: the browser's Origin is PUBLIC_URL's, not the request's scheme.
    client = await make_client(public_url="https://chat.example.com")
    cookie = await _cookie_for(client)
    resp = await client.post("/logout", headers={**cookie, "Origin": "https://chat.example.com"})
    assert resp.status == 204


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as an operator would set TLS_CERT_FILE/TLS_KEY_FILE."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


async def test_hsts_when_serving_tls(aiohttp_client, settings, tls_files):
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(*tls_files)
    client_ctx = ssl.create_default_context(cafile=str(tls_files[0]))
    server = TestServer(await create_app(settings), host="127.0.0.1")
    await server.start_server(ssl=server_ctx)
    client = await aiohttp_client(server, connector=aiohttp.TCPConnector(ssl=client_ctx))
    assert str(client.make_url("/")).startswith("https://")
    for path in ["/healthz", "/no/such/path", "/docs"]:
        resp = await client.get(path)
        assert resp.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains", path


async def test_no_hsts_over_plain_http(client):
    assert "Strict-Transport-Security" not in (await client.get("/healthz")).headers


async def test_hsts_behind_a_tls_proxy_with_an_https_public_url(make_client):
    client = await make_client(public_url="https://chat.example.com")
    assert (await client.get("/healthz")).headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


# ---- 12: /docs serves what its page needs, with the page's security headers ------------------------------------


@pytest.mark.parametrize(
    "name",
    ["index.html", "swagger-initializer.js", "oauth2-redirect.html", "swagger-ui-bundle.js.map", "swagger-ui.js", "x"],
)
async def test_docs_serves_no_vendor_extras(client, name):
    assert (await client.get(f"/docs/static/{name}")).status == 404


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/docs/static/swagger-ui-bundle.js", "/"])
async def test_docs_and_openapi_carry_the_security_headers(client, path):
    resp = await client.get(path)
    assert resp.status == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    if path != "/":  # the page at / may load Google's sign-in script; the docs load nothing from elsewhere
        assert "http:" not in csp and "https:" not in csp and "*" not in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] in {"no-referrer", "same-origin"}


# ---- 15: chatt ids in canonical form only ---------------------------------------------------------------------


async def _a_chatt_id(client) -> str:
    assert (await client.post("/postchatt/", json={"username": "a", "message": "to delete"})).status == 200
    chatts = await (await client.get("/getchatts/")).json()
    chatt_id: str = chatts[-1][2]
    return chatt_id


def _variants(chatt_id: str) -> list[str]:
    return [
        f"urn:uuid:{chatt_id}",
        chatt_id.replace("-", ""),
        "{" + chatt_id + "}",
        f"{chatt_id} ",
        f"{chatt_id}\n",
        chatt_id[:8] + chatt_id[9:13] + "-" + chatt_id[13:],
    ]


async def test_delete_refuses_other_spellings_of_a_uuid(client):
    token = await sign_in(client, "mod", role="moderator")
    chatt_id = await _a_chatt_id(client)
    for variant in _variants(chatt_id):
        resp = await client.delete("/chatts/" + quote(variant, safe=""), headers=bearer(token))
        assert resp.status == 404, variant
        assert set(await resp.json()) == {"message"}
    assert (await client.delete(f"/chatts/{chatt_id.upper()}", headers=bearer(token))).status == 204


async def test_after_refuses_other_spellings_of_a_uuid(client):
    chatt_id = await _a_chatt_id(client)
    for variant in _variants(chatt_id):
        resp = await client.get("/getchatts/", params={"after": variant})
        assert resp.status == 422, variant
    assert (await client.get("/getchatts/", params={"after": chatt_id.upper()})).status == 200


# ---- 16: the smaller ones -------------------------------------------------------------------------------------


async def test_server_header_names_no_version(client):
    for resp in [await client.get("/healthz"), await client.get("/no/such/path"), await client.get("/docs")]:
        assert resp.headers.get("Server", "chatterd") == "chatterd"
    answer = await raw_exchange(client.server.host, client.server.port, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n", 1)[0]
    assert b"aiohttp" not in answer.lower() and b"python" not in answer.lower()


async def test_malformed_requests_are_logged_quietly_without_their_bytes(client):
    with captured("aiohttp.server") as records:
        for request in [b"GET / HTTP/1.1\r\nBad Header SECRETBYTES\r\n\r\n", b"\x16\x03\x01SECRETBYTES\r\n\r\n"]:
            answer = await raw_exchange(client.server.host, client.server.port, request)
            assert b" 400 " in answer.split(b"\r\n", 1)[0]
    assert len(records) == 2
    for record in records:
        assert record.levelno < logging.WARNING
        assert record.exc_info is None and record.exc_text is None
        assert "SECRETBYTES" not in record.getMessage()
        assert "malformed" in record.getMessage()


async def test_under_gunicorn_malformed_requests_log_no_error_no_bytes_no_version(make_database, tmp_path):
    # gunicorn's worker hands aiohttp gunicorn's error log, not aiohttp.server: the filter must be there too.
    env = base_env(DATABASE_URL=make_database(), CHATTERD_VAR_DIR=str(tmp_path / "var"), ACCESS_LOG="-")
    server = Gunicorn(env, tmp_path / "gunicorn.log", workers=1)
    await server.start()
    try:
        malformed = await raw_exchange("127.0.0.1", server.port, b"GET / HTTP/1.1\r\nBad Header SECRETBYTES\r\n\r\n")
        quoted = await raw_exchange(
            "127.0.0.1",
            server.port,
            b'GET /getchatts/?x="&token=s3cret HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
        )
    finally:
        assert await server.stop() == 0
    assert b" 400 " in malformed.split(b"\r\n", 1)[0] and b"\r\nServer: chatterd\r\n" in malformed
    assert b" 200 " in quoted.split(b"\r\n", 1)[0] and b"\r\nServer: chatterd\r\n" in quoted
    log = server.log()
    assert "SECRETBYTES" not in log and "Traceback" not in log and " ERROR " not in log, log
    assert "s3cret" not in log and "token=REDACTED" in log, log


async def test_handler_errors_still_log_at_error(client):
    # Only the parser's refusals are quietened: anything else that aiohttp's server logger reports stays an error.
    record = logging.LogRecord("aiohttp.server", logging.ERROR, "", 0, "Error handling request", (), None)
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    for log_filter in logging.getLogger("aiohttp.server").filters:
        assert isinstance(log_filter, logging.Filter) and log_filter.filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None


@pytest.mark.parametrize(
    "target",
    [
        'GET /getchatts/?token=s3cret"tail HTTP/1.1',
        'GET /getchatts/?a="&token=s3cret HTTP/1.1',
        'GET /getchatts/?limit=5&token=s3cret" HTTP/1.1',
        'GET /get"chatts/?token=s3cret HTTP/1.1',
    ],
)
async def test_access_log_redacts_queries_with_raw_quotes(aiohttp_client, settings, target):
    server = TestServer(await create_app(settings))
    await server.start_server(access_log_format=ACCESS_LOG_FORMAT)  # the format gunicorn.conf.py sets
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    access = logging.getLogger("aiohttp.access")
    access.addHandler(handler)
    saved = access.level
    access.setLevel(logging.INFO)
    try:
        request = f"{target}\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        answer = await raw_exchange(server.host, server.port, request)
        assert answer.startswith(b"HTTP/1.1 ")
    finally:
        await server.close()
        access.removeHandler(handler)
        access.setLevel(saved)
    assert "s3cret" not in stream.getvalue(), stream.getvalue()
    assert "REDACTED" in stream.getvalue()


def test_redactor_handles_a_quote_in_a_preformatted_line():
    line = 'GET /a?jwt=xyz"abc&limit=5 HTTP/1.1'
    record = logging.LogRecord("aiohttp.access", logging.INFO, "", 0, f'1.2.3.4 "{line}" 200', None, None)
    record.first_request_line = line
    assert AccessLogRedactor().filter(record)
    assert "xyz" not in record.getMessage() and "abc" not in record.getMessage()
    assert "xyz" not in record.first_request_line
    bare = logging.LogRecord("x", logging.INFO, "", 0, 'GET /a?jwt=xyz"abc HTTP/1.1 and more', None, None)
    assert AccessLogRedactor().filter(bare)
    assert "xyz" not in bare.getMessage() and "abc" not in bare.getMessage()


async def test_logout_clears_the_cookie_with_its_attributes(client):
    token = await sign_in(client)
    resp = await client.post("/logout", headers=bearer(token))
    assert resp.status == 204
    (cleared,) = [h for h in resp.headers.getall("Set-Cookie") if h.startswith(f"{HOST_COOKIE_NAME}=")]
    attributes = {part.strip().split("=")[0].lower() for part in cleared.split(";")}
    assert {"secure", "httponly", "samesite", "path", "max-age"} <= attributes
    assert "Max-Age=0" in cleared and "SameSite=Lax" in cleared and "Path=/" in cleared


async def _with_totp(client) -> pyotp.TOTP:
    token = await sign_in(client)
    body = await (await client.post("/totp/setup", headers=bearer(token))).json()
    totp = pyotp.TOTP(body["secret"])
    assert (await client.post("/totp/enable", json={"otp": totp.now()}, headers=bearer(token))).status == 204
    return totp


async def test_a_missing_one_time_code_counts_as_an_attempt(make_client):
    client = await make_client(login_max_failures=3)
    totp = await _with_totp(client)
    credentials = {"username": "ann", "password": PASSWORD}
    for _ in range(3):
        resp = await client.post("/login", json=credentials)
        assert resp.status == 401
        body = await resp.json()
        assert body["error"] == "otp_required" and "A one-time code is needed" in body["message"]
    resp = await client.post("/login", json={**credentials, "otp": totp.now()})
    assert resp.status == 429


async def test_a_wrong_one_time_code_says_otp_required(client):
    totp = await _with_totp(client)
    wrong = "000000" if totp.now() != "000000" else "111111"
    resp = await client.post("/login", json={"username": "ann", "password": PASSWORD, "otp": wrong})
    assert resp.status == 401
    assert (await resp.json())["error"] == "otp_required"
