"""Faults under load: Postgres going away and coming back, SIGTERM and HUP, more clients than pool connections."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import aiopg
import psutil
import psycopg2
import psycopg2.extensions
import pytest
from aiohttp.test_utils import TestClient

from chatter import writer
from core.keys import authenticator_key, db_key
from tests.support.common import CLIENT_ID, wait_for
from tests.support.launcher import Gunicorn, base_env
from tests.support.load import (
    ACCESS_LOG_ARGS,
    ANON,
    CHATTERID,
    JWT,
    POSTS,
    READ,
    Credentials,
    MixedLoad,
    Shot,
    SlowUpload,
    google_sign_in,
    rss,
    send,
    served,
    worker_pids,
)
from tests.support.pgctl import EmbeddedControl, private_var_dir
from tests.support.pgproxy import PgProxy

# With connect, acquire and statement timeouts of 1 s, a request makes at most two round trips (credential, write):
# nothing may take longer than this, outage or not.
_DB_TIMEOUTS = {"connect_timeout": 1.0, "acquire_timeout": 1.0, "statement_timeout": 1.0}
OUTAGE_TIMEOUTS: dict[str, Any] = {f"db_{name}": value for name, value in _DB_TIMEOUTS.items()}
REQUEST_BOUND = 4.5
# No more than one worker's statements in flight (writer.MAX_IN_FLIGHT): were they all to reach one worker, one more
# post would wait in that worker's queue rather than inside Postgres, where the lock holds it.
HELD_POSTS = writer.MAX_IN_FLIGHT
# A graceful timeout shorter than the default 30 s keeps the test short when aiohttp holds a connection to the end.
GRACEFUL_TIMEOUT = 6
SIGNAL_ARGS = (*ACCESS_LOG_ARGS, "--graceful-timeout", str(GRACEFUL_TIMEOUT))
SHUTDOWN_WAIT = GRACEFUL_TIMEOUT * 0.95  # aiohttp's worker waits this long for open connections


def base_url(client: TestClient[Any, Any]) -> str:
    """The root URL of a test client's real HTTP server, without a trailing slash."""
    return str(client.make_url("")).rstrip("/")


async def chatts_by_message(client: TestClient[Any, Any]) -> dict[str, list[str]]:
    """Every stored chatt's usernames, keyed by message (a list, so duplicates would show)."""
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT username, message FROM chatts")
        rows = await cur.fetchall()
    found: dict[str, list[str]] = {}
    for username, message in rows:
        found.setdefault(message, []).append(username)
    return found


