"""Refresh loops racing an ending of their sessions: what a revocation must win, whatever the timing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.support.common import bearer, wait_for


async def refresh_chain(client: Any, token: str, stop: asyncio.Event, log: list[Any], minted: list[str]) -> None:
    """Refresh as fast as possible, each time with the newest token; log (sent at, status), keep the JWTs minted."""
    while not stop.is_set():
        sent = time.monotonic()
        resp = await client.post("/token/refresh", json={"refresh_token": token})
        log.append((sent, resp.status))
        if resp.status != 200:
            return
        answer = await resp.json()
        minted.append(answer["token"])
        token = answer["refresh_token"]


async def revoke_amid_refreshes(
    a: Any, b: Any, tokens: list[str], revoke: Callable[[], Awaitable[Any]], *, round_: int
) -> None:
    """Refresh loops of `tokens` on `b`; once under way, `revoke` on `a` (a request that must answer 204): no refresh
    sent after that answer succeeds, every loop ends, and every JWT the loops got (those of a refresh in flight at
    the answer too) is refused on both servers within a second."""
    stop, log, minted = asyncio.Event(), [], []
    chains = [asyncio.create_task(refresh_chain(b, token, stop, log, minted)) for token in tokens]
    least = 2 * len(tokens)
    await wait_for(lambda: asyncio.sleep(0, len(log) >= least), timeout=5.0, what="refreshes under way")
    assert (await revoke()).status == 204
    answered = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*chains), timeout=10)
    stop.set()
    late = [status for sent, status in log if sent > answered]
    assert all(status == 401 for status in late), (round_, late)

    async def status(server: Any, token: str) -> int:
        async with server.get("/get-user", headers=bearer(token)) as resp:
            return int(resp.status)

    async def all_refused() -> bool:
        statuses = await asyncio.gather(*(status(server, token) for server in (a, b) for token in minted))
        return all(code == 401 for code in statuses)

    await wait_for(all_refused, timeout=max(0.0, answered + 1.0 - time.monotonic()), what=f"JWTs refused ({round_})")
