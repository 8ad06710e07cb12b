"""The bench's scenarios, each measuring one thing against a running chatterd and judging it against its target."""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.profile import Profiler
from bench.report import ERROR, NOT_AVAILABLE, Row
from bench.servers import (
    FakeGoogleServer,
    Gunicorn,
    Postgres,
    ServerError,
    cpu_seconds,
    execute,
    rss_kib,
    wait_until,
)
from bench.wrk import WrkResult, run_wrk

logger = logging.getLogger(__name__)

GETCHATTS = "GET /getchatts/?limit=100"
MESSAGE = "A benchmark chatt, about as long as a sentence people type on a phone."
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)
# Distinct Google accounts the adduser scenario signs in, in turn: many, as in life. A handful of accounts signing in
# thousands of times a second would measure row-lock queues on those few users, which real traffic never builds.
ADDUSER_TOKENS = 1000
# The seed peer (the course's Starlette + psycopg back end) in this same harness on this machine, req/s, measured when
# the bare hello app answered PEER_HELLO_RPS. It is not run here; as the machine's load moves every figure by up to
# 2x between runs, its figures are scaled by this run's hello: ratio = (req/s / hello) / (peer req/s / PEER_HELLO_RPS).
SEED_PEER_RPS = {"postchatt": 2500.0, "postauth": 2100.0, "adduser": 500.0}
PEER_HELLO_RPS = 29_600.0
# The one-address flood: chatterd with /adduser/'s shipped per-address limit, and how much of a core Postgres may use.
FLOOD_LIMIT = 120
FLOOD_POSTGRES_CORE = 0.10


class NotAvailable(Exception):
    """The app does not serve what the scenario needs (yet)."""


@dataclass(frozen=True, slots=True)
class Options:
    """How hard and how long to drive each scenario."""

    duration: float
    runs: int
    connections: int
    threads: int
    warmup: float
    storm_connections: int
    memory_checkpoints: tuple[int, int]
    profile: bool


@dataclass(frozen=True, slots=True)
class Measurement:
    """Several wrk runs of one load, and what the database did meanwhile."""

    runs: list[WrkResult]
    queries_per_request: float | None
    worker_cpu: tuple[float, ...] = ()  # share of one core each worker used during the measured runs
    cpu_seconds: float = 0.0  # CPU time the workers used in all during the measured runs
    postgres_seconds: float = 0.0  # CPU time Postgres (every process of it) used during the measured runs

    @property
    def rps(self) -> float:
        """Median requests per second."""
        return statistics.median(r.rps for r in self.runs)

    @property
    def p50_ms(self) -> float:
        """Median of the runs' p50."""
        return statistics.median(r.p50_ms for r in self.runs)

    @property
    def p99_ms(self) -> float:
        """Median of the runs' p99."""
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def requests(self) -> int:
        """Requests completed in all runs."""
        return sum(r.requests for r in self.runs)

    def problems(self) -> list[str]:
        """Notes on failed requests, which make the figures suspect."""
        non_2xx = sum(r.non_2xx for r in self.runs)
        socket_errors = sum(r.socket_errors for r in self.runs)
        notes = []
        if self.worker_cpu:
            busy = " + ".join(f"{100 * share:.0f} %" for share in self.worker_cpu)
            notes.append(f"workers busy {busy} of a core each")
        if self.cpu_seconds and self.requests:
            notes.append(f"{1e6 * self.cpu_seconds / self.requests:.0f} µs of worker CPU per request")
        postgres_per_request = 1e6 * self.postgres_seconds / self.requests if self.requests else 0.0
        if postgres_per_request >= 1:  # not for scenarios that leave Postgres idle
            notes.append(f"{postgres_per_request:.0f} µs of Postgres CPU per request")
        if non_2xx:
            notes.append(f"{non_2xx} of {self.requests} responses were not 2xx")
        if socket_errors:
            notes.append(f"{socket_errors} socket errors or timeouts")
        return notes

    def clean(self) -> bool:
        """True when under 0.1 % of requests failed."""
        failed = sum(r.non_2xx + r.socket_errors for r in self.runs)
        return failed <= 0.001 * max(1, self.requests)


