"""The production topology on loopback: chatterd servers behind HAProxy, their queries through PgBouncer (or not)."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extensions

from tests.support.haproxy import HAProxy
from tests.support.launcher import Gunicorn, base_env
from tests.support.load import Shot
from tests.support.pgbouncer import PgBouncer

DIRECT_SUFFIX = "-direct"  # application_name of a server's direct connections (LISTEN, migrations)


def dbname(dsn: str) -> str:
    """The database a libpq DSN names."""
    return str(psycopg2.extensions.parse_dsn(dsn)["dbname"])


@dataclass
class Topology:
    """Servers named s1, s2… sharing one database: queries through PgBouncer (when given), LISTEN on a direct one."""

    bouncer: PgBouncer | None
    database: str  # the direct DSN of the database
    folder: Path
    env: dict[str, str]  # what every server shares (SECRET_KEY, Google, throttles…)
    workers: int = 2
    extra_args: tuple[str, ...] = ()
    servers: dict[str, Gunicorn] = field(default_factory=dict)
    haproxy: HAProxy | None = None
    _generation: Counter[str] = field(default_factory=Counter)

    def server_env(self, name: str) -> dict[str, str]:
        """One server's environment: its connections carry its name, so PgBouncer and Postgres can tell them apart."""
        pooled = f"chatterd-{name}"
        return base_env(
            **self.env,
            DATABASE_URL=(
                self.bouncer.url(dbname(self.database), application_name=pooled)
                if self.bouncer
                else psycopg2.extensions.make_dsn(self.database, application_name=pooled)
            ),
            DATABASE_LISTEN_URL=psycopg2.extensions.make_dsn(self.database, application_name=pooled + DIRECT_SUFFIX),
            CHATTERD_VAR_DIR=str(self.folder / name),
        )

    def _server(self, name: str, port: int | None = None) -> Gunicorn:
        self._generation[name] += 1
        log = self.folder / f"{name}.{self._generation[name]}.log"
        return Gunicorn(self.server_env(name), log, workers=self.workers, extra_args=self.extra_args, port=port)

    async def start_servers(self, names: list[str]) -> None:
        """Start these servers all at once (a cold start when the database is new)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fresh = {name: self._server(name) for name in names}
        self.servers.update(fresh)
        await asyncio.gather(*(server.start() for server in fresh.values()))

    async def start_haproxy(self) -> HAProxy:
        """HAProxy in front of every server, once they all pass their health checks."""
        self.haproxy = HAProxy(self.folder / "haproxy", {name: s.port for name, s in self.servers.items()})
        await self.haproxy.start()
        return self.haproxy

    async def restart(self, name: str) -> float:
        """Drain at HAProxy, SIGTERM, start anew on the same port, back in; the seconds it was out."""
        assert self.haproxy is not None
        started = time.monotonic()
        await self.haproxy.drain(name, timeout=30)
        old = self.servers[name]
        assert await old.stop() == 0, old.log()
        self.servers[name] = self._server(name, port=old.port)
        await self.servers[name].start()
        await self.haproxy.ready(name, timeout=30)
        return time.monotonic() - started

    async def stop(self) -> list[int]:
        """Stop HAProxy, then every server; their exit codes."""
        if self.haproxy is not None:
            await self.haproxy.stop()
        codes = await asyncio.gather(*(server.stop() for server in self.servers.values() if server.proc is not None))
        return list(codes)

    def logs(self) -> str:
        """Every server log of every generation."""
        return "".join(path.read_text(errors="replace") for path in sorted(self.folder.glob("s*.log")))


@dataclass(frozen=True, slots=True)
class Throughput:
    """What a load did over a window: answers per second and latency."""

    requests: int
    seconds: float
    median: float
    p99: float

    @classmethod
    def of(cls, shots: list[Shot], since: float, seconds: float) -> Throughput:
        """The requests started in the `seconds` after `since` (time.monotonic())."""
        window = sorted(s.elapsed for s in shots if since <= s.started < since + seconds)
        return cls(len(window), seconds, statistics.median(window), window[int(len(window) * 0.99)])

    def render(self, workers: int) -> str:
        """One line for a person."""
        rate = self.requests / self.seconds
        return (
            f"{rate:.0f} req/s, {rate / workers:.0f} req/s per worker ({workers} workers);"
            f" median {self.median * 1000:.0f} ms, p99 {self.p99 * 1000:.0f} ms"
        )


@dataclass
class ConnectionPeaks:
    """The most connections seen at once while sampling, by server name and in total ("total")."""

    pooled: Counter[str] = field(default_factory=Counter)  # on DATABASE_URL: to PgBouncer, or to Postgres
    direct: Counter[str] = field(default_factory=Counter)  # on DATABASE_LISTEN_URL: LISTEN, migrations
    postgres: int = 0  # Postgres' sessions on the database, whoever holds them
    waiting: int = 0  # PgBouncer's clients waiting for a server connection
    samples: int = 0

    def add(self, pooled: Counter[str], direct: Counter[str], postgres: int, waiting: int) -> None:
        for peaks, sample in ((self.pooled, pooled), (self.direct, direct)):
            for key, value in (*sample.items(), ("total", sample.total())):
                peaks[key] = max(peaks[key], value)
        self.postgres = max(self.postgres, postgres)
        self.waiting = max(self.waiting, waiting)
        self.samples += 1

    def render(self, names: list[str]) -> str:
        """One line for a person."""
        per_server = ", ".join(f"{name} {self.pooled[name]} + {self.direct[name]}" for name in names)
        return (
            f"peak connections per server (pooled + direct): {per_server}; in all {self.pooled['total']} pooled"
            f" + {self.direct['total']} direct; Postgres sessions {self.postgres}; clients waiting {self.waiting}"
            f" ({self.samples} samples)"
        )


ACTIVITY = """
SELECT application_name, count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY application_name
"""


def _by_server(names: list[str]) -> Counter[str]:
    """chatterd-s1 → s1, chatterd-s1-direct → s1."""
    return Counter(name.removeprefix("chatterd-").removesuffix(DIRECT_SUFFIX) for name in names)


class ConnectionSampler:
    """Counts connections every `interval` seconds until stopped: PgBouncer's clients and Postgres' sessions."""

    def __init__(self, bouncer: PgBouncer | None, database: str, interval: float = 0.25) -> None:
        self.bouncer = bouncer
        self.database = database
        self.interval = interval
        self.peaks = ConnectionPeaks()

    def _sample(self, conn: psycopg2.extensions.connection) -> None:
        with conn.cursor() as cur:
            cur.execute(ACTIVITY)
            sessions: list[str] = [app for app, n in cur.fetchall() for _ in range(n)]
        direct = _by_server([app for app in sessions if app.endswith(DIRECT_SUFFIX)])
        waiting = 0
        if self.bouncer is None:
            pooled = _by_server([app for app in sessions if not app.endswith(DIRECT_SUFFIX)])
        else:
            name = dbname(self.database)
            pooled = _by_server(
                [row["application_name"] for row in self.bouncer.show("CLIENTS") if row["database"] == name]
            )
            waiting = sum(int(row["cl_waiting"]) for row in self.bouncer.show("POOLS") if row["database"] == name)
        self.peaks.add(pooled, direct, len(sessions), waiting)

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until `stop` is set."""
        conn = await asyncio.to_thread(psycopg2.connect, self.database, connect_timeout=5)
        conn.autocommit = True
        try:
            while not stop.is_set():
                await asyncio.to_thread(self._sample, conn)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            conn.close()
