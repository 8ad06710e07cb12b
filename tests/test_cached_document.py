"""The shared cached HTTP document: Cache-Control and Age, early refetch, backoff, staleness, single flight."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from core.cached_document import CachedDocument, DocumentUnavailable, FetchFailed, freshness_lifetime

ServerFactory = Callable[..., Awaitable[TestServer]]


class FakeClock:
    """A monotonic clock that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Origin:
    """A document server whose answer a test sets; it counts requests and can hold answers back."""

    def __init__(self) -> None:
        self.body = b"v1"
        self.status = 200
        self.headers: dict[str, str] = {"Cache-Control": "max-age=300"}
        self.hits = 0
        self.arrived = asyncio.Event()
        self.gate: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        return web.Response(body=self.body, status=self.status, headers=self.headers)

    async def moved(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/doc")


class Unreachable(DocumentUnavailable):
    """The error the documents under test raise, to show callers get their own type."""


def parse(body: bytes) -> str:
    """Documents under test are short ASCII words; anything else is refused."""
    if not body.isascii() or not body.isalnum():
        raise FetchFailed("not a word")
    return body.decode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def origin(aiohttp_server: ServerFactory) -> tuple[Origin, str]:
    served = Origin()
    app = web.Application()
    app.router.add_get("/doc", served.handle)
    app.router.add_get("/moved", served.moved)
    server = await aiohttp_server(app, host="127.0.0.1")
    return served, str(server.make_url("/doc"))


def cached(session: aiohttp.ClientSession, url: str, clock: FakeClock, **options: Any) -> CachedDocument[str]:
    settings: dict[str, Any] = {"name": "the word", "default_max_age": 100.0, "min_lifetime": 0.0, **options}
    return CachedDocument(session, url, parse, clock=clock, **settings)


# --- Cache-Control and Age -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_control", "age", "seconds"),
    [
        ("max-age=300", None, 300),
        ("max-age=300", "290", 10),
        ("max-age=300", " 290 ", 10),
        ("public, max-age=300, must-revalidate", "0", 300),
        ("max-age=300", "300", 0),
        ("max-age=300", "9999", 0),  # older than its max-age: stale, never negative
        ("max-age=300", "-5", 300),  # not delta-seconds: ignored
        ("max-age=300", "1.5", 300),
        ("max-age=300", "", 300),
        ('max-age="300"', "100", 200),
        ("MAX-AGE=300", "100", 200),
        (None, None, 100),
        (None, "40", 60),  # the default lifetime is also used up by the time spent in caches
        ("public", "150", 0),
        ("no-cache", None, 0),
        ("no-store, max-age=300", None, 0),
        ("max-age=0", None, 0),
        ("max-age=banana", None, 0),
        ("max-age=-5", None, 0),
        ("max-age=+5", None, 0),
        ("max-age=٣٠٠", None, 0),  # Arabic-Indic digits are digits to Python, not to HTTP
        ("s-maxage=10", None, 100),
        ("max-age=99999999999999999999", None, 2**31),
    ],
)
def test_freshness_is_max_age_less_age(cache_control: str | None, age: str | None, seconds: float) -> None:
    assert freshness_lifetime(cache_control, age, default=100) == seconds


@pytest.mark.parametrize(
    ("cache_control", "age", "seconds"),
    [("max-age=300", "290", 10), ("max-age=300", "298", 5), ("no-cache", None, 5), ("max-age=99999", "9", 3600)],
)
def test_freshness_is_bounded_after_age(cache_control: str, age: str | None, seconds: float) -> None:
    assert freshness_lifetime(cache_control, age, default=100, floor=5, ceiling=3600) == seconds