class Bench:
    """Everything the scenarios share: options, servers, the HTTP client, the baseline and earlier results."""

    def __init__(
        self,
        options: Options,
        *,
        wrk: str,
        postgres: Postgres,
        google: FakeGoogleServer,
        start_chatterd: Callable[..., Awaitable[Gunicorn]],
        start_hello: Callable[[], Awaitable[Gunicorn]],
        results_dir: Path,
        wrk_log: Path,
    ) -> None:
        self.options = options
        self.wrk = wrk
        self.postgres = postgres
        self.google = google
        self.start_chatterd = start_chatterd
        self.start_hello = start_hello
        self.results_dir = results_dir
        self.wrk_log = wrk_log
        self.chatterd: Gunicorn | None = None
        self.session: aiohttp.ClientSession | None = None
        self.hello_rps: float | None = None
        self.rps: dict[str, float] = {}
        self.profile_notes: list[tuple[str, str]] = []
        self._account: tuple[str, str] | None = None

    # ---- plumbing ------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where chatterd serves."""
        assert self.chatterd is not None
        return self.chatterd.url

    @property
    def http(self) -> aiohttp.ClientSession:
        """The bench's own HTTP client, for set-up requests."""
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
        return self.session

    async def close(self) -> None:
        """Close the HTTP client."""
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        token: str | None = None,
        url: str | None = None,
    ) -> tuple[int, Any]:
        """One request to chatterd (or the server at `url`); NotAvailable when the path is not served (404/405)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, (url or self.url) + path, json=body, headers=headers) as resp:
            raw = await resp.read()
        if resp.status in (404, 405):
            raise NotAvailable(f"{method} {path} answers {resp.status}")
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            data = raw.decode(errors="replace")
        return resp.status, data

    async def expect(
        self, status: set[int], method: str, path: str, *, body: dict[str, Any] | None = None, token: str | None = None
    ) -> Any:
        """A request that must answer one of `status`; its JSON body."""
        got, data = await self.request(method, path, body=body, token=token)
        if got not in status:
            raise ServerError(f"{method} {path} answered {got}: {data}")
        return data

    async def query_calls(self) -> int | None:
        """Statements chatterd's database has run so far, or None when they cannot be counted."""
        if not self.postgres.has_statements:
            return None
        return await asyncio.to_thread(self.postgres.statement_calls)

    async def statement_times(self) -> dict[str, tuple[int, float, float]]:
        """pg_stat_statements' calls, planning and execution milliseconds per statement so far (empty without it)."""
        if not self.postgres.has_statements:
            return {}
        return await asyncio.to_thread(self.postgres.statement_times)

    @staticmethod
    def statement_notes(
        before: dict[str, tuple[int, float, float]], after: dict[str, tuple[int, float, float]], top: int = 2
    ) -> list[str]:
        """The statements that took Postgres the most time between two readings: calls, mean planning and execution."""
        spent = []
        for query, (calls, plan, run) in after.items():
            calls0, plan0, run0 = before.get(query, (0, 0.0, 0.0))
            if calls > calls0:
                spent.append((plan + run - plan0 - run0, calls - calls0, plan - plan0, run - run0, query))
        notes = []
        for _, calls, plan, run, query in sorted(spent, reverse=True)[:top]:
            text = " ".join(query.split())
            notes.append(
                f"statement `{text[:70]}…`: {calls:,} calls, planning {1000 * plan / calls:.0f} µs"
                f" and executing {1000 * run / calls:.0f} µs each"
            )
        return notes

    async def wrk_run(self, specs: list[str], *, url: str | None = None, duration: float | None = None) -> WrkResult:
        """One wrk run with the bench's connection and thread counts."""
        return await run_wrk(
            self.wrk,
            url or self.url,
            specs,
            duration=self.options.duration if duration is None else duration,
            connections=self.options.connections,
            threads=self.options.threads,
            log_path=self.wrk_log,
        )

    async def measure(self, name: str, specs: list[str], *, server: Gunicorn | None = None) -> Measurement:
        """A warm-up, then `runs` wrk runs (the first profiled with --profile), counting database statements."""
        server = server or self.chatterd
        assert server is not None
        if self.options.warmup > 0:
            await self.wrk_run(specs, url=server.url, duration=self.options.warmup)
        before = await self.query_calls()
        pids = server.worker_pids()
        cpu_before = [cpu_seconds(pid) for pid in pids]
        postgres_before = await asyncio.to_thread(self.postgres.cpu_seconds)
        started = time.monotonic()
        results = []
        for i in range(self.options.runs):
            profiler = None
            if self.options.profile and i == 0 and server.worker_pids():
                out = self.results_dir / f"profile-{name}.txt"
                profiler = Profiler(server.worker_pids()[0], out, self.options.duration)
                await profiler.start()
            results.append(await self.wrk_run(specs, url=server.url))
            if profiler is not None:
                self.profile_notes.append((name, await profiler.finish()))
        elapsed = time.monotonic() - started
        postgres_used = await asyncio.to_thread(self.postgres.cpu_seconds) - postgres_before
        used = [cpu_seconds(pid) - cpu for pid, cpu in zip(pids, cpu_before, strict=True)]
        worker_cpu = tuple(seconds / elapsed for seconds in used)
        after = await self.query_calls()
        total = sum(r.requests for r in results)
        queries = None if before is None or after is None or not total else (after - before) / total
        return Measurement(results, queries, worker_cpu, sum(used), postgres_used)

    def row_from(self, name: str, m: Measurement) -> Row:
        """A table row for scenario `name` with the measurement's medians and its ratio to hello."""
        title, target = TITLES[name]
        row = Row(title, target, rps=m.rps, p50_ms=m.p50_ms, p99_ms=m.p99_ms, queries=m.queries_per_request)
        row.ratio = m.rps / self.hello_rps if self.hello_rps else None
        row.notes += m.problems()
        self.rps[name] = m.rps
        return row

    def ratio_at_least(self, row: Row, minimum: float) -> bool:
        """The ratio to hello is known and at least `minimum`."""
        return row.ratio is not None and row.ratio >= minimum

    def peer_at_least(self, row: Row, name: str, minimum: float) -> bool:
        """Set the row's ratio to the seed peer's figure, scaled by this run's hello; whether it is at least
        `minimum`."""
        peer = SEED_PEER_RPS[name]
        if row.rps is None or not self.hello_rps:
            return False
        row.peer_ratio = (row.rps / self.hello_rps) / (peer / PEER_HELLO_RPS)
        row.notes.append(
            f"seed peer: {peer:,.0f} req/s when hello answered {PEER_HELLO_RPS:,.0f};"
            f" {row.peer_ratio:.2f}x scaled by this run's hello, {row.rps / peer:.2f}x unscaled"
        )
        return row.peer_ratio >= minimum

    @staticmethod
    def queries_at_most(row: Row, m: Measurement, limit: float, connections: int) -> bool:
        """Statements per request within `limit`, allowing for requests wrk cut off at the end of each run."""
        if row.queries is None:
            row.notes.append("statements could not be counted (no pg_stat_statements)")
            return False
        # Up to `connections` requests per run boundary (warm-up included) finish after wrk stops counting.
        slack = limit * connections * (len(m.runs) + 1) / max(1, m.requests) + 0.005
        return row.queries <= limit + slack

    # ---- data and credentials -----------------------------------------------------------------------------------

    async def ensure_chatts(self, count: int) -> int:
        """Insert chatts until the table holds at least `count` (one INSERT … SELECT), VACUUM ANALYZE; the count."""

        def seed() -> int:
            have = int(execute(self.postgres.url, "SELECT count(*) FROM chatts")[0][0])
            if have < count:
                logger.info("seeding %d chatts", count - have)
                execute(
                    self.postgres.url,
                    "SET statement_timeout = '600s'",
                    (
                        "INSERT INTO chatts (username, message)"
                        " SELECT 'bench' || (g %% 1000), 'chatt ' || g || ': ' || %(message)s"
                        " FROM generate_series(1, %(count)s) AS g",
                        {"message": MESSAGE, "count": count - have},
                    ),
                    # VACUUM too: else autovacuum works through the new rows during the measurement, on the same cores;
                    # and a checkpoint, else the checkpointer writes the new pages out meanwhile
                    "VACUUM (ANALYZE) chatts",
                    "CHECKPOINT",
                )
                have = count
            return have

        return await asyncio.to_thread(seed)

    async def account(self) -> tuple[str, str]:
        """A password account of the bench's (registered once per run)."""
        if self._account is None:
            username = f"bench-{secrets.token_hex(4)}"
            password = secrets.token_urlsafe(18)
            await self.expect({200, 201}, "POST", "/register", body={"username": username, "password": password})
            self._account = (username, password)
        return self._account

    async def jwt(self) -> str:
        """A fresh access token for the bench's account."""
        username, password = await self.account()
        data = await self.expect({200}, "POST", "/login", body={"username": username, "password": password})
        return str(data["token"])

    def require_google(self) -> None:
        """NotAvailable when the fake Google could not be loaded."""
        if self.google.fake is None:
            raise NotAvailable(self.google.missing_reason)

    async def google_sign_in(self, sub: str, name: str) -> dict[str, Any]:
        """POST /adduser/ with a fresh ID token for the given account; the response."""
        self.require_google()
        body = {"clientID": self.google.CLIENT_ID, "idToken": self.google.id_token(sub, name)}
        data: dict[str, Any] = await self.expect({200}, "POST", "/adduser/", body=body)
        return data