async def logout(session: aiohttp.ClientSession, url: str, token: str) -> None:
    """POST /logout with a bearer credential; it must answer 204."""
    async with session.post(f"{url}/logout", headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 204, await resp.text()


async def refused_within(session: aiohttp.ClientSession, url: str, token: str, *, bound: float) -> float:
    """Seconds until `url` refuses the bearer credential (401 on /postauth/); fails past `bound`."""
    started = time.monotonic()

    async def refused() -> bool:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.post(f"{url}/postauth/", json={"message": "after logout"}, headers=headers) as resp:
            assert resp.status in {200, 401}, resp.status
            return resp.status == 401

    await wait_for(refused, timeout=bound, what="the logout to be seen")
    return time.monotonic() - started


@pytest.fixture
async def cuttable_database(make_database: Any) -> AsyncIterator[tuple[str, PgProxy]]:
    """A fresh database and the URL of a relay in front of it that the test can cut and restore."""
    params = psycopg2.extensions.parse_dsn(make_database())
    proxy = PgProxy.for_dsn_params(params)
    await proxy.start()
    yield psycopg2.extensions.make_dsn(**{**params, "host": "127.0.0.1", "port": str(proxy.port)}), proxy
    await proxy.close()


async def test_postgres_outage_under_mixed_load(make_client, cuttable_database, google, capsys):
    """Two apps (as two workers) under reads, anonymous and signed-in posts while Postgres goes away and returns."""
    url, proxy = cuttable_database
    one = await make_client(database_url=url, **OUTAGE_TIMEOUTS)
    two = await make_client(database_url=url, **OUTAGE_TIMEOUTS)
    stores = [one.app[authenticator_key].store, two.app[authenticator_key].store]
    async with aiohttp.ClientSession() as session:
        signed_in = await google_sign_in(
            session, base_url(one), google.id_token(client_id=CLIENT_ID, sub="outage", name="Olga"), CLIENT_ID
        )
    creds = Credentials(chatter_id=signed_in["chatterID"], token=signed_in["token"])
    load = MixedLoad(
        [base_url(one), base_url(two)],
        clients=8,
        max_requests=6000,
        duration=30,
        timeout=REQUEST_BOUND + 2,
        kinds=(READ, ANON, CHATTERID, JWT),
        creds=creds,
        tag="outage",
    )
    async with load:
        await wait_for(load.reached(status=200, at_least=40), timeout=10, what="200s before the outage")
        cut_at = time.monotonic()
        await proxy.cut()
        await wait_for(load.reached(status=503, since=cut_at, at_least=40), timeout=10, what="503s in the outage")

        async def listeners_down() -> bool:
            return not any(store.live for store in stores)

        await wait_for(listeners_down, timeout=5, what="the revocation listeners to notice")
        restored_at = time.monotonic()
        await proxy.start()
        await wait_for(load.reached(status=200, since=restored_at, at_least=40), timeout=10, what="200s after")
        recovered = time.monotonic() - restored_at

    async def listeners_live() -> bool:
        return all(store.live for store in stores)

    await wait_for(listeners_live, timeout=5, what="the revocation listeners to reconnect")
    outcomes = load.statuses()
    assert set(outcomes) <= {200, 503}, outcomes
    unavailable = [s for s in load.shots if s.status == 503]
    assert all(s.retry_after and int(s.retry_after) >= 1 and s.json_error for s in unavailable)
    assert load.slowest() < REQUEST_BOUND, load.slowest()

    stored = await chatts_by_message(one)
    acked = load.acked()
    assert acked, "some posts were acknowledged"
    assert acked <= set(stored), sorted(acked - set(stored))[:10]
    kinds = {s.rid: s.kind for s in load.shots}
    for message in acked:
        assert stored[message] == ["anon" if kinds[message] == ANON else "Olga"], (message, stored[message])

    # After the recovery a logout on one app is refused by the other, which learns of it only by NOTIFY.
    async with aiohttp.ClientSession() as session:
        await logout(session, base_url(one), creds.token or "")
        propagation = await refused_within(session, base_url(two), creds.token or "", bound=1.0)
    with capsys.disabled():
        print(
            f"\noutage: {dict(outcomes)} in {len(load.shots)} requests, slowest {load.slowest():.2f} s,"
            f" {len(acked)} posts acknowledged and all stored, 200s again {recovered:.2f} s after Postgres returned,"
            f" logout seen by the other app in {propagation * 1000:.0f} ms"
        )


async def test_a_worker_whose_listener_is_down_asks_postgres_about_tokens(make_client, database_url):
    """A logout elsewhere is not missed while this worker cannot follow revocations: it asks Postgres instead."""
    params = psycopg2.extensions.parse_dsn(database_url)
    proxy = PgProxy.for_dsn_params(params)
    await proxy.start()
    try:
        one = await make_client()
        # Two reaches Postgres through the relay, under a name of its own, with two pooled connections kept open.
        two_url = {**params, "host": "127.0.0.1", "port": str(proxy.port), "application_name": "chatterd-two"}
        two = await make_client(database_url=psycopg2.extensions.make_dsn(**two_url), db_pool_min=2)
        account = {"username": "ann", "password": "correct horse battery"}
        assert (await one.post("/register", json=account)).status == 201
        token = (await (await one.post("/login", json=account)).json())["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await two.get("/get-user", headers=bearer)).status == 200

        # Two's listener loses its connection and cannot open another; its pooled connections still work.
        proxy.stop_accepting()
        async with one.app[db_key].cursor() as cur:
            await cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'chatterd-two' AND query LIKE 'LISTEN%%'"
            )
            assert await cur.fetchall() == [(True,)]
        store = two.app[authenticator_key].store

        async def listener_down() -> bool:
            return not store.live

        await wait_for(listener_down, timeout=5, what="two's listener to notice")
        assert (await one.post("/logout", headers=bearer)).status == 204
        assert not store.live
        resp = await two.get("/get-user", headers=bearer)
        assert resp.status == 401, await resp.text()
        assert (await two.get("/getchatts/")).status == 200, "two still reaches Postgres"
    finally:
        await proxy.close()


async def refused_by_every_worker(
    server: Gunicorn, token: str, workers: set[int], *, bound: float, tag: str
) -> tuple[float, int]:
    """Seconds until every worker has refused the bearer credential on /postauth/, and how many 200s came first."""
    started = time.monotonic()
    accepted = 0
    probes = itertools.count()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)  # a new connection each time: any worker may answer
    async with aiohttp.ClientSession(connector=connector) as session:

        async def all_refused() -> bool:
            nonlocal accepted
            shot = await send(session, server.url, JWT, f"{tag}-{next(probes)}", Credentials(token=token), timeout=5)
            assert shot.status in {200, 401}, shot
            accepted += shot.status == 200
            refusing = {e.pid for e in served(server.log()) if e.status == 401 and e.rid.startswith(tag)}
            return refusing >= workers

        await wait_for(all_refused, timeout=bound, what="every worker to refuse the logged-out token")
    return time.monotonic() - started, accepted


