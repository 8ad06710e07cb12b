"""Tests of Google ID-token verification and the certificate cache against a real local certificate server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client import REGISTRY

from google_signin.certs import CertificatesUnavailable, GoogleCertificates
from google_signin.idtoken import GoogleIdentity, InvalidIdToken, verify_id_token
from tools.fake_google import CERTS_PATH, FakeGoogle

CLIENT_ID = "chatter-client.apps.googleusercontent.com"
AUDIENCES = frozenset({CLIENT_ID, "second-client"})

ServerFactory = Callable[..., Awaitable[TestServer]]


class FakeClock:
    """A monotonic clock that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CertEndpoint:
    """A certificate endpoint whose answer a test controls, for responses FakeGoogle never gives."""

    def __init__(self, body: bytes = b"{}", status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.status = status
        self.headers = headers or {}
        self.hits = 0
        self.arrived = asyncio.Event()
        self.gate: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        return web.Response(body=self.body, status=self.status, headers=self.headers, content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(CERTS_PATH, self.handle)
        return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def google() -> FakeGoogle:
    return FakeGoogle(max_age=3600)


@pytest.fixture
def serve(aiohttp_server: ServerFactory) -> Callable[[web.Application], Awaitable[str]]:
    async def start(app: web.Application) -> str:
        server = await aiohttp_server(app, host="127.0.0.1")
        return str(server.make_url(CERTS_PATH))

    return start


@pytest.fixture
async def certs_url(serve: Callable[[web.Application], Awaitable[str]], google: FakeGoogle) -> str:
    return await serve(google.app())


@pytest.fixture
def certificates(session: aiohttp.ClientSession, certs_url: str, clock: FakeClock) -> GoogleCertificates:
    return GoogleCertificates(session, certs_url, clock=clock)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "https://accounts.google.com",
        "aud": CLIENT_ID,
        "sub": "1234567890",
        "iat": now,
        "exp": now + 3600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_made(header: dict[str, Any], payload: dict[str, Any], signature: bytes | None = None, key: bytes = b"") -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if signature is None:
        signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


async def verify(token: Any, certificates: GoogleCertificates, **kwargs: Any) -> GoogleIdentity:
    return await verify_id_token(token, certificates, audiences=AUDIENCES, **kwargs)


# --- accepted tokens -------------------------------------------------------------------------------------------------


async def test_valid_token_gives_identity(google: FakeGoogle, certificates: GoogleCertificates) -> None:
    token = google.id_token(client_id=CLIENT_ID, sub="42", name="Ann Smith", email="ann@example.com", lifetime=600)
    before = int(time.time())

    identity = await verify(token, certificates)

    assert identity.sub == "42"
    assert identity.name == "Ann Smith"
    assert identity.email == "ann@example.com"
    assert identity.hosted_domain is None
    assert before - 5 <= identity.issued_at <= before + 5
    assert identity.expires_at == identity.issued_at + 600
    assert google.fetches == 1


async def test_name_and_email_are_optional(google: FakeGoogle, certificates: GoogleCertificates) -> None:
    identity = await verify(google.id_token(client_id="second-client", name=None, email=None), certificates)
    assert (identity.name, identity.email) == (None, None)


async def test_bare_issuer_is_accepted(google: FakeGoogle, certificates: GoogleCertificates) -> None:
    identity = await verify(google.id_token(client_id=CLIENT_ID, issuer="accounts.google.com"), certificates)
    assert identity.sub == "1234567890"


# --- refused tokens --------------------------------------------------------------------------------------------------


async def test_signature_by_another_key_with_same_kid_is_refused(
    google: FakeGoogle, certificates: GoogleCertificates
) -> None:
    forged = FakeGoogle().sign(claims(), headers={"kid": google.kid})
    with pytest.raises(InvalidIdToken, match="signature"):
        await verify(forged, certificates)


async def test_tampered_payload_is_refused(google: FakeGoogle, certificates: GoogleCertificates) -> None:
    header, _, signature = google.id_token(client_id=CLIENT_ID).split(".")
    payload = b64url(json.dumps(claims(sub="someone-else")).encode())
    with pytest.raises(InvalidIdToken, match="signature"):
        await verify(f"{header}.{payload}.{signature}", certificates)


async def test_unknown_kid_refetches_once_and_is_refused(
    google: FakeGoogle, certificates: GoogleCertificates, clock: FakeClock
) -> None:
    await certificates.get()
    clock.advance(61)
    stranger = FakeGoogle()
    token = stranger.id_token(client_id=CLIENT_ID)

    for _ in range(3):
        with pytest.raises(InvalidIdToken, match="unknown key"):
            await verify(token, certificates)

    assert google.fetches == 2
    assert certificates.fetch_count == 2


@pytest.mark.parametrize(("exp_offset", "accepted"), [(-3600, False), (-60, False), (-30, True), (-1, True)])
async def test_expiry_allows_50_seconds_of_skew(
    google: FakeGoogle, certificates: GoogleCertificates, exp_offset: int, accepted: bool
) -> None:
    now = int(time.time())
    token = google.id_token(client_id=CLIENT_ID, iat=now - 7200, exp=now + exp_offset)
    if accepted:
        assert (await verify(token, certificates)).expires_at == now + exp_offset
    else:
        with pytest.raises(InvalidIdToken, match="expired"):
            await verify(token, certificates)


@pytest.mark.parametrize(("iat_offset", "accepted"), [(3600, False), (120, False), (30, True)])
async def test_issued_in_the_future_allows_50_seconds_of_skew(
    google: FakeGoogle, certificates: GoogleCertificates, iat_offset: int, accepted: bool
) -> None:
    now = int(time.time())
    token = google.id_token(client_id=CLIENT_ID, iat=now + iat_offset, exp=now + 7200)
    if accepted:
        assert (await verify(token, certificates)).issued_at == now + iat_offset
    else:
        with pytest.raises(InvalidIdToken, match="not valid yet"):
            await verify(token, certificates)


@pytest.mark.parametrize(
    "claim",
    [
        {"exp": None},
        {"iat": None},
        {"exp": "tomorrow"},
        {"exp": True},
        {"exp": float("inf")},
        {"iat": float("nan")},
    ],
)
async def test_missing_or_malformed_times_are_refused(
    google: FakeGoogle, certificates: GoogleCertificates, claim: dict[str, Any]
) -> None:
    with pytest.raises(InvalidIdToken):
        await verify(google.sign(claims(**claim)), certificates)


@pytest.mark.parametrize(
    "issuer", ["https://evil.example.com", "http://accounts.google.com", "accounts.google.com.evil", "", None]
)
async def test_wrong_issuer_is_refused(
    google: FakeGoogle, certificates: GoogleCertificates, issuer: str | None
) -> None:
    with pytest.raises(InvalidIdToken, match="issued by Google"):
        await verify(google.sign(claims(iss=issuer)), certificates)


async def test_unhashable_issuer_is_refused(google: FakeGoogle, certificates: GoogleCertificates) -> None:
    with pytest.raises(InvalidIdToken, match="issued by Google"):
        await verify(google.sign(claims(iss=["accounts.google.com"])), certificates)


@pytest.mark.parametrize("aud", ["another-client", "", [CLIENT_ID], {"a": CLIENT_ID}, None])
async def test_audience_not_allowed_is_refused(google: FakeGoogle, certificates: GoogleCertificates, aud: Any) -> None:
    with pytest.raises(InvalidIdToken, match="another client"):
        await verify(google.sign(claims(aud=aud)), certificates)


async def test_a_single_string_audience_is_not_split_into_characters(
    google: FakeGoogle, certificates: GoogleCertificates
) -> None:
    token = google.sign(claims(aud="c"))
    with pytest.raises(InvalidIdToken, match="another client"):
        await verify_id_token(token, certificates, audiences="abc")
    assert (await verify_id_token(google.sign(claims(aud="abc")), certificates, audiences="abc")).sub


@pytest.mark.parametrize("signature", [b"", b"not-a-signature"])
async def test_alg_none_is_refused(google: FakeGoogle, certificates: GoogleCertificates, signature: bytes) -> None:
    token = hand_made({"alg": "none", "typ": "JWT", "kid": google.kid}, claims(), signature=signature)
    with pytest.raises(InvalidIdToken):
        await verify(token, certificates)
    assert certificates.fetch_count == 0


@pytest.mark.parametrize("which", ["public key", "certificate"])
async def test_hs256_keyed_with_the_rsa_public_key_is_refused(
    google: FakeGoogle, certificates: GoogleCertificates, which: str
) -> None:
    secret = google.public_key_pem() if which == "public key" else google.certs()[google.kid].encode()
    token = hand_made({"alg": "HS256", "typ": "JWT", "kid": google.kid}, claims(), key=secret)
    with pytest.raises(InvalidIdToken, match="RS256"):
        await verify(token, certificates)
    assert certificates.fetch_count == 0


async def test_es256_is_refused(google: FakeGoogle, certificates: GoogleCertificates) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(), key, algorithm="ES256", headers={"kid": google.kid})
    with pytest.raises(InvalidIdToken, match="RS256"):
        await verify(token, certificates)


@pytest.mark.parametrize(
    "cut",
    [
        lambda t: t[:-1],
        lambda t: t[:-10],
        lambda t: t[: len(t) // 2],
        lambda t: t.rsplit(".", 1)[0],
        lambda t: t.rsplit(".", 1)[0] + ".",
        lambda t: t.split(".", 1)[0],
        lambda t: t[:20],
        lambda t: t[1:],
        lambda t: t + "A",
        lambda t: t + ".xyz",
    ],
)
async def test_truncated_or_extended_token_is_refused(
    google: FakeGoogle, certificates: GoogleCertificates, cut: Callable[[str], str]
) -> None:
    with pytest.raises(InvalidIdToken):
        await verify(cut(google.id_token(client_id=CLIENT_ID)), certificates)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not a token",
        "a.b.c",
        "...",
        "a..c",
        "é.é.é",
        "eyJhbGciOiJSUzI1NiJ9.\x00.sig",
        "Bearer eyJhbGciOiJSUzI1NiJ9.e30.e30",
        b64url(b"[1, 2]") + ".e30.e30",
        b64url(b'"RS256"') + ".e30.e30",
        b64url(b"\xff\xfe") + ".e30.e30",
        b64url(b'{"alg": "RS256"}') + ".e30.e30",
        b64url(b'{"alg": "RS256", "kid": 7}') + ".e30.e30",
        b64url(b'{"alg": "RS256", "kid": ""}') + ".e30.e30",
        b64url(b'{"alg": "RS256", "kid": "k", "crit": ["exp"]}') + ".e30.e30",
        b64url(b'{"alg": ["RS256"], "kid": "k"}') + ".e30.e30",
        b64url(b'{"alg": "rs256", "kid": "k"}') + ".e30.e30",
        b64url(b"[" * 5000) + ".e30.e30",
        "A" * 9000,
        "a" * 4000 + "." + "b" * 4000 + "." + "c" * 100,
    ],
)
async def test_garbage_is_refused_without_fetching(certificates: GoogleCertificates, garbage: str) -> None:
    with pytest.raises(InvalidIdToken):
        await verify(garbage, certificates)
    assert certificates.fetch_count == 0