def _spec(method: str, path: str, token: str | None = None, body: dict[str, Any] | None = None) -> str:
    """A request spec for bench/lua/requests.lua."""
    parts = [method, path, token or "-"]
    if body is not None:
        parts.append(orjson.dumps(body).decode())
    return " ".join(parts)


# ---- the scenarios ---------------------------------------------------------------------------------------------


async def hello(b: Bench) -> Row:
    """Bare aiohttp "hello" under the same gunicorn settings: the baseline of every ratio."""
    server = await b.start_hello()
    try:
        m = await b.measure("hello", ["GET /"], server=server)
    finally:
        await server.stop()
    b.hello_rps = m.rps
    row = b.row_from("hello", m)
    row.queries = None  # hello has no database; chatterd idles meanwhile
    if m.worker_cpu and sum(m.worker_cpu) < 0.75 * len(m.worker_cpu):
        row.notes.append(
            "hello's workers were far from saturated: wrk or other load on the machine was the limit,"
            " so every ratio to hello in this run is flattering"
        )
    row.met = "—"
    return row


async def healthz(b: Bench) -> Row:
    """GET /healthz: the whole middleware chain, access log and metrics around the smallest view."""
    await b.expect({200}, "GET", "/healthz")
    m = await b.measure("healthz", ["GET /healthz"])
    row = b.row_from("healthz", m)
    row.judge(m.clean(), b.ratio_at_least(row, 0.80), b.queries_at_most(row, m, 0.0, b.options.connections))
    return row