@pytest.mark.slow
async def test_postgres_stopped_and_started_under_gunicorn(google, google_certs_url, capsys):
    """The embedded Postgres of a var/ folder stopped with pg_ctl under load on two workers, then started again."""
    with private_var_dir("chatterd-pgstop-") as var_dir:
        env = base_env(
            CHATTERD_VAR_DIR=str(var_dir),
            GOOGLE_CERTS_URL=google_certs_url,
            GOOGLE_CLIENT_IDS=CLIENT_ID,
            **{f"DB_{name.upper()}": str(value) for name, value in _DB_TIMEOUTS.items()},
        )
        env["ACCESS_LOG"] = "-"
        server = Gunicorn(env, var_dir / "gunicorn.log", extra_args=ACCESS_LOG_ARGS)
        postgres = EmbeddedControl(var_dir)
        await server.start()
        try:
            assert server.proc is not None
            workers = set(worker_pids(server.proc.pid))
            async with aiohttp.ClientSession() as session:
                signed_in = await google_sign_in(
                    session, server.url, google.id_token(client_id=CLIENT_ID, sub="pgstop", name="Olga"), CLIENT_ID
                )
            creds = Credentials(chatter_id=signed_in["chatterID"], token=signed_in["token"])
            load = MixedLoad(
                [server.url],
                clients=8,
                max_requests=6000,
                duration=40,
                timeout=REQUEST_BOUND + 2,
                kinds=(READ, ANON, CHATTERID, JWT),
                creds=creds,
                tag="pgstop",
            )
            async with load:
                await wait_for(load.reached(status=200, at_least=40), timeout=10, what="200s before the stop")
                stopped_at = time.monotonic()
                await asyncio.to_thread(postgres.stop)
                stopping = time.monotonic() - stopped_at
                await wait_for(load.reached(status=503, since=stopped_at, at_least=40), timeout=10, what="503s")
                started_at = time.monotonic()
                await asyncio.to_thread(postgres.start)
                await wait_for(load.reached(status=200, since=started_at, at_least=40), timeout=15, what="200s after")
                recovered = time.monotonic() - started_at

            # Each worker's revocation listener reconnects and reloads by itself, and says so.
            async def listeners_back() -> bool:
                return server.log().count("following chatterd_events") >= 2 * len(workers)

            await wait_for(listeners_back, timeout=10, what="both revocation listeners to reconnect")
            relistening = time.monotonic() - started_at

            outcomes = load.statuses()
            assert set(outcomes) <= {200, 503}, outcomes
            assert all(s.retry_after and s.json_error for s in load.shots if s.status == 503)
            assert load.slowest() < REQUEST_BOUND, load.slowest()
            stored = await stored_messages(postgres.url)
            acked = load.acked()
            assert acked and acked <= stored, sorted(acked - stored)[:10]

            # A logout on one worker is refused by both.
            async with aiohttp.ClientSession() as session:
                fresh = await google_sign_in(
                    session, server.url, google.id_token(client_id=CLIENT_ID, sub="pgstop", name="Olga"), CLIENT_ID
                )
                await logout(session, server.url, fresh["token"])
            propagation, accepted = await refused_by_every_worker(server, fresh["token"], workers, bound=1.0, tag="out")
        finally:
            assert await server.stop() == 0
        assert set(worker_pids_seen(server.log())) == workers, "no worker was replaced during the outage"
    with capsys.disabled():
        print(
            f"\npg_ctl stop/start: {dict(outcomes)} in {len(load.shots)} requests, slowest {load.slowest():.2f} s,"
            f" stop took {stopping:.2f} s, 200s again {recovered:.2f} s and both listeners back {relistening:.2f} s"
            f" after start, {len(acked)} acknowledged posts all stored; logout refused by both workers after"
            f" {propagation * 1000:.0f} ms ({accepted} 200s first)"
        )


