"""The OpenID client pieces: discovery cache (freshness, staleness, back-off, single flight), PKCE, code exchange."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from google_signin.oidc import (
    DiscoveryUnavailable,
    OpenIdDiscovery,
    ProviderUnavailable,
    TokenRefused,
    code_challenge,
    exchange_code,
    max_age,
    new_code_verifier,
    parse_metadata,
)
from tests.support.common import free_port

DOCUMENT = {
    "issuer": "https://accounts.google.com",
    "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
    "token_endpoint": "https://oauth2.googleapis.com/token",
    "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
}


class FakeClock:
    """A monotonic clock that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Endpoint:
    """One endpoint whose answer a test sets: body, status, headers, and an optional gate to hold answers back."""

    def __init__(self, body: Any = DOCUMENT, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.body: Any = body
        self.status = status
        self.headers = headers or {"Cache-Control": "public, max-age=600"}
        self.hits = 0
        self.forms: list[dict[str, str]] = []
        self.gate: asyncio.Event | None = None
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.arrived.set()
        if request.method == "POST":
            self.forms.append({k: str(v) for k, v in (await request.post()).items()})
        if self.gate is not None:
            await self.gate.wait()
        text = self.body if isinstance(self.body, str) else json.dumps(self.body)
        return web.Response(text=text, status=self.status, headers=self.headers, content_type="application/json")


@pytest.fixture
async def endpoint(aiohttp_server) -> tuple[Endpoint, str]:
    ep = Endpoint()
    app = web.Application()
    app.router.add_route("*", "/doc", ep.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return ep, str(server.make_url("/doc"))


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_rfc7636_s256_example():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636, appendix B
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_code_verifiers_are_long_random_and_unreserved():
    verifiers = {new_code_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128
        assert set(verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, 3600), ("public, max-age=7200", 7200), ("no-cache", 60), ("max-age=5", 60), ("max-age=99999999", 86400)],
)
def test_max_age_is_bounded(header, seconds):
    assert max_age(header, 3600) == seconds


@pytest.mark.parametrize(
    ("header", "age", "seconds"),
    [("max-age=600", "500", 100), ("max-age=600", "590", 60), ("max-age=600", "9999", 60), (None, "600", 3000)],
)
def test_max_age_is_used_up_by_age(header, age, seconds):
    assert max_age(header, 3600, age) == seconds


@pytest.mark.parametrize(
    "change",
    [
        {"token_endpoint": "http://oauth2.googleapis.com/token"},  # the client secret must not go out in clear
        {"authorization_endpoint": "javascript:alert(1)"},
        {"token_endpoint": None},
        {"issuer": ""},
    ],
)
def test_unusable_documents_are_refused(change):
    with pytest.raises(ValueError, match=r"is missing|is not an https URL"):
        parse_metadata(json.dumps({**DOCUMENT, **change}).encode())


def test_loopback_http_endpoints_are_allowed_for_local_fakes():
    local = {
        **DOCUMENT,
        "token_endpoint": "http://127.0.0.1:8765/token",
        "authorization_endpoint": "http://localhost/a",
    }
    metadata = parse_metadata(json.dumps(local).encode())
    assert metadata.token_endpoint == "http://127.0.0.1:8765/token"


async def test_discovery_is_cached_for_its_max_age(endpoint, session, clock):
    ep, url = endpoint
    discovery = OpenIdDiscovery(session, url, clock=clock)
    first = await discovery.get()
    assert first.token_endpoint == DOCUMENT["token_endpoint"]
    clock.now += 599
    assert await discovery.get() is first
    assert ep.hits == 1
    clock.now += 2
    ep.body = {**DOCUMENT, "token_endpoint": "https://new.example/token"}
    assert (await discovery.get()).token_endpoint == "https://new.example/token"
    assert ep.hits == 2


async def test_discovery_freshness_counts_the_age_header(endpoint, session, clock):
    ep, url = endpoint
    ep.headers = {"Cache-Control": "public, max-age=600", "Age": "500"}
    discovery = OpenIdDiscovery(session, url, clock=clock)
    await discovery.get()
    clock.now += 99
    await discovery.get()
    assert ep.hits == 1
    clock.now += 2
    await discovery.get()
    assert ep.hits == 2
    assert discovery.fetch_count == 2


async def test_stale_copy_is_served_while_the_provider_is_down_then_backs_off(endpoint, session, clock):
    ep, url = endpoint
    discovery = OpenIdDiscovery(session, url, clock=clock, max_stale=1000)
    await discovery.get()
    ep.status = 503
    clock.now += 700
    assert (await discovery.get()).token_endpoint == DOCUMENT["token_endpoint"]
    assert ep.hits == 2
    await discovery.get()
    assert ep.hits == 2  # backing off: no fetch per request
    clock.now += 1000
    with pytest.raises(DiscoveryUnavailable) as caught:
        await discovery.get()
    assert caught.value.retry_after >= 1


@pytest.mark.parametrize("body", ["not json", {"issuer": "x"}, [1, 2]])
async def test_nothing_cached_and_a_bad_answer_is_unavailable(endpoint, session, clock, body):
    ep, url = endpoint
    ep.body = body
    discovery = OpenIdDiscovery(session, url, clock=clock)
    with pytest.raises(DiscoveryUnavailable):
        await discovery.get()


async def test_unreachable_provider_is_unavailable(session, clock):
    discovery = OpenIdDiscovery(session, f"http://127.0.0.1:{free_port()}/doc", clock=clock, timeout=2)
    with pytest.raises(DiscoveryUnavailable):
        await discovery.get()


async def test_concurrent_callers_share_one_fetch_even_when_one_is_cancelled(endpoint, session, clock):
    ep, url = endpoint
    ep.gate = asyncio.Event()
    discovery = OpenIdDiscovery(session, url, clock=clock)
    waiters = [asyncio.create_task(discovery.get()) for _ in range(10)]
    # Every caller has started and the one fetch is held at the provider: cancel a caller mid-flight.
    await asyncio.wait_for(ep.arrived.wait(), timeout=10)
    waiters[0].cancel()
    ep.gate.set()
    results = await asyncio.gather(*waiters[1:])
    assert ep.hits == 1
    assert all(r is results[0] for r in results)


async def exchange(session: aiohttp.ClientSession, url: str) -> str:
    return await exchange_code(
        session,
        url,
        code="the-code",
        redirect_uri="https://chat.example.com/auth/google/callback",
        client_id="web.apps",
        client_secret="hush",
        code_verifier="v" * 64,
        time_limit=2,
    )


async def test_exchange_posts_the_form_and_returns_the_id_token(endpoint, session):
    ep, url = endpoint
    ep.body = {"id_token": "a.b.c", "access_token": "x", "token_type": "Bearer", "expires_in": 3600}
    assert await exchange(session, url) == "a.b.c"
    assert ep.forms == [
        {
            "grant_type": "authorization_code",
            "code": "the-code",
            "redirect_uri": "https://chat.example.com/auth/google/callback",
            "client_id": "web.apps",
            "client_secret": "hush",
            "code_verifier": "v" * 64,
        }
    ]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": "invalid_grant"}, "invalid_grant"),
        (401, {"error": "invalid_client"}, "invalid_client"),
        (400, {"error": 5}, "invalid"),
        (400, {"error": "x" * 500}, "invalid"),
    ],
)
async def test_refusals_are_token_refused(endpoint, session, status, body, error):
    ep, url = endpoint
    ep.status, ep.body = status, body
    with pytest.raises(TokenRefused) as caught:
        await exchange(session, url)
    assert caught.value.error == error


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, {"error": "server"}), (200, "not json"), (200, {"access_token": "x"}), (400, "html"), (302, {})],
)
async def test_other_answers_are_provider_unavailable(endpoint, session, status, body):
    ep, url = endpoint
    ep.status, ep.body = status, body
    with pytest.raises(ProviderUnavailable):
        await exchange(session, url)


async def test_exchange_with_an_unreachable_provider_is_unavailable(session):
    with pytest.raises(ProviderUnavailable):
        await exchange(session, f"http://127.0.0.1:{free_port()}/token")


async def test_exchange_times_out(endpoint, session):
    ep, url = endpoint
    ep.gate = asyncio.Event()  # never set: the provider never answers
    with pytest.raises(ProviderUnavailable, match="timed out"):
        await exchange_code(
            session,
            url,
            code="c",
            redirect_uri="https://x/cb",
            client_id="a",
            client_secret="b",
            code_verifier="v" * 43,
            time_limit=0.2,
        )