@pytest.mark.parametrize("value", [None, 123, b"a.b.c", ["a.b.c"], {"idToken": "a.b.c"}, 1.5, True])
async def test_non_string_input_is_refused(certificates: GoogleCertificates, value: Any) -> None:
    with pytest.raises(InvalidIdToken):
        await verify(value, certificates)


async def test_garbage_after_a_valid_header_is_refused(google: FakeGoogle, certificates: GoogleCertificates) -> None:
    header = google.id_token(client_id=CLIENT_ID).split(".")[0]
    for payload in (b64url(b"[" * 5000), b64url(b"not json"), b64url(b"[1]"), b64url(b"\xff"), "A"):
        with pytest.raises(InvalidIdToken):
            await verify(f"{header}.{payload}.{b64url(b'x' * 256)}", certificates)


@pytest.mark.parametrize("sub", [None, "", 1234567890, ["1"]])
async def test_missing_or_bad_sub_is_refused(google: FakeGoogle, certificates: GoogleCertificates, sub: Any) -> None:
    with pytest.raises(InvalidIdToken, match="subject"):
        await verify(google.sign(claims(sub=sub)), certificates)


@pytest.mark.parametrize("claim", ["name", "email", "hd"])
async def test_non_string_optional_claims_are_refused(
    google: FakeGoogle, certificates: GoogleCertificates, claim: str
) -> None:
    with pytest.raises(InvalidIdToken, match=claim):
        await verify(google.sign(claims(**{claim: {"x": 1}})), certificates)


