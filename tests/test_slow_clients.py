"""Slow clients under gunicorn: unfinished headers and trickled bodies are cut off in bounded time, others served."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.launcher import Gunicorn, base_env

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
# After answering, aiohttp reads what is left of a body for up to this long (its lingering_time), then closes.
LINGER = 10.0
SLACK = 3.0  # a loaded two-core machine's scheduling, on top of each bound
DRIP_INTERVAL = 0.2


@pytest.fixture
async def server(make_database: Any, tmp_path: Path) -> AsyncIterator[Gunicorn]:
    """Two workers with short header and body timeouts."""
    env = base_env(
        DATABASE_URL=make_database(),
        CHATTERD_VAR_DIR=str(tmp_path / "var"),
        HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        BODY_TIMEOUT=str(BODY_TIMEOUT),
    )
    gunicorn = Gunicorn(env, tmp_path / "gunicorn.log")
    await gunicorn.start()
    try:
        yield gunicorn
    finally:
        assert await gunicorn.stop() == 0


@dataclass(frozen=True, slots=True)
class Cut:
    """What a slow client saw: when the server's first bytes came, what they were, and when it closed."""

    answered_after: float | None
    answer: bytes
    closed_after: float


async def slow_client(port: int, head: bytes, drip: bytes) -> Cut:
    """Send `head`, then one byte of `drip` (cycled) every DRIP_INTERVAL until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(head)
    await writer.drain()

    async def dripping() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            for n in range(10_000):  # bounded: 2000 s at most, and the test's own bound ends it long before
                await asyncio.sleep(DRIP_INTERVAL)  # the attacker's pace, not a wait for a condition
                writer.write(drip[n % len(drip) : n % len(drip) + 1])
                await writer.drain()

    drip_task = asyncio.create_task(dripping()) if drip else None
    answer, answered_after = b"", None
    try:
        while chunk := await reader.read(65536):
            answered_after = answered_after or time.monotonic() - started
            answer += chunk
    except ConnectionError:
        pass
    finally:
        closed_after = time.monotonic() - started
        if drip_task is not None:
            drip_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drip_task
        writer.close()
    return Cut(answered_after, answer, closed_after)


REQUEST_LINE = b"GET /getchatts/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
SLOW_POST = (
    b"POST /postchatt/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    b'{"username": "slow", "message": "'
)


async def test_slow_headers_and_bodies_are_cut_off_while_others_are_served(server):
    port = server.port
    header_cases = [
        (REQUEST_LINE, b"X-Slow: " + b"a" * 64),  # headers a byte at a time, never finished
        (b"GET /getchatts/ HTTP/1.1\r\nHo", b""),  # stops in the middle of a header
        (b"", b""),  # connects and says nothing
        (b"GET /getc", b"h"),  # the request line itself trickles
    ] * 5
    slow_headers = [asyncio.create_task(slow_client(port, head, drip)) for head, drip in header_cases]
    slow_bodies = [asyncio.create_task(slow_client(port, SLOW_POST, b"a")) for _ in range(5)]

    # Meanwhile, requests on new connections are answered as usual.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for n in range(40):
            async with session.get(f"{server.url}/getchatts/", timeout=aiohttp.ClientTimeout(total=10)) as resp:
                assert resp.status == 200, n
            async with session.post(
                f"{server.url}/postchatt/", json={"username": "ann", "message": f"fast {n}"}
            ) as resp:
                assert resp.status == 200, n

    cuts = await asyncio.wait_for(asyncio.gather(*slow_headers), timeout=HEADER_TIMEOUT + SLACK + 10)
    for (head, drip), cut in zip(header_cases, cuts, strict=True):
        assert cut.answer == b"", (head, drip, cut)  # closed without an answer: there was no request to answer
        assert cut.closed_after < HEADER_TIMEOUT + SLACK, (head, drip, cut)

    cuts = await asyncio.wait_for(asyncio.gather(*slow_bodies), timeout=BODY_TIMEOUT + LINGER + SLACK + 10)
    for cut in cuts:
        assert cut.answer.startswith(b"HTTP/1.1 408 "), cut
        assert b"Connection: close" in cut.answer, cut
        assert cut.answered_after is not None and cut.answered_after < BODY_TIMEOUT + SLACK, cut
        assert cut.closed_after < BODY_TIMEOUT + LINGER + SLACK, cut

    # None of the slow posts was stored; every fast one was.
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/getchatts/") as resp:
        assert sorted(row[1] for row in await resp.json()) == sorted(f"fast {n}" for n in range(40))
