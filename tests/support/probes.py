"""Probes that a change (a credential ended, a user demoted or banned) reaches every worker of one or two servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp

from tests.support.common import wait_for
from tests.support.launcher import Gunicorn
from tests.support.load import Credentials, send, served, worker_pids
from tests.support.scaleout import all_workers, answered_by


async def refused_everywhere(
    server: Gunicorn, kind: str, creds: Credentials, tag: str, *, bound: float
) -> tuple[float, float, int]:
    """Probe `server` with a credential just logged out until every worker has refused it (401 on /postauth/).

    Returns how long after the start it was last accepted (0 if never), when every worker had refused it, and how
    many probes were accepted; then checks that a burst spread over the workers gets nothing but 401s.
    """
    assert server.proc is not None
    workers = set(worker_pids(server.proc.pid))
    started = time.monotonic()
    last_accepted, accepted = started, 0
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        probes = 0

        async def all_refused() -> bool:
            nonlocal probes, last_accepted, accepted
            probes += 1
            shot = await send(session, server.url, kind, f"{tag}-{probes}", creds, timeout=5)
            assert shot.status in {200, 401}, shot
            if shot.status == 200:
                last_accepted, accepted = time.monotonic(), accepted + 1
            refusing = {e.pid for e in served(server.log()) if e.status == 401 and e.rid.startswith(f"{tag}-")}
            return refusing >= workers

        await wait_for(all_refused, timeout=bound, what=f"every worker to refuse the {kind}")
        covered = time.monotonic() - started
        burst = await asyncio.gather(
            *(send(session, server.url, kind, f"{tag}-after-{n}", creds, timeout=5) for n in range(20))
        )
        assert {shot.status for shot in burst} == {401}, burst
    return last_accepted - started, covered, accepted


Probe = Callable[[Gunicorn, str], Awaitable[int]]


async def until_every_worker_answers(
    servers: list[Gunicorn], probe: Probe, *, old: int, new: int, tag: str, bound: float, burst: int = 20
) -> tuple[float, float]:
    """Probe both servers in turn (each probe a fresh connection, tagged `tag-N`) until every worker of both has
    answered `new`; any answer but `old` or `new` fails. Then `burst` probes at once must all answer `new`.

    Returns how many seconds after the start `old` was last answered (0 if never), and when every worker had answered
    `new`.
    """
    workers = all_workers(servers)
    started = time.monotonic()
    last_old = started
    probes = 0

    async def everyone() -> bool:
        nonlocal probes, last_old
        for server in servers:
            probes += 1
            status = await probe(server, f"{tag}-{probes}")
            assert status in {old, new}, (tag, status)
            if status == old:
                last_old = time.monotonic()
        return answered_by(servers, f"{tag}-", new) >= workers

    await wait_for(everyone, timeout=bound, what=f"every worker to answer {new} ({tag})")
    covered = time.monotonic() - started
    answers = await asyncio.gather(*(probe(servers[n % 2], f"{tag}-after-{n}") for n in range(burst)))
    assert set(answers) <= {new}, (tag, answers)
    return last_old - started, covered