@pytest.mark.parametrize("hd", ["other.example.com", "EXAMPLE.COM", None])
async def test_hosted_domain_mismatch_is_refused(
    google: FakeGoogle, certificates: GoogleCertificates, hd: str | None
) -> None:
    token = google.id_token(client_id=CLIENT_ID, hd=hd)
    with pytest.raises(InvalidIdToken, match="hosted domain"):
        await verify(token, certificates, hosted_domain="example.com")


async def test_hosted_domain_match_is_accepted(google: FakeGoogle, certificates: GoogleCertificates) -> None:
    token = google.id_token(client_id=CLIENT_ID, hd="example.com")
    identity = await verify(token, certificates, hosted_domain="example.com")
    assert identity.hosted_domain == "example.com"


# --- the certificate cache -------------------------------------------------------------------------------------------


async def test_key_rotation_is_picked_up_with_one_refetch(
    google: FakeGoogle, certificates: GoogleCertificates, clock: FakeClock
) -> None:
    old_token = google.id_token(client_id=CLIENT_ID, sub="old")
    assert (await verify(old_token, certificates)).sub == "old"
    clock.advance(61)
    google.rotate()
    new_token = google.id_token(client_id=CLIENT_ID, sub="new")

    assert (await verify(new_token, certificates)).sub == "new"
    assert (await verify(old_token, certificates)).sub == "old"
    assert (await verify(new_token, certificates)).sub == "new"
    assert google.fetches == 2


