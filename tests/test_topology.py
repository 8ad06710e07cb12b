"""Production topology: three servers of two workers behind a real HAProxy, Postgres behind a real PgBouncer.

PgBouncer runs in transaction pooling mode (the servers' queries go through it; LISTEN and the migration lock use
DATABASE_LISTEN_URL, a direct connection); HAProxy balances round robin with no stickiness and checks /readyz.
Under a mixed load through HAProxy: reads see the writes just acknowledged, a logout is refused by every worker of
every server within a second, sign-in throttles are shared, and a rolling restart fails no request. Then ten cold
starts of three servers at once on a new database all succeed. `pytest -s` prints the figures docs/operations.md gives.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2
import pytest

from db.migrations import load_migrations
from tests.support.common import CLIENT_ID
from tests.support.haproxy import HAPROXY, SERVED_BY
from tests.support.haproxy import MISSING as HAPROXY_MISSING
from tests.support.load import ACCESS_LOG_ARGS, ANON, CHATTERID, JWT, READ, Credentials, MixedLoad, google_sign_in, send
from tests.support.pgbouncer import MISSING as PGBOUNCER_MISSING
from tests.support.pgbouncer import PGBOUNCER, PgBouncer
from tests.support.probes import refused_everywhere
from tests.support.topology import ConnectionPeaks, ConnectionSampler, Throughput, Topology

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PGBOUNCER is None, reason=PGBOUNCER_MISSING),
    pytest.mark.skipif(HAPROXY is None, reason=HAPROXY_MISSING),
]

NAMES = ["s1", "s2", "s3"]
WORKERS = 2
BOUNCER_POOL = 10  # PgBouncer's server connections for the database
MAX_FAILURES = 3
SIGNUPS_PER_ADDRESS = 4
PASSWORD = "correct horse battery"
STEADY_SECONDS = 10.0
LOAD_CLIENTS = 16


@pytest.fixture
async def bouncer(postgres_server_url: str, tmp_path: Path) -> AsyncIterator[PgBouncer]:
    """One PgBouncer in transaction mode for the test."""
    bouncer = PgBouncer(postgres_server_url, tmp_path / "pgbouncer", pool_size=BOUNCER_POOL)
    await bouncer.start()
    yield bouncer
    await bouncer.stop()
    assert "not linked" not in bouncer.log()


@pytest.fixture
async def topology(
    bouncer: PgBouncer, make_database: Any, google_certs_url: str, tmp_path: Path
) -> AsyncIterator[Topology]:
    """Three servers on a new database, started at once, behind HAProxy."""
    env = {
        "GOOGLE_CERTS_URL": google_certs_url,
        "GOOGLE_CLIENT_IDS": CLIENT_ID,
        "TRUSTED_PROXIES": "1",
        "LOGIN_MAX_FAILURES": str(MAX_FAILURES),
        "SIGNUP_MAX_PER_ADDRESS": str(SIGNUPS_PER_ADDRESS),
        "ACCESS_LOG": "-",
        "PASSWORD_TIME_COST": "1",
        "PASSWORD_MEMORY_COST": str(8 * 1024),
    }
    topology = Topology(bouncer, make_database(), tmp_path, env, workers=WORKERS, extra_args=ACCESS_LOG_ARGS)
    try:
        await topology.start_servers(NAMES)
        await topology.start_haproxy()
        yield topology
    finally:
        codes = await topology.stop()
    assert codes == [0] * len(NAMES)
    assert "Traceback" not in topology.logs()


async def request(
    session: aiohttp.ClientSession, method: str, url: str, *, token: str | None = None, **kwargs: Any
) -> tuple[int, Any, str]:
    """One request: its status, its JSON body (None when empty), and the server HAProxy says answered."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.request(method, url, headers=headers, **kwargs) as resp:
        body = await resp.json() if resp.content_length else None
        return resp.status, body, resp.headers.get(SERVED_BY, "")