async def getchatts_1k(b: Bench) -> Row:
    """GET /getchatts/?limit=100 with 1 thousand chatts stored."""
    have = await b.ensure_chatts(1000)
    m = await b.measure("getchatts_1k", [GETCHATTS])
    row = b.row_from("getchatts_1k", m)
    if have != 1000:
        row.notes.append(f"{have} chatts stored, not 1,000")
    row.judge(m.clean(), b.ratio_at_least(row, 0.15))
    return row


async def getchatts_1m(b: Bench) -> Row:
    """GET /getchatts/?limit=100 with 1 million chatts stored."""
    started = time.monotonic()
    have = await b.ensure_chatts(1_000_000)
    row_notes = [f"{have:,} chatts stored (seeded and analysed in {time.monotonic() - started:.1f} s)"]
    m = await b.measure("getchatts_1m", [GETCHATTS])
    row = b.row_from("getchatts_1m", m)
    row.notes += row_notes
    at_1k = b.rps.get("getchatts_1k")
    if at_1k:
        row.notes.append(f"{m.rps / at_1k:.2f}x the 1k figure")
    else:
        row.notes.append("getchatts 1k was not measured in this run; only the ratio to hello is judged")
    row.judge(m.clean(), b.ratio_at_least(row, 0.15), at_1k is None or m.rps >= 0.9 * at_1k)
    return row