async def test_a_response_aged_290_of_300_seconds_is_fresh_for_10(
    origin: tuple[Origin, str], session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    served, url = origin
    served.headers = {"Cache-Control": "max-age=300", "Age": "290"}
    document = cached(session, url, clock)
    fetched_at = clock.now
    assert await document.get() == "v1"
    assert document.fresh_until == fetched_at + 10

    clock.now += 9.9
    await document.get()
    assert served.hits == 1
    clock.now += 0.2
    served.headers = {"Cache-Control": "max-age=300"}
    await document.get()
    assert served.hits == 2
    assert document.fresh_until == clock.now + 300


async def test_a_response_older_than_its_max_age_is_refetched_on_the_next_call(
    origin: tuple[Origin, str], session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    served, url = origin
    served.headers = {"Cache-Control": "max-age=300", "Age": "301"}
    document = cached(session, url, clock)
    for _ in range(3):
        assert await document.get() == "v1"
    assert served.hits == 3
    assert document.fetch_count == 3


async def test_min_lifetime_holds_against_age(
    origin: tuple[Origin, str], session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    served, url = origin
    served.headers = {"Cache-Control": "max-age=300", "Age": "299"}
    document = cached(session, url, clock, min_lifetime=30.0)
    await document.get()
    assert document.fresh_until == clock.now + 30


# --- early refetch ---------------------------------------------------------------------------------------------------


async def test_a_refused_fresh_copy_is_refetched_early_at_most_once_per_interval(
    origin: tuple[Origin, str], session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    served, url = origin
    document = cached(session, url, clock, min_refetch_interval=60.0)
    await document.get()
    assert await document.get(lambda word: word == "v1") == "v1"
    assert served.hits == 1  # an accepted copy is not refetched

    clock.now += 60
    served.body = b"v2"
    assert await document.get(lambda word: word == "v3") == "v2"
    assert served.hits == 2
    for _ in range(10):
        clock.now += 5
        assert await document.get(lambda word: word == "v3") == "v2"
    assert served.hits == 2

    clock.now += 10
    assert await document.get(lambda word: word == "v3") == "v2"
    assert served.hits == 3


# --- failures, backoff and staleness ---------------------------------------------------------------------------------


async def test_failures_back_off_exponentially_to_a_cap_and_raise_the_callers_error(
    origin: tuple[Origin, str], session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    served, url = origin
    served.status = 503
    outcomes: list[str] = []
    document = cached(session, url, clock, unavailable=Unreachable, on_fetch=outcomes.append)
    waits = []
    for _ in range(7):
        with pytest.raises(Unreachable, match="no usable copy of the word") as caught:
            await document.get()
        with pytest.raises(Unreachable):
            await document.get()  # during backoff: no fetch
        waits.append(caught.value.retry_after)
        clock.now += caught.value.retry_after
    assert waits == [2, 4, 8, 16, 30, 30, 30]
    assert served.hits == 7
    assert outcomes == ["failure"] * 7

    served.status = 200
    assert await document.get() == "v1"
    assert outcomes[-1] == "success"
    assert served.hits == 8


async def test_a_stale_copy_is_served_until_max_stale_while_fetches_fail(
    origin: tuple[Origin, str], session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    served, url = origin
    document = cached(session, url, clock, max_stale=1000.0)
    await document.get()
    served.body = b"not a word!"
    clock.now += 300 + 999
    assert await document.get() == "v1"
    assert served.hits == 2
    clock.now += 1
    with pytest.raises(DocumentUnavailable) as caught:
        await document.get()
    assert caught.value.retry_after == 1
    assert served.hits == 2  # still backing off from the last failure: the error does not mean a new fetch


@pytest.mark.parametrize(
    ("path", "body", "max_body"),
    [("/moved", b"v1", 1024), ("/doc", b"A" * 2000, 1024), ("/doc", b"not a word!", 1024)],
)
async def test_redirects_oversized_and_unparsable_answers_are_failures(
    origin: tuple[Origin, str],
    session: aiohttp.ClientSession,
    clock: FakeClock,
    path: str,
    body: bytes,
    max_body: int,
) -> None:
    served, url = origin
    served.body = body
    document = cached(session, url.replace("/doc", path), clock, max_body=max_body)
    with pytest.raises(DocumentUnavailable):
        await document.get()
    assert document.fetch_count == 1
    assert math.isinf(document.fresh_until)


# --- single flight ---------------------------------------------------------------------------------------------------


async def test_concurrent_callers_share_one_fetch_and_a_cancelled_one_does_not_stop_it(
    origin: tuple[Origin, str], session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    served, url = origin
    served.gate = asyncio.Event()
    document = cached(session, url, clock)
    first = asyncio.create_task(document.get())
    await served.arrived.wait()
    others = [asyncio.create_task(document.get()) for _ in range(20)]
    first.cancel()
    served.gate.set()
    assert await asyncio.gather(*others) == ["v1"] * 20
    assert first.cancelled()
    assert served.hits == 1
    assert document.fetch_count == 1