def worker_pids_seen(log: str) -> set[int]:
    """Every worker pid that answered a request, by the access log."""
    return {entry.pid for entry in served(log)}


def served_env(database_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a gunicorn test server on the given database, with its access log on."""
    env = base_env(DATABASE_URL=database_url, CHATTERD_VAR_DIR=str(var_dir), DB_STATEMENT_TIMEOUT="20", **extra)
    env["ACCESS_LOG"] = "-"
    return env


async def stored_messages(database_url: str) -> set[str]:
    """Every chatt message in the database, read straight from Postgres."""

    def read() -> set[str]:
        conn = psycopg2.connect(database_url, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT message FROM chatts")
                return {row[0] for row in cur.fetchall()}
        finally:
            conn.close()

    return await asyncio.to_thread(read)


def dropped_unread(shot: Shot) -> bool:
    """The mark of aiohttp's shutdown race: a connection taken just before shutdown, held unread, then closed.

    On Python < 3.12 a connection whose handler task has not started when shutdown begins ignores its request
    bytes and is closed only when the graceful timeout runs out; the app never sees the request.
    """
    return shot.error in {"disconnected", "reset"} and shot.elapsed >= SHUTDOWN_WAIT * 0.9


async def check_nothing_accepted_was_lost(
    load: MixedLoad, held: list[Shot], server: Gunicorn, url: str
) -> dict[str, int]:
    """Every answered request was a 200; every failed one left no trace, so the app never accepted it."""
    shots = [*load.shots, *held]
    assert {s.status for s in shots if s.status is not None} <= {200}, load.statuses()
    answered = {entry.rid for entry in served(server.log())}
    stored = await stored_messages(url)
    failed = [s for s in shots if s.error is not None]
    accepted_then_failed = [s for s in failed if s.rid in answered or s.rid in stored]
    assert not accepted_then_failed, accepted_then_failed[:5]
    acked = {s.rid for s in shots if s.kind in POSTS and s.status == 200}
    assert acked <= stored, sorted(acked - stored)[:5]
    assert "Traceback" not in server.log() and " ERROR " not in server.log(), server.log()[-3000:]
    kinds = ("200" if s.status == 200 else "dropped unread" if dropped_unread(s) else str(s.error) for s in shots)
    return dict(Counter(kinds))


async def stopped_listening(port: int) -> bool:
    """True when no socket listens on the port any more (looked up in the kernel's table, without connecting)."""
    return not any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in psutil.net_connections("tcp4"))


class ChattsLock:
    """An EXCLUSIVE lock on chatts held by a connection of the test's: posts wait inside Postgres, reads go on."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._conns: list[aiopg.Connection] = []

    async def __aenter__(self) -> ChattsLock:
        for _ in range(2):  # one holds the lock; one looks at pg_stat_activity outside its transaction
            self._conns.append(await aiopg.connect(self.database_url))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for conn in self._conns:
            await conn.close()

    async def hold(self) -> None:
        """Take the lock; every INSERT into chatts waits from now on."""
        async with self._conns[0].cursor() as cur:
            await cur.execute("BEGIN")
            await cur.execute("LOCK TABLE chatts IN EXCLUSIVE MODE")

    async def release(self) -> None:
        """Let the waiting posts through."""
        async with self._conns[0].cursor() as cur:
            await cur.execute("COMMIT")

    def waiting(self, at_least: int) -> Callable[[], Awaitable[bool]]:
        """A condition for `wait_for`: at least this many posts are inside their handlers, blocked on the lock."""

        async def condition() -> bool:
            async with self._conns[1].cursor() as cur:
                # Posts arriving together share one INSERT (group commit): count the held messages in the
                # waiting statements' text, not the statements.
                await cur.execute(
                    "SELECT coalesce(sum((length(query) - length(replace(query, 'held-', ''))) / 5), 0)"
                    " FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE '%%INSERT INTO chatts%%'"
                )
                (count,) = await cur.fetchone()
            return bool(count >= at_least)

        return condition


async def signal_under_load(
    server: Gunicorn, database_url: str, signum: int, until: Callable[[MixedLoad, float], Awaitable[None]]
) -> tuple[MixedLoad, list[Shot], float]:
    """Reads in a loop and posts held in flight by a lock; send `signum` to the master, run until `until` passes."""
    assert server.proc is not None
    load = MixedLoad(
        [server.url], clients=4, max_requests=20_000, duration=30, timeout=15, kinds=(READ,), fresh_connections=True
    )
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with load, ChattsLock(database_url) as lock, aiohttp.ClientSession(connector=connector) as session:
        await wait_for(load.reached(status=200, at_least=50), timeout=15, what="the load to be served")
        await lock.hold()
        held = [
            asyncio.create_task(send(session, server.url, ANON, f"held-{signum}-{n}", Credentials(), timeout=30))
            for n in range(HELD_POSTS)
        ]
        await wait_for(lock.waiting(HELD_POSTS), timeout=10, what="the posts to be in flight")
        signalled = time.monotonic()
        server.proc.send_signal(signum)
        await until(load, signalled)
        await lock.release()
        posts = list(await asyncio.gather(*held))
    assert all(s.status == 200 and s.started < signalled < s.finished for s in posts), posts
    return load, posts, signalled


async def test_sigterm_under_load_finishes_what_it_accepted(make_database, tmp_path, capsys):
    """SIGTERM: in-flight uploads still get their 200, then new connections are refused; nothing accepted fails."""
    url = make_database()
    server = Gunicorn(served_env(url, tmp_path / "var"), tmp_path / "gunicorn.log", extra_args=SIGNAL_ARGS)
    await server.start()
    try:

        async def until_refused(load: MixedLoad, signalled: float) -> None:
            await wait_for(lambda: stopped_listening(server.port), timeout=10, what="the socket to close")

        load, held, signalled = await signal_under_load(server, url, signal.SIGTERM, until_refused)
        assert server.proc is not None
        exited = await asyncio.wait_for(server.proc.wait(), timeout=30)
        down = time.monotonic() - signalled
    finally:
        await server.stop()
    assert exited == 0, server.log()[-3000:]
    outcome = await check_nothing_accepted_was_lost(load, held, server, url)
    assert outcome.get("refused"), outcome
    last = max(s.finished for s in held) - signalled
    with capsys.disabled():
        print(
            f"\nSIGTERM: {outcome}; {len(held)} posts in flight at the signal answered 200 up to {last:.2f} s after;"
            f" gunicorn gone {down:.2f} s after"
        )


async def test_hup_reload_under_load_drops_nothing(make_database, tmp_path, capsys):
    """HUP: new workers take over while the socket stays open and the old finish their posts; no request is lost."""
    url = make_database()
    server = Gunicorn(served_env(url, tmp_path / "var"), tmp_path / "gunicorn.log", extra_args=SIGNAL_ARGS)
    await server.start()
    try:
        assert server.proc is not None
        master = server.proc.pid
        old = set(worker_pids(master))
        new: set[int] = set()

        async def until_new_workers_serve(load: MixedLoad, signalled: float) -> None:
            async def serving() -> bool:
                new.update(set(worker_pids(master)) - old)
                return sum(1 for entry in served(server.log()) if entry.pid in new) >= 50

            await wait_for(serving, timeout=20, what="the new workers to serve")

        load, held, _ = await signal_under_load(server, url, signal.SIGHUP, until_new_workers_serve)

        async def old_workers_gone() -> bool:
            return not old & set(worker_pids(master))

        await wait_for(old_workers_gone, timeout=15, what="the old workers to finish and exit")
        assert len(new) == 2 and set(worker_pids(master)) == new, (new, worker_pids(master))
    finally:
        assert await server.stop() == 0
    outcome = await check_nothing_accepted_was_lost(load, held, server, url)
    assert set(outcome) <= {"200", "dropped unread"}, "the socket stayed open: nothing was refused or reset"
    by_old = {entry.rid for entry in served(server.log()) if entry.pid in old}
    assert {s.rid for s in held} <= by_old, "the posts in flight were answered by the old workers"
    with capsys.disabled():
        print(f"\nHUP: {outcome}; {len(held)} posts in flight on the old workers answered 200")


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="aiohttp ignores request bytes that arrive once its graceful shutdown began")
async def test_sigterm_lets_an_upload_in_progress_finish(make_database, tmp_path):
    """A post whose body is still arriving at SIGTERM: aiohttp drops the rest, and the request dies unanswered."""
    url = make_database()
    args = (*ACCESS_LOG_ARGS, "--graceful-timeout", "3")
    server = Gunicorn(served_env(url, tmp_path / "var"), tmp_path / "gunicorn.log", extra_args=args)
    await server.start()
    upload = SlowUpload("slow-upload", chunks=30, pace=0.1)  # three seconds of body
    try:
        async with aiohttp.ClientSession() as session:
            posting = asyncio.create_task(upload.post(session, server.url, timeout=15))

            async def under_way() -> bool:
                return upload.sent >= 2

            await wait_for(under_way, timeout=5, what="the upload to be under way")
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            shot = await posting
    finally:
        await server.stop()
    assert shot.status == 200, shot


async def test_overload_waits_for_the_pool_then_503s_and_memory_stays_bounded(make_client, capsys):
    """200 concurrent requests on a pool of 2: they wait up to the acquire bound, then 503; RSS stays flat."""
    acquire, rounds = 0.5, 3
    client = await make_client(db_pool_min=0, db_pool_max=2, db_acquire_timeout=acquire)
    db, url = client.app[db_key], base_url(client)
    held = 0

    async def hold(release: asyncio.Event) -> None:
        nonlocal held
        async with db.cursor() as cur:  # busy connections, as under two slow queries
            await cur.execute("SELECT 1")
            held += 1
            await release.wait()
        held -= 1

    async def burst(session: aiohttp.ClientSession, tag: str, size: int = 200) -> list[Shot]:
        shots = (send(session, url, (READ, ANON)[n % 2], f"{tag}-{n}", Credentials(), timeout=10) for n in range(size))
        return list(await asyncio.gather(*shots))

    async def cycle(session: aiohttp.ClientSession, tag: str) -> tuple[list[Shot], list[Shot]]:
        release = asyncio.Event()
        holders = [asyncio.create_task(hold(release)) for _ in range(2)]

        async def pool_busy() -> bool:
            return held == 2

        await wait_for(pool_busy, timeout=5, what="both pool connections to be busy")
        busy = await burst(session, f"{tag}-busy")
        release.set()
        await asyncio.gather(*holders)
        free = await burst(session, f"{tag}-free")  # two connections serve what they can within the bound
        calm = await burst(session, f"{tag}-calm", size=20)
        return busy, free + calm

    connector = aiohttp.TCPConnector(limit=0)  # 200 really concurrent connections, not the default 100
    async with aiohttp.ClientSession(connector=connector) as session:
        await cycle(session, "warm-up")
        before = rss(os.getpid())
        for n in range(rounds):
            busy, free = await cycle(session, f"round{n}")
            assert {s.status for s in busy} == {503}, Counter(s.status or s.error for s in busy)
            assert all(s.retry_after and int(s.retry_after) >= 1 and s.json_error for s in busy)
            waits = sorted(s.elapsed for s in busy)
            assert waits[0] >= acquire * 0.9, "every request waited for a connection first"
            assert waits[-1] < acquire + 2.0, waits[-1]
            served_ok = Counter(s.status or s.error for s in free[:200])
            assert set(served_ok) <= {200, 503} and served_ok[200] >= 120, served_ok
            assert {s.status for s in free[-20:]} == {200}, "the pool serves again"
        after = rss(os.getpid())
    assert db.pool.size <= 2 and db.pool.freesize == db.pool.size, "no connection leaked by the cancelled waits"
    stored = await chatts_by_message(client)
    assert {s.rid for s in free if s.kind == ANON and s.status == 200} <= set(stored)
    assert after < before * 1.5, (before, after)
    with capsys.disabled():
        print(
            f"\noverload: 200 concurrent on a pool of 2 held busy: all 503 after {waits[0]:.2f}-{waits[-1]:.2f} s"
            f" (acquire bound {acquire} s); freed: {dict(served_ok)} of 200 then 20/20 200;"
            f" test process RSS {before / 2**20:.0f} MiB ->"
            f" {after / 2**20:.0f} MiB over {rounds} rounds of 420 requests"
        )