async def test_rotation_right_after_a_fetch_waits_for_the_refetch_interval(
    google: FakeGoogle, certificates: GoogleCertificates, clock: FakeClock
) -> None:
    await certificates.get()
    google.rotate(keep_old=False)
    token = google.id_token(client_id=CLIENT_ID)
    clock.advance(30)
    with pytest.raises(InvalidIdToken, match="unknown key"):
        await verify(token, certificates)
    assert google.fetches == 1

    clock.advance(31)
    assert (await verify(token, certificates)).sub
    assert google.fetches == 2


async def test_warm_cache_is_used_for_1000_verifications(
    google: FakeGoogle, certificates: GoogleCertificates, clock: FakeClock
) -> None:
    token = google.id_token(client_id=CLIENT_ID)
    await verify(token, certificates)
    for _ in range(1000):
        clock.advance(3.5)  # 3500 s in all: still inside max-age 3600
        await verify(token, certificates)
    assert google.fetches == 1
    assert certificates.fetch_count == 1


async def test_max_age_expiry_causes_one_refetch(
    serve: Callable[[web.Application], Awaitable[str]], session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    google = FakeGoogle(max_age=100)
    certificates = GoogleCertificates(session, await serve(google.app()), clock=clock)
    await certificates.get()
    clock.advance(99)
    await certificates.get()
    assert google.fetches == 1

    clock.advance(2)
    for _ in range(10):
        await certificates.get()
    assert google.fetches == 2


async def test_concurrent_cold_callers_share_one_fetch(google: FakeGoogle, certificates: GoogleCertificates) -> None:
    results = await asyncio.gather(*(certificates.get() for _ in range(50)))
    assert google.fetches == 1
    assert certificates.fetch_count == 1
    assert all(dict(r) == google.certs() for r in results)


async def test_concurrent_cold_verifications_share_one_fetch(
    google: FakeGoogle, certificates: GoogleCertificates
) -> None:
    tokens = [google.id_token(client_id=CLIENT_ID, sub=str(i)) for i in range(20)]
    identities = await asyncio.gather(*(verify(t, certificates) for t in tokens))
    assert [i.sub for i in identities] == [str(i) for i in range(20)]
    assert google.fetches == 1


async def test_concurrent_forged_kids_share_one_refetch(
    google: FakeGoogle, certificates: GoogleCertificates, clock: FakeClock
) -> None:
    await certificates.get()
    clock.advance(61)
    results = await asyncio.gather(*(certificates.get(f"forged-{i}") for i in range(50)))
    assert google.fetches == 2
    assert all(google.kid in r for r in results)


async def test_unknown_kid_refetch_is_rate_limited(
    google: FakeGoogle, certificates: GoogleCertificates, clock: FakeClock
) -> None:
    await certificates.get()
    clock.advance(61)
    for i in range(100):
        forged = google.sign(claims(), headers={"kid": f"forged-{i}"})
        with pytest.raises(InvalidIdToken):
            await verify(forged, certificates)
        clock.advance(0.5)  # 50 s in all: still within one refetch interval
    assert google.fetches == 2

    clock.advance(11)
    with pytest.raises(InvalidIdToken):
        await verify(google.sign(claims(), headers={"kid": "forged-again"}), certificates)
    assert google.fetches == 3


async def test_cancelled_waiter_does_not_cancel_the_shared_fetch(
    google: FakeGoogle,
    serve: Callable[[web.Application], Awaitable[str]],
    session: aiohttp.ClientSession,
    clock: FakeClock,
) -> None:
    endpoint = CertEndpoint(json.dumps(google.certs()).encode(), headers={"Cache-Control": "max-age=600"})
    endpoint.gate = asyncio.Event()
    certificates = GoogleCertificates(session, await serve(endpoint.app()), clock=clock)

    first = asyncio.create_task(certificates.get())
    await endpoint.arrived.wait()
    second = asyncio.create_task(certificates.get())
    first.cancel()
    endpoint.gate.set()

    assert google.kid in await second
    assert first.cancelled()
    assert endpoint.hits == 1
    assert google.kid in await certificates.get()
    assert endpoint.hits == 1


async def test_down_with_warm_cache_still_verifies(
    google: FakeGoogle, certificates: GoogleCertificates, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    token = google.id_token(client_id=CLIENT_ID)
    await verify(token, certificates)
    google.failing = True
    clock.advance(3601)

    with caplog.at_level(logging.WARNING, logger="core.cached_document"):
        assert (await verify(token, certificates)).sub
    assert google.fetches == 2
    assert any("503" in r.getMessage() and "cached" in r.getMessage() for r in caplog.records)

    for _ in range(20):
        assert (await verify(token, certificates)).sub
    assert google.fetches == 2, "a failed refresh must back off, not retry on every request"


async def test_down_and_cold_raises_unavailable(google: FakeGoogle, certificates: GoogleCertificates) -> None:
    google.failing = True
    token = google.id_token(client_id=CLIENT_ID)

    with pytest.raises(CertificatesUnavailable) as info:
        await verify(token, certificates)
    assert info.value.retry_after > 0
    assert not isinstance(info.value, InvalidIdToken)

    with pytest.raises(CertificatesUnavailable):
        await certificates.get()
    assert google.fetches == 1


async def test_down_then_back_recovers(google: FakeGoogle, certificates: GoogleCertificates, clock: FakeClock) -> None:
    google.failing = True
    token = google.id_token(client_id=CLIENT_ID)
    for _ in range(5):
        with pytest.raises(CertificatesUnavailable) as info:
            await verify(token, certificates)
        clock.advance(info.value.retry_after)
    assert google.fetches == 5

    google.failing = False
    clock.advance(60)
    assert (await verify(token, certificates)).sub
    assert google.fetches == 6
    await verify(token, certificates)
    assert google.fetches == 6


async def test_backoff_is_capped(google: FakeGoogle, certificates: GoogleCertificates, clock: FakeClock) -> None:
    google.failing = True
    waits = []
    for _ in range(10):
        with pytest.raises(CertificatesUnavailable) as info:
            await certificates.get()
        waits.append(info.value.retry_after)
        clock.advance(info.value.retry_after)
    assert waits[0] < waits[3]
    assert max(waits) <= 60
    assert google.fetches == 10


async def test_stale_beyond_max_stale_is_unavailable(
    google: FakeGoogle, session: aiohttp.ClientSession, certs_url: str, clock: FakeClock
) -> None:
    certificates = GoogleCertificates(session, certs_url, clock=clock, max_stale=600)
    await certificates.get()
    google.failing = True
    clock.advance(3600 + 599)
    assert google.kid in await certificates.get()

    clock.advance(60)
    with pytest.raises(CertificatesUnavailable):
        await certificates.get()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 200),
        (b"<html>captive portal</html>", 200),
        (b"[1, 2]", 200),
        (b"{}", 200),
        (b'{"kid": 1}', 200),
        (b'{"error": "nope"}', 200),
        (b'{"kid": "-----BEGIN CERTIFICATE-----"}', 404),
        (b"", 500),
        (b"\xff\xfe", 200),
        (b"[" * 100_000, 200),
        (b'{"k": "' + b"A" * 300_000 + b'"}', 200),
    ],
)
async def test_malformed_responses_are_refused(
    serve: Callable[[web.Application], Awaitable[str]],
    session: aiohttp.ClientSession,
    clock: FakeClock,
    body: bytes,
    status: int,
) -> None:
    certificates = GoogleCertificates(session, await serve(CertEndpoint(body, status).app()), clock=clock)
    with pytest.raises(CertificatesUnavailable):
        await certificates.get()
    assert certificates.fetch_count == 1


