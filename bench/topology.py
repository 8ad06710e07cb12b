"""Three chatterd servers behind HAProxy, their queries through PgBouncer or straight to Postgres: req/s, connections.

    python -m bench.topology                              # 5 s warm-up, then 20 s of load from 16 clients, each way
    python -m bench.topology --duration 60 --clients 32   # longer, harder

It starts its own Postgres, fake Google, PgBouncer (transaction mode), three servers of two workers and HAProxy (round
robin, health checks on /readyz) in a temporary folder, runs the same mixed load through HAProxy twice — the servers'
DATABASE_URL on PgBouncer, then on Postgres itself; DATABASE_LISTEN_URL direct both times — and stops everything. It
prints requests per second (per worker too), latency, and the peak connections each server holds and Postgres serves.
It needs Debian's pgbouncer and haproxy (`make test-slow` installs them) and exits 1 when any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.servers import FakeGoogleServer, execute, with_database
from db.embedded import EmbeddedPostgres
from tests.support.haproxy import HAPROXY
from tests.support.haproxy import MISSING as HAPROXY_MISSING
from tests.support.load import ANON, CHATTERID, JWT, READ, Credentials, MixedLoad, google_sign_in
from tests.support.pgbouncer import MISSING as PGBOUNCER_MISSING
from tests.support.pgbouncer import PGBOUNCER, PgBouncer
from tests.support.topology import ConnectionPeaks, ConnectionSampler, Throughput, Topology

KINDS = (READ, ANON, CHATTERID, JWT, READ)


@dataclass(frozen=True, slots=True)
class Run:
    """One way of connecting, measured."""

    label: str
    throughput: Throughput
    peaks: ConnectionPeaks
    failures: dict[str, int]


@dataclass(frozen=True, slots=True)
class Shape:
    """What every run is given."""

    servers: int
    workers: int
    clients: int
    warmup: float
    duration: float
    bouncer_pool: int


async def measure(
    label: str, postgres_url: str, root: Path, google: FakeGoogleServer, shape: Shape, pooled: bool
) -> Run:
    """One topology on a new database: start it, warm up, load it through HAProxy for `duration` seconds, stop it."""
    name = "topology_pooled" if pooled else "topology_direct"
    await asyncio.to_thread(execute, postgres_url, f"CREATE DATABASE {name}")
    database = with_database(postgres_url, name)
    bouncer = PgBouncer(postgres_url, root / f"{name}-pgbouncer", pool_size=shape.bouncer_pool) if pooled else None
    env = {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "GOOGLE_CLIENT_IDS": google.CLIENT_ID,
        "GOOGLE_CERTS_URL": google.certs_url,
        "TRUSTED_PROXIES": "1",
    }
    topology = Topology(bouncer, database, root / name, env, workers=shape.workers)
    names = [f"s{n + 1}" for n in range(shape.servers)]
    try:
        if bouncer is not None:
            await bouncer.start()
        await topology.start_servers(names)
        haproxy = await topology.start_haproxy()
        async with aiohttp.ClientSession() as session:
            signed_in = await google_sign_in(session, haproxy.url, google.id_token("bench", "Bench"), google.CLIENT_ID)
        creds = Credentials(chatter_id=signed_in["chatterID"], token=signed_in["token"])
        load = MixedLoad(
            [haproxy.url],
            clients=shape.clients,
            max_requests=10**7,  # the duration ends it long before
            duration=shape.warmup + shape.duration,
            timeout=10,
            kinds=KINDS,
            creds=creds,
        )
        sampler = ConnectionSampler(bouncer, database)
        stop = asyncio.Event()
        async with load:
            await asyncio.sleep(shape.warmup)  # the warm-up, not a wait for an event
            started = time.monotonic()
            sampling = asyncio.create_task(sampler.run(stop))
            await asyncio.sleep(shape.duration)  # the window being measured
            stop.set()
            await sampling
        failures = {str(k): v for k, v in load.statuses().items() if k != 200}
        return Run(label, Throughput.of(load.shots, started, shape.duration), sampler.peaks, failures)
    finally:
        await topology.stop()
        if bouncer is not None:
            await bouncer.stop()


def render(shape: Shape, runs: list[Run]) -> str:
    """The figures, for a person."""
    workers = shape.servers * shape.workers
    lines = [
        f"topology: {shape.servers} servers x {shape.workers} workers behind HAProxy, {shape.clients} clients,"
        f" {shape.duration:.0f} s measured after {shape.warmup:.0f} s of warm-up; PgBouncer pool {shape.bouncer_pool}",
    ]
    names = [f"s{n + 1}" for n in range(shape.servers)]
    for run in runs:
        lines.append(f"  {run.label}: {run.throughput.render(workers)}")
        lines.append(f"    {run.peaks.render(names)}")
        if run.failures:
            lines.append(f"    FAILED requests: {run.failures}")
    return "\n".join(lines)


async def bench(shape: Shape) -> list[Run]:
    """Both runs on one Postgres of the bench's own, removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="chatterd-topology-"))
    postgres = EmbeddedPostgres(root / "pg")
    google = FakeGoogleServer()
    try:
        url = await asyncio.to_thread(postgres.start)
        await google.start()
        return [
            await measure("through PgBouncer", url, root, google, shape, pooled=True),
            await measure("straight to Postgres", url, root, google, shape, pooled=False),
        ]
    finally:
        await google.stop()
        await asyncio.to_thread(postgres.stop)
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the bench from the command line; exit 1 when a request failed, 2 when a tool is missing."""
    parser = argparse.ArgumentParser(prog="python -m bench.topology", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds of measured load per run (default 20)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before measuring (default 5)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--servers", type=int, default=3, help="chatterd servers (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server (default 2)")
    parser.add_argument("--bouncer-pool", type=int, default=10, help="PgBouncer's server connections (default 10)")
    args = parser.parse_args(argv)
    for tool, missing in ((PGBOUNCER, PGBOUNCER_MISSING), (HAPROXY, HAPROXY_MISSING)):
        if tool is None:
            sys.stderr.write(missing + "\n")
            return 2
    shape = Shape(args.servers, args.workers, args.clients, args.warmup, args.duration, args.bouncer_pool)
    runs = asyncio.run(bench(shape))
    sys.stdout.write(render(shape, runs) + "\n")
    return 1 if any(run.failures for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