async def postchatt(b: Bench) -> Row:
    """POST /postchatt/ (anonymous, as in the original lab)."""
    body = {"username": "bench", "message": MESSAGE}
    await b.expect({200}, "POST", "/postchatt/", body=body)
    times = await b.statement_times()
    m = await b.measure("postchatt", [_spec("POST", "/postchatt/", body=body)])
    row = b.row_from("postchatt", m)
    row.notes += b.statement_notes(times, await b.statement_times(), top=1)
    row.judge(m.clean(), b.ratio_at_least(row, 0.16), b.peer_at_least(row, "postchatt", 2.0))
    return row


async def postauth(b: Bench) -> Row:
    """POST /postauth/ with a chatterID in the body."""
    signed_in = await b.google_sign_in("bench-postauth", "Bench Poster")
    body = {"chatterID": signed_in["chatterID"], "message": MESSAGE}
    await b.expect({200}, "POST", "/postauth/", body=body)
    times = await b.statement_times()
    m = await b.measure("postauth", [_spec("POST", "/postauth/", body=body)])
    row = b.row_from("postauth", m)
    row.notes += b.statement_notes(times, await b.statement_times(), top=1)
    row.judge(
        m.clean(),
        b.ratio_at_least(row, 0.15),
        b.peer_at_least(row, "postauth", 2.0),
        b.queries_at_most(row, m, 1.0, b.options.connections),
    )
    return row


async def get_user(b: Bench) -> Row:
    """GET /get-user authenticated by a JWT."""
    token = await b.jwt()
    await b.expect({200}, "GET", "/get-user", token=token)
    m = await b.measure("get_user", [_spec("GET", "/get-user", token)])
    row = b.row_from("get_user", m)
    row.judge(m.clean(), b.ratio_at_least(row, 0.60), b.queries_at_most(row, m, 0.0, b.options.connections))
    return row


def _adduser_specs(b: Bench) -> list[str]:
    """POST /adduser/ with a valid ID token for each of the bench's Google accounts, in turn."""
    return [
        _spec("POST", "/adduser/", body={"clientID": b.google.CLIENT_ID, "idToken": b.google.id_token(sub, name)})
        for sub, name in _google_accounts()
    ]


def _google_accounts() -> list[tuple[str, str]]:
    return [(f"bench-google-{i}", f"Bench Google {i}") for i in range(ADDUSER_TOKENS)]


async def adduser(b: Bench) -> Row:
    """POST /adduser/ with valid ID tokens while Google's certificates are cached."""
    b.require_google()
    accounts = _google_accounts()
    for start in range(0, len(accounts), 50):  # creates the users; also warms the answering worker's cache
        await asyncio.gather(*(b.google_sign_in(sub, name) for sub, name in accounts[start : start + 50]))
    specs = _adduser_specs(b)
    # The other worker may not have fetched yet: a warm-up run lets both fill their caches before counting.
    await b.wrk_run(specs, duration=max(1.0, b.options.warmup))
    fetches = b.google.fetches
    times = await b.statement_times()
    m = await b.measure("adduser", specs)
    fetched = b.google.fetches - fetches
    row = b.row_from("adduser", m)
    row.notes.append(f"{fetched} certificate fetches during the measured runs")
    row.notes += b.statement_notes(times, await b.statement_times())
    row.judge(m.clean(), b.ratio_at_least(row, 0.08), b.peer_at_least(row, "adduser", 3.0), fetched == 0)
    return row