async def test_malformed_refresh_keeps_the_old_certificates(
    google: FakeGoogle, serve: Callable[[web.Application], Awaitable[str]], session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    endpoint = CertEndpoint(json.dumps(google.certs()).encode(), headers={"Cache-Control": "max-age=60"})
    certificates = GoogleCertificates(session, await serve(endpoint.app()), clock=clock)
    await certificates.get()
    endpoint.body = b'{"truncated":'
    clock.advance(61)
    assert dict(await certificates.get()) == google.certs()
    assert endpoint.hits == 2


async def test_timeout_is_a_failure(
    google: FakeGoogle, serve: Callable[[web.Application], Awaitable[str]], session: aiohttp.ClientSession
) -> None:
    endpoint = CertEndpoint(json.dumps(google.certs()).encode())
    endpoint.gate = asyncio.Event()
    certificates = GoogleCertificates(session, await serve(endpoint.app()), timeout=0.05)
    try:
        with pytest.raises(CertificatesUnavailable):
            await certificates.get()
    finally:
        endpoint.gate.set()
    assert endpoint.hits == 1


async def test_connection_refused_is_a_failure(aiohttp_server: ServerFactory, session: aiohttp.ClientSession) -> None:
    server = await aiohttp_server(web.Application(), host="127.0.0.1")
    url = str(server.make_url(CERTS_PATH))
    await server.close()
    with pytest.raises(CertificatesUnavailable) as info:
        await GoogleCertificates(session, url).get()
    assert info.value.retry_after >= 1


@pytest.mark.parametrize(
    ("headers", "fresh_for"),
    [
        ({"Cache-Control": "public, max-age=120, must-revalidate"}, 120),
        ({"Cache-Control": 'max-age="90"'}, 90),
        ({"Cache-Control": "public, max-age=120", "Age": "100"}, 20),
        ({"Cache-Control": "max-age=300", "Age": "290"}, 10),
        ({"Cache-Control": "max-age=300", "Age": "400"}, 5),
        ({"Cache-Control": "max-age=300", "Age": "banana"}, 300),
        ({"Age": "100"}, 200),
        ({}, 300),
        ({"Cache-Control": "public"}, 300),
        ({"Cache-Control": "max-age=banana"}, 5),
        ({"Cache-Control": "no-cache"}, 5),
        ({"Cache-Control": "no-store, max-age=3600"}, 5),
        ({"Cache-Control": "max-age=0"}, 5),
        ({"Cache-Control": "max-age=99999999999999999999"}, 86400),
    ],
)
async def test_freshness_follows_cache_control(
    google: FakeGoogle,
    serve: Callable[[web.Application], Awaitable[str]],
    session: aiohttp.ClientSession,
    headers: dict[str, str],
    fresh_for: int,
) -> None:
    clock = FakeClock()
    endpoint = CertEndpoint(json.dumps(google.certs()).encode(), headers=headers)
    certificates = GoogleCertificates(session, await serve(endpoint.app()), clock=clock, default_max_age=300)
    await certificates.get()
    clock.advance(fresh_for - 0.5)
    await certificates.get()
    assert endpoint.hits == 1
    clock.advance(1)
    await certificates.get()
    assert endpoint.hits == 2


def fetches_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("chatterd_google_certificate_fetches_total", {"outcome": outcome}) or 0.0


async def test_fetches_are_counted_by_outcome(
    google: FakeGoogle, certificates: GoogleCertificates, clock: FakeClock
) -> None:
    successes, failures = fetches_counted("success"), fetches_counted("failure")
    await certificates.get()
    google.failing = True
    clock.advance(3601)
    await certificates.get()
    assert (fetches_counted("success"), fetches_counted("failure")) == (successes + 1, failures + 1)


async def test_returned_certificates_are_read_only(certificates: GoogleCertificates) -> None:
    certs = await certificates.get()
    with pytest.raises(TypeError):
        certs["evil"] = "-----BEGIN CERTIFICATE-----"


# --- the fake itself -------------------------------------------------------------------------------------------------


async def test_fake_google_serves_cache_headers_and_fails_on_demand(
    google: FakeGoogle, certs_url: str, session: aiohttp.ClientSession
) -> None:
    async with session.get(certs_url) as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "public, max-age=3600"
        assert await resp.json() == google.certs()
    google.failing = True
    async with session.get(certs_url) as resp:
        assert resp.status == 503
    assert google.fetches == 2


async def test_fake_google_drop_unpublishes_a_key(google: FakeGoogle) -> None:
    first = google.kid
    second = google.rotate()
    assert set(google.certs()) == {first, second}
    google.drop(first)
    assert set(google.certs()) == {second}
    assert google.certs()[second].startswith("-----BEGIN CERTIFICATE-----")