class ReadYourWrites:
    """Post through HAProxy, then read through HAProxy on new connections: the post is always there."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.checks = 0
        self.crossed = Counter[tuple[str, str]]()  # (wrote on, read on) where they differ

    async def run(self, stop: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(force_close=True)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            while not stop.is_set():
                status, newest, _ = await request(session, "GET", f"{self.url}/getchatts/", params={"limit": "1"})
                assert status == 200, newest
                message = f"ryw-{self.checks}"
                status, _, wrote_on = await request(
                    session, "POST", f"{self.url}/postchatt/", json={"username": "ryw", "message": message}
                )
                assert status == 200
                params = {"after": newest[-1][2]} if newest else {}
                status, rows, read_on = await request(session, "GET", f"{self.url}/getchatts/", params=params)
                assert status == 200 and message in [row[1] for row in rows], (message, rows)
                self.checks += 1
                if wrote_on != read_on:
                    self.crossed[wrote_on, read_on] += 1


async def check_logout(topology: Topology, google: Any) -> list[str]:
    """Sign in through HAProxy; log the JWT, then the chatterID, out through HAProxy: every worker refuses each."""
    assert topology.haproxy is not None
    async with aiohttp.ClientSession() as session:
        signed_in = await google_sign_in(
            session, topology.haproxy.url, google.id_token(client_id=CLIENT_ID, sub="leaver", name="Lee"), CLIENT_ID
        )
    figures = []
    for kind, creds in (
        (JWT, Credentials(token=signed_in["token"])),
        (CHATTERID, Credentials(chatter_id=signed_in["chatterID"])),
    ):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            for server in topology.servers.values():  # accepted (and cached) by every worker first
                before = await asyncio.gather(
                    *(send(session, server.url, kind, f"pre-{kind}-{n}", creds, timeout=5) for n in range(12))
                )
                assert {shot.status for shot in before} == {200}, before
            token = creds.token or creds.chatter_id
            status, _, _ = await request(session, "POST", f"{topology.haproxy.url}/logout", token=token)
            assert status == 204
        results = await asyncio.gather(
            *(
                refused_everywhere(server, kind, creds, f"{kind}-out-{name}", bound=1.0)
                for name, server in topology.servers.items()
            )
        )
        last_accepted = max(accepted_for for accepted_for, _, _ in results)
        covered = max(covered for _, covered, _ in results)
        accepted = sum(accepted for _, _, accepted in results)
        assert last_accepted < 1.0
        figures.append(
            f"{kind} logged out: accepted {accepted} times after, all {len(NAMES) * WORKERS} workers seen refusing"
            f" within {covered * 1000:.0f} ms"
        )
    return figures


async def check_throttles(topology: Topology) -> str:
    """Failed logins and sign-ups through HAProxy, counted once for all servers: each server then says 429."""
    assert topology.haproxy is not None
    url = topology.haproxy.url
    served_by = Counter[str]()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for n in range(SIGNUPS_PER_ADDRESS):
            status, body, on = await request(
                session, "POST", f"{url}/register", json={"username": f"tess{n}", "password": PASSWORD}
            )
            assert status == 201, body
            served_by[on] += 1
        for _ in range(MAX_FAILURES):
            status, body, on = await request(
                session, "POST", f"{url}/login", json={"username": "tess0", "password": "wrong"}
            )
            assert status == 401, body
            served_by[on] += 1
        for server in topology.servers.values():
            status, body, _ = await request(
                session, "POST", f"{server.url}/login", json={"username": "tess0", "password": PASSWORD}
            )
            assert status == 429, body
            status, body, _ = await request(
                session, "POST", f"{server.url}/register", json={"username": "late", "password": PASSWORD}
            )
            assert status == 429, body
    return (
        f"{SIGNUPS_PER_ADDRESS} sign-ups and {MAX_FAILURES} failed logins served by {dict(served_by)};"
        " then 429 on every server"
    )


@pytest.mark.timeout(600)
async def test_three_servers_behind_haproxy_and_pgbouncer_under_mixed_load(topology, google, capsys):
    """Mixed load through HAProxy; read-your-writes, logouts, throttles, then a rolling restart: no request fails."""
    haproxy = topology.haproxy
    assert haproxy is not None
    async with aiohttp.ClientSession() as session:
        signed_in = await google_sign_in(
            session, haproxy.url, google.id_token(client_id=CLIENT_ID, sub="loader", name="Lo"), CLIENT_ID
        )
    creds = Credentials(chatter_id=signed_in["chatterID"], token=signed_in["token"])
    sampler = ConnectionSampler(topology.bouncer, topology.database)
    ryw = ReadYourWrites(haproxy.url)
    stop = asyncio.Event()
    load = MixedLoad(
        [haproxy.url],
        clients=LOAD_CLIENTS,
        max_requests=2_000_000,
        duration=400,
        timeout=20,
        kinds=(READ, ANON, CHATTERID, JWT, READ),
        creds=creds,
        tag="mixed",
    )
    figures = []
    async with load:
        sampling = asyncio.create_task(sampler.run(stop))
        checking = asyncio.create_task(ryw.run(stop))
        started = time.monotonic()
        await asyncio.sleep(STEADY_SECONDS)  # the steady-state window being measured, not a wait for an event
        steady = Throughput.of(load.shots, started, STEADY_SECONDS)
        figures.append(f"steady {STEADY_SECONDS:.0f} s through HAProxy: {steady.render(len(NAMES) * WORKERS)}")
        steady_peaks, sampler.peaks = sampler.peaks, ConnectionPeaks()
        figures.append("steady: " + steady_peaks.render(NAMES))

        figures.extend(await check_logout(topology, google))
        figures.append(await check_throttles(topology))

        restarted_at = time.monotonic()
        outages = [await topology.restart(name) for name in NAMES]
        figures.append(
            f"rolling restart: {', '.join(f'{s:.1f}' for s in outages)} s out of rotation each;"
            f" {load.count(since=restarted_at)} requests during it"
        )
        stop.set()
        await asyncio.gather(sampling, checking)
    figures.append("whole run: " + sampler.peaks.render(NAMES))
    statuses = load.statuses()
    figures.append(f"load: {dict(statuses)} in {len(load.shots)} requests; read-your-writes {ryw.checks} checks")
    with capsys.disabled():
        print("\ntopology:\n  " + "\n  ".join(figures))

    assert load.ended_by == "stop"
    assert set(statuses) == {200}, statuses
    assert ryw.checks >= 20 and ryw.crossed, (ryw.checks, ryw.crossed)
    # Postgres holds PgBouncer's few server connections and one LISTEN per worker, whatever the servers' pools hold.
    assert steady_peaks.postgres <= BOUNCER_POOL + len(NAMES) * WORKERS
    stats = await haproxy.stats()
    assert {name: row["hrsp_5xx"] for name, row in stats.items()} == dict.fromkeys(NAMES, "0")


@pytest.mark.timeout(900)
async def test_ten_cold_starts_of_three_servers_through_pgbouncer(bouncer, make_database, tmp_path, capsys):
    """Three servers of two workers start at once on a new database through PgBouncer, ten times: all serve."""
    versions = [m.version for m in load_migrations()]
    took = []
    for n in range(10):
        topology = Topology(bouncer, make_database(), tmp_path / f"round{n}", {}, workers=WORKERS)
        started = time.monotonic()
        try:
            await topology.start_servers(NAMES)
            took.append(time.monotonic() - started)
            async with aiohttp.ClientSession() as session:
                for server in topology.servers.values():
                    async with session.get(f"{server.url}/readyz") as resp:
                        assert resp.status == 200, await resp.text()
        finally:
            codes = await topology.stop()
        logs = topology.logs()
        assert codes == [0] * len(NAMES), logs
        assert "Traceback" not in logs, logs
        assert logs.count("applied migration") == len(versions), logs  # each by exactly one of the six workers
        with psycopg2.connect(topology.database) as conn, conn.cursor() as cur:
            cur.execute("SELECT version FROM schema_migrations ORDER BY version")
            assert [row[0] for row in cur.fetchall()] == versions
        conn.close()
    with capsys.disabled():
        print(
            f"\ncold starts: 10 of 10, three servers each, {min(took):.1f}-{max(took):.1f} s to all six workers ready"
        )