async def adduser_flood(b: Bench) -> Row:
    """POST /adduser/ from one address past its limit (the shipped one): how fast the 429s come, and what Postgres
    spends on them, on a chatterd of its own with the limit on."""
    b.require_google()
    specs = _adduser_specs(b)
    server = await b.start_chatterd(adduser_limit=FLOOD_LIMIT)
    try:
        sub, name = _google_accounts()[0]
        body = {"clientID": b.google.CLIENT_ID, "idToken": b.google.id_token(sub, name)}
        for _ in range(FLOOD_LIMIT + 1):  # the count is shared by the workers: past it, the next answer is a 429
            status, _ = await b.request("POST", "/adduser/", body=body, url=server.url)
            if status == 429:
                break
        else:
            raise ServerError(f"/adduser/ answered no 429 after {FLOOD_LIMIT + 1} sign-ins from one address")
        if b.options.warmup > 0:
            await b.wrk_run(specs, url=server.url, duration=b.options.warmup)
        pg_before = await asyncio.to_thread(b.postgres.cpu_seconds)
        pids = server.worker_pids()
        workers_before = sum(cpu_seconds(pid) for pid in pids)
        started = time.monotonic()
        runs = []
        for i in range(b.options.runs):
            profiler = None
            if b.options.profile and i == 0 and server.worker_pids():
                profile = b.results_dir / "profile-adduser_flood.txt"
                profiler = Profiler(server.worker_pids()[0], profile, b.options.duration)
                await profiler.start()
            runs.append(await b.wrk_run(specs, url=server.url))
            if profiler is not None:
                b.profile_notes.append(("adduser_flood", await profiler.finish()))
        pg_share = (await asyncio.to_thread(b.postgres.cpu_seconds) - pg_before) / (time.monotonic() - started)
        workers_used = sum(cpu_seconds(pid) for pid in pids) - workers_before
    finally:
        await server.stop()
    # Every answer but the first few of each window is a 429: those are the figure (non-2xx, as wrk counts them).
    refusals = statistics.median(r.non_2xx / r.duration_s for r in runs)
    errors = sum(r.socket_errors for r in runs)
    title, target = TITLES["adduser_flood"]
    row = Row(title, target, rps=refusals, p50_ms=statistics.median(r.p50_ms for r in runs))
    row.p99_ms = statistics.median(r.p99_ms for r in runs)
    row.ratio = refusals / b.hello_rps if b.hello_rps else None
    answered = sum(r.requests for r in runs)
    row.notes.append(
        f"req/s counts the 429s only: {sum(r.non_2xx for r in runs):,} of {answered:,} answers;"
        f" Postgres used {100 * pg_share:.1f} % of a core meanwhile (limit {100 * FLOOD_POSTGRES_CORE:.0f} %)"
    )
    if answered:
        row.notes.append(f"{1e6 * workers_used / answered:.0f} µs of worker CPU per answer")
    if errors:
        row.notes.append(f"{errors} socket errors or timeouts")
    row.judge(errors <= 0.001 * max(1, answered), b.ratio_at_least(row, 0.5), pg_share < FLOOD_POSTGRES_CORE)
    return row


