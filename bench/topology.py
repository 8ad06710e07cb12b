"""Three chatterd servers behind HAProxy, their queries through PgBouncer or straight to Postgres: req/s, connections.

    python -m bench.topology                           # 3 rounds each way of 10 s after 3 s of warm-up, 16 clients
    python -m bench.topology --clients 48 --rounds 5   # harder, longer

It starts its own Postgres and fake Google, then two copies of the topology on databases of their own, each of three
servers of two workers behind HAProxy (round robin, health checks on /readyz): one with the servers' DATABASE_URL on
PgBouncer in transaction mode, one with it on Postgres itself (DATABASE_LISTEN_URL direct in both). It loads them
through HAProxy in turns, round after round, so that the machine's other work weighs on both alike, and stops
everything. It prints requests per second (per worker too) and latency of the median round, every round's rate, and
the peak connections each server holds and Postgres serves. It needs Debian's pgbouncer and haproxy (`make test-slow`
installs them) and exits 1 when any request failed, 2 when one of them is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
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
class Shape:
    """What every run is given."""

    servers: int
    workers: int
    clients: int
    warmup: float
    duration: float
    rounds: int
    bouncer_pool: int

    @property
    def names(self) -> list[str]:
        return [f"s{n + 1}" for n in range(self.servers)]


@dataclass
class Arm:
    """One way of connecting: a topology on a database of its own, measured in turns with the other."""

    label: str
    topology: Topology
    creds: Credentials | None = None
    runs: list[Throughput] = field(default_factory=list)
    peaks: ConnectionPeaks = field(default_factory=ConnectionPeaks)
    failures: Counter[str] = field(default_factory=Counter)

    async def start(self, shape: Shape, google: FakeGoogleServer) -> None:
        """PgBouncer (if any), the servers at once, HAProxy; then a sign-in for the load's credentials."""
        if self.topology.bouncer is not None:
            await self.topology.bouncer.start()
        await self.topology.start_servers(shape.names)
        haproxy = await self.topology.start_haproxy()
        async with aiohttp.ClientSession() as session:
            signed_in = await google_sign_in(session, haproxy.url, google.id_token("bench", "Bench"), google.CLIENT_ID)
        self.creds = Credentials(chatter_id=signed_in["chatterID"], token=signed_in["token"])

    async def measure(self, shape: Shape) -> None:
        """Warm up, then load it through HAProxy for `duration` seconds while counting connections."""
        assert self.topology.haproxy is not None
        load = MixedLoad(
            [self.topology.haproxy.url],
            clients=shape.clients,
            max_requests=10**7,  # the duration ends it long before
            duration=shape.warmup + shape.duration,
            timeout=10,
            kinds=KINDS,
            creds=self.creds,
        )
        sampler = ConnectionSampler(self.topology.bouncer, self.topology.database)
        sampler.peaks = self.peaks
        stop = asyncio.Event()
        async with load:
            await asyncio.sleep(shape.warmup)  # the warm-up, not a wait for an event
            started = time.monotonic()
            sampling = asyncio.create_task(sampler.run(stop))
            await asyncio.sleep(shape.duration)  # the window being measured
            stop.set()
            await sampling
        self.runs.append(Throughput.of(load.shots, started, shape.duration))
        self.failures.update({str(status): n for status, n in load.statuses().items() if status != 200})

    async def stop(self) -> None:
        await self.topology.stop()
        if self.topology.bouncer is not None:
            await self.topology.bouncer.stop()

    def render(self, shape: Shape) -> list[str]:
        """Its lines for a person: the median round, every round's rate, the connections at their peak."""
        workers = shape.servers * shape.workers
        middle = sorted(self.runs, key=lambda run: run.requests)[len(self.runs) // 2]
        rates = ", ".join(f"{run.requests / run.seconds:.0f}" for run in self.runs)
        lines = [f"  {self.label}: {middle.render(workers)} (median round; req/s by round: {rates})"]
        lines.append(f"    {self.peaks.render(shape.names)}")
        if self.failures:
            lines.append(f"    FAILED requests: {dict(self.failures)}")
        return lines


async def bench(shape: Shape) -> list[Arm]:
    """Both topologies on one Postgres of the bench's own, measured in turns; everything removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="chatterd-topology-"))
    postgres = EmbeddedPostgres(root / "pg")
    google = FakeGoogleServer()
    arms: list[Arm] = []
    try:
        url = await asyncio.to_thread(postgres.start)
        await google.start()
        env = {
            "SECRET_KEY": secrets.token_urlsafe(48),
            "GOOGLE_CLIENT_IDS": google.CLIENT_ID,
            "GOOGLE_CERTS_URL": google.certs_url,
            "TRUSTED_PROXIES": "1",
        }
        for label, name, pooled in (("through PgBouncer", "pooled", True), ("straight to Postgres", "direct", False)):
            await asyncio.to_thread(execute, url, f"CREATE DATABASE topology_{name}")
            database = with_database(url, f"topology_{name}")
            bouncer = PgBouncer(url, root / f"{name}-pgbouncer", pool_size=shape.bouncer_pool) if pooled else None
            arms.append(Arm(label, Topology(bouncer, database, root / name, env, workers=shape.workers)))
            await arms[-1].start(shape, google)
        for _ in range(shape.rounds):
            for arm in arms:
                await arm.measure(shape)
        return arms
    finally:
        for arm in arms:
            await arm.stop()
        await google.stop()
        await asyncio.to_thread(postgres.stop)
        shutil.rmtree(root, ignore_errors=True)


def render(shape: Shape, arms: list[Arm]) -> str:
    """The figures, for a person."""
    lines = [
        f"topology: {shape.servers} servers x {shape.workers} workers behind HAProxy, {shape.clients} clients;"
        f" {shape.rounds} rounds of {shape.duration:.0f} s measured after {shape.warmup:.0f} s of warm-up, each way in"
        f" turn; PgBouncer pool {shape.bouncer_pool}",
    ]
    for arm in arms:
        lines.extend(arm.render(shape))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the bench from the command line; exit 1 when a request failed, 2 when a tool is missing."""
    parser = argparse.ArgumentParser(prog="python -m bench.topology", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds of measured load per round (default 10)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of load before each round (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds each way, in turns (default 3)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--servers", type=int, default=3, help="chatterd servers (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server (default 2)")
    parser.add_argument("--bouncer-pool", type=int, default=10, help="PgBouncer's server connections (default 10)")
    args = parser.parse_args(argv)
    for tool, missing in ((PGBOUNCER, PGBOUNCER_MISSING), (HAPROXY, HAPROXY_MISSING)):
        if tool is None:
            sys.stderr.write(missing + "\n")
            return 2
    shape = Shape(args.servers, args.workers, args.clients, args.warmup, args.duration, args.rounds, args.bouncer_pool)
    arms = asyncio.run(bench(shape))
    sys.stdout.write(render(shape, arms) + "\n")
    return 1 if any(arm.failures for arm in arms) else 0


if __name__ == "__main__":
    sys.exit(main())
