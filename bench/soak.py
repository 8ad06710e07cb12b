"""A mixed soak: chatterd under gunicorn for a minute of reads and posts; no errors, worker memory flat.

    python -m bench.soak                    # 10 s warm-up, then 60 s of load from 16 clients
    python -m bench.soak --duration 600     # longer

It starts its own Postgres and fake Google in a temporary folder, and stops everything at the end. It prints the
figures and exits 1 when any request failed or a worker's RSS at the end is more than 10 % over its RSS after the
warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.servers import FakeGoogleServer, Gunicorn, Postgres, ServerError, rss_kib
from tests.support.load import ANON, CHATTERID, JWT, READ, Credentials, MixedLoad, google_sign_in

RSS_LIMIT = 1.10  # a worker's RSS at the end over its RSS after the warm-up


@dataclass(slots=True)
class SoakReport:
    """What a soak measured."""

    duration: float
    clients: int
    requests: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    p50: float = 0.0
    p99: float = 0.0
    slowest: float = 0.0
    rss_warm: dict[int, int] = field(default_factory=dict)  # KiB per worker pid
    rss_end: dict[int, int] = field(default_factory=dict)
    rss_peak: dict[int, int] = field(default_factory=dict)
    ended_by: str = ""

    @property
    def errors(self) -> int:
        """Requests that did not get a 200."""
        return sum(count for outcome, count in self.outcomes.items() if outcome != "200")

    @property
    def growth(self) -> dict[int, float]:
        """Each worker's RSS at the end over its RSS after the warm-up."""
        return {pid: self.rss_end[pid] / self.rss_warm[pid] for pid in self.rss_warm if pid in self.rss_end}

    @property
    def ok(self) -> bool:
        """No errors, the same workers throughout, and memory flat."""
        same_workers = set(self.rss_warm) == set(self.rss_end)
        return self.requests > 0 and not self.errors and same_workers and max(self.growth.values()) <= RSS_LIMIT

    def render(self) -> str:
        """The figures, for a person."""
        lines = [
            f"soak: {self.requests:,} requests in {self.duration:.0f} s from {self.clients} clients"
            f" ({self.requests / self.duration:,.0f} req/s), stopped by {self.ended_by}",
            f"  outcomes: {self.outcomes}",
            f"  latency: p50 {self.p50 * 1000:.1f} ms, p99 {self.p99 * 1000:.1f} ms,"
            f" slowest {self.slowest * 1000:.0f} ms",
        ]
        for pid in sorted(self.rss_warm):
            end = self.rss_end.get(pid)
            lines.append(
                f"  worker {pid}: RSS {self.rss_warm[pid] / 1024:.1f} MiB after warm-up,"
                f" {end / 1024 if end else float('nan'):.1f} MiB at the end"
                f" ({self.growth.get(pid, float('nan')):.3f}x, limit {RSS_LIMIT:.2f}x),"
                f" peak {self.rss_peak.get(pid, 0) / 1024:.1f} MiB"
            )
        lines.append(f"  verdict: {'OK' if self.ok else 'FAILED'}")
        return "\n".join(lines)


async def _sample_rss(pids: list[int], peak: dict[int, int], stop: asyncio.Event, every: float) -> None:
    """Record each worker's highest RSS until `stop` is set."""
    while not stop.is_set():
        for pid in pids:
            peak[pid] = max(peak.get(pid, 0), rss_kib(pid))
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            pass


async def _credentials(url: str, google: FakeGoogleServer) -> Credentials:
    """A JWT from /register + /login, and a chatterID from /adduser/."""
    account = {"username": f"soak-{secrets.token_hex(4)}", "password": secrets.token_urlsafe(16)}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/register", json=account) as resp:
            if resp.status != 201:
                raise ServerError(f"/register answered {resp.status}: {await resp.text()}")
        async with session.post(f"{url}/login", json=account) as resp:
            if resp.status != 200:
                raise ServerError(f"/login answered {resp.status}: {await resp.text()}")
            token = (await resp.json())["token"]
        signed_in = await google_sign_in(session, url, google.id_token("soak", "Soak Test"), google.CLIENT_ID)
    return Credentials(chatter_id=signed_in["chatterID"], token=token)


async def soak(*, duration: float = 60, warmup: float = 10, clients: int = 16, workers: int = 2) -> SoakReport:
    """Start Postgres, a fake Google and chatterd; warm up; run the mixed load for `duration` seconds; measure."""
    root = Path(tempfile.mkdtemp(prefix="chatterd-soak-"))
    postgres = Postgres(root / "pg")
    google = FakeGoogleServer()
    server: Gunicorn | None = None
    try:
        url = await asyncio.to_thread(postgres.start)
        await google.start()
        env = {
            **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY"}},
            "DATABASE_URL": url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "CHATTERD_VAR_DIR": str(root / "var"),
            "GOOGLE_CLIENT_IDS": google.CLIENT_ID,
            "GOOGLE_CERTS_URL": google.certs_url,
            "ACCESS_LOG": "",
        }
        server = Gunicorn(
            "web:create_app",
            env=env,
            log_path=root / "gunicorn.log",
            control_socket=root / "gunicorn.ctl",
            ready_marker="chatterd worker",
            probe="/getchatts/",
            workers=workers,
        )
        await server.start()
        creds = await _credentials(server.url, google)
        kinds = (READ, ANON, CHATTERID, JWT)
        bound = 10**7  # requests: the duration ends the load long before

        warm = MixedLoad(
            [server.url], clients=clients, max_requests=bound, duration=warmup, timeout=10, kinds=kinds, creds=creds
        )
        await warm.run()
        pids = server.worker_pids()
        report = SoakReport(duration=duration, clients=clients)
        report.rss_warm = {pid: rss_kib(pid) for pid in pids}

        load = MixedLoad(
            [server.url], clients=clients, max_requests=bound, duration=duration, timeout=10, kinds=kinds, creds=creds
        )
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_rss(pids, report.rss_peak, stop, every=1.0))
        started = time.monotonic()
        await load.run()
        report.duration = time.monotonic() - started
        stop.set()
        await sampler
        report.rss_end = {pid: rss_kib(pid) for pid in server.worker_pids()}

        report.requests = len(load.shots)
        report.ended_by = load.ended_by
        report.outcomes = {str(k): v for k, v in sorted(load.statuses().items(), key=str)}
        latencies = sorted(shot.elapsed for shot in load.shots)
        if latencies:
            cuts = statistics.quantiles(latencies, n=100)
            report.p50, report.p99, report.slowest = cuts[49], cuts[98], latencies[-1]
        return report
    finally:
        if server is not None:
            await server.stop()
        await google.stop()
        await asyncio.to_thread(postgres.stop)
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the soak from the command line; exit 1 when it failed."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of measured load (default 60)")
    parser.add_argument("--warmup", type=float, default=10, help="seconds of load before the first RSS reading")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    args = parser.parse_args(argv)
    report = asyncio.run(soak(duration=args.duration, warmup=args.warmup, clients=args.clients, workers=args.workers))
    sys.stdout.write(report.render() + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