async def login_storm(b: Bench) -> Row:
    """GET /getchatts/?limit=100 p99 while concurrent POST /login requests (argon2) run, against its p99 without."""
    username, password = await b.account()
    await b.jwt()  # NotAvailable when /login is not served
    login = {"username": username, "password": password}
    spec = [GETCHATTS]
    if b.options.warmup > 0:
        await b.wrk_run(spec, duration=b.options.warmup)
    quiet: list[WrkResult] = []
    stormy: list[WrkResult] = []
    statuses: Counter[int] = Counter()
    storm_seconds = 0.0
    storm_logins = 0
    for _ in range(b.options.runs):
        quiet.append(await b.wrk_run(spec))
        stop = asyncio.Event()
        storm = asyncio.create_task(_storm(b.url + "/login", login, b.options.storm_connections, stop, statuses))
        try:
            await wait_until(
                functools.partial(_storm_running, storm, statuses, b.options.storm_connections),
                within=60,
                what="the login storm to get going",
            )
            before = statuses.copy()
            started = time.monotonic()
            stormy.append(await b.wrk_run(spec))
            storm_seconds += time.monotonic() - started
            storm_logins += sum((statuses - before).values())
        finally:
            stop.set()
            try:
                await asyncio.wait_for(storm, timeout=40)
            except TimeoutError:
                pass  # wait_for cancelled it
    without = Measurement(quiet, None)
    within = Measurement(stormy, None)
    row = b.row_from("login_storm", within)
    total = sum(statuses.values())
    row.notes.append(
        f"p99 without storm {without.p99_ms:.2f} ms, with {within.p99_ms:.2f} ms"
        f" ({within.p99_ms / max(without.p99_ms, 1e-9):.2f}x); {without.rps:,.0f} req/s without"
    )
    row.notes.append(
        f"storm: {b.options.storm_connections} concurrent clients, {storm_logins / max(storm_seconds, 1e-9):,.1f}"
        f" logins/s while measured; statuses {dict(sorted(statuses.items()))} ({total} logins)"
    )
    if statuses[200] < 0.9 * total:
        row.notes.append("most logins did not succeed: the storm may not have exercised argon2")
    row.judge(within.clean(), within.p99_ms <= 2 * without.p99_ms)
    return row


async def _storm_running(storm: asyncio.Task[None], statuses: Counter[int], connections: int) -> bool:
    if storm.done():
        storm.result()  # raises what ended it
        raise ServerError("the login storm ended early")
    return sum(statuses.values()) >= connections


async def _storm(url: str, body: dict[str, str], connections: int, stop: asyncio.Event, statuses: Counter[int]) -> None:
    """POST /login from `connections` concurrent clients until `stop` is set; statuses counted (0: no response)."""
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=HTTP_TIMEOUT) as session:

        async def client(number: int) -> None:
            # Each client an address of its own (the bench's chatterd trusts one proxy hop): one address would meet
            # the per-address cap on password checks in flight, and the storm would measure 429s instead of argon2.
            headers = {"X-Forwarded-For": f"192.0.2.{number + 1}"}
            while not stop.is_set():
                try:
                    async with session.post(url, json=body, headers=headers) as resp:
                        await resp.read()
                        statuses[resp.status] += 1
                except (aiohttp.ClientError, TimeoutError):
                    statuses[0] += 1
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(client(number) for number in range(connections)))


async def memory(b: Bench) -> Row:
    """Worker RSS after N1 and after N2 requests of a mixed load, on freshly started workers."""
    first, second = b.options.memory_checkpoints
    assert b.chatterd is not None
    await b.chatterd.stop()
    b.chatterd = await b.start_chatterd()
    specs = [GETCHATTS, _spec("POST", "/postchatt/", body={"username": "bench", "message": MESSAGE})]
    mix = ["getchatts", "postchatt"]
    try:
        specs.append(_spec("GET", "/get-user", await b.jwt()))
        mix.append("get-user")
    except NotAvailable:
        pass
    try:
        signed_in = await b.google_sign_in("bench-memory", "Bench Memory")
        specs.append(_spec("POST", "/postauth/", body={"chatterID": signed_in["chatterID"], "message": MESSAGE}))
        mix.append("postauth")
    except NotAvailable:
        pass
    pids = b.chatterd.worker_pids()
    before = await b.query_calls()
    first_run = await _run_until(b, specs, first)
    rss_first = {pid: rss_kib(pid) for pid in pids}
    second_run = await _run_until(b, specs, second - first_run.requests)
    rss_second = {pid: rss_kib(pid) for pid in b.chatterd.worker_pids()}
    after = await b.query_calls()
    served = first_run.requests + second_run.requests
    queries = None if before is None or after is None else (after - before) / served
    m = Measurement([second_run], queries)
    row = b.row_from("memory", m)
    row.target = f"RSS after {second // 1000}k ≤ 1.10x after {first // 1000}k"
    row.notes.append(f"mixed load, in turn: {', '.join(mix)}")
    if sorted(rss_second) != sorted(rss_first):
        row.notes.append(f"workers changed during the load ({sorted(rss_first)} → {sorted(rss_second)})")
        row.met = "no"
        return row
    ratios = {pid: rss_second[pid] / rss_first[pid] for pid in pids}
    detail = ", ".join(
        f"worker {pid}: {rss_first[pid] / 1024:.1f} → {rss_second[pid] / 1024:.1f} MiB ({ratios[pid]:.3f}x)"
        for pid in pids
    )
    row.notes.append(f"after {first_run.requests:,} and {served:,} requests: {detail}")
    row.notes.append("req/s, p50, p99 and DB queries/req are those of the second stretch")
    row.judge(m.clean(), first_run.requests >= first, served >= second, max(ratios.values()) <= 1.10)
    return row


async def _run_until(b: Bench, specs: list[str], requests: int) -> WrkResult:
    """One wrk run that stops after `requests` responses (or 600 s)."""
    return await run_wrk(
        b.wrk,
        b.url,
        specs,
        duration=600,
        connections=b.options.connections,
        threads=1,
        stop_after=requests,
        log_path=b.wrk_log,
    )


Scenario = Callable[[Bench], Awaitable[Row]]

# In the order they run: the 1k figure before anything adds chatts, the storm and memory last.
SCENARIOS: dict[str, Scenario] = {
    "hello": hello,
    "healthz": healthz,
    "getchatts_1k": getchatts_1k,
    "getchatts_1m": getchatts_1m,
    "postchatt": postchatt,
    "postauth": postauth,
    "get_user": get_user,
    "adduser": adduser,
    "adduser_flood": adduser_flood,
    "login_storm": login_storm,
    "memory": memory,
}

# Table title and target of each scenario (ratios are to hello, from the same run).
TITLES: dict[str, tuple[str, str]] = {
    "hello": ("hello", "baseline"),
    "healthz": ("healthz", "≥ 0.80 and 0 DB queries"),
    "getchatts_1k": ("getchatts limit=100, 1k chatts", "≥ 0.15"),
    "getchatts_1m": ("getchatts limit=100, 1M chatts", "≥ 0.15 and ≥ 0.90x 1k"),
    "postchatt": ("postchatt", "≥ 0.16 and ≥ 2.0x seed peer"),
    "postauth": ("postauth (chatterID)", "≥ 0.15, ≥ 2.0x seed peer and 1 round trip"),
    "get_user": ("get-user (JWT)", "≥ 0.60 and 0 DB queries"),
    "adduser": ("adduser (warm certificates)", "≥ 3.0x seed peer and 0 certificate fetches"),
    "adduser_flood": ("adduser 429s, one-address flood", "≥ 0.50 and Postgres < 10 % of a core"),
    "login_storm": ("getchatts p99 in a login storm", "p99 ≤ 2x p99 without"),
    "memory": ("worker RSS, mixed load", "RSS after 200k ≤ 1.10x after 10k"),
}


async def run_scenario(b: Bench, name: str) -> Row:
    """Run one scenario; an endpoint the app lacks makes a "not available" row, any failure an "error" row."""
    logger.info("scenario %s", name)
    title, target = TITLES[name]
    try:
        return await SCENARIOS[name](b)
    except NotAvailable as exc:
        logger.info("scenario %s not available: %s", name, exc)
        return Row(title, target, met=NOT_AVAILABLE, notes=[str(exc)])
    except Exception as exc:  # a broken scenario must not cost the others their figures
        logger.exception("scenario %s failed", name)
        detail = " ".join(str(exc).split())
        if len(detail) > 300:
            detail = detail[:300] + " … (see the log above)"
        return Row(title, target, met=ERROR, notes=[f"{type(exc).__name__}: {detail}"])
