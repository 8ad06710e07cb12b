"""The connection pool against a real Postgres: its bound under load, waiters served in turn, cancelled waits that
leak nothing, connections of unknown state never handed out again, idle ones recycled, and closing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg2
import pytest

from db.connections import ConnectionPool, PoolClosed
from db.pool import Database, DatabaseUnavailable, create_pool
from tests.support.common import wait_for
from tests.support.pgproxy import PgProxy


@pytest.fixture
async def url(make_database):
    return make_database()


@asynccontextmanager
async def opened(url: str, *, minsize: int, maxsize: int) -> AsyncIterator[ConnectionPool]:
    """A pool as chatterd makes one, closed (and waited for) after the test's use."""
    pool = await create_pool(url, minsize=minsize, maxsize=maxsize, connect_timeout=5, statement_timeout=30)
    try:
        yield pool
    finally:
        pool.close()
        await pool.wait_closed()


async def backend_pid(conn) -> int:
    async with conn.cursor() as cur:
        await cur.execute("SELECT pg_backend_pid()")
        return (await cur.fetchone())[0]


async def gone(url: str, pid: int) -> bool:
    """Whether the server session `pid` has ended."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            return cur.fetchone()[0] == 0
    finally:
        conn.close()


async def test_a_burst_never_opens_more_than_maxsize_and_every_caller_is_served(url):
    async with opened(url, minsize=1, maxsize=4) as pool:
        db = Database(pool, acquire_timeout=30, direct_dsn=url)
        sizes: list[int] = []

        async def one(n: int) -> int:
            async with db.cursor() as cur:
                sizes.append(pool.size)
                await cur.execute("SELECT %s::int, pg_sleep(0.001)", (n,))
                return (await cur.fetchone())[0]

        assert await asyncio.gather(*(one(n) for n in range(300))) == list(range(300))
        assert max(sizes) <= 4 and pool.size <= 4
        assert pool.freesize == pool.size  # every connection came back


async def test_cancelled_waits_leak_nothing_and_the_pool_serves_on(url):
    async with opened(url, minsize=0, maxsize=2) as pool:
        db = Database(pool, acquire_timeout=0.05, direct_dsn=url)
        rng = random.Random(7)
        outcomes: list[str] = []

        async def one() -> None:
            try:
                async with db.cursor() as cur:
                    await cur.execute("SELECT pg_sleep(%s)", (rng.choice((0, 0.002, 0.02)),))
                outcomes.append("served")
            except DatabaseUnavailable:  # no connection within the acquire timeout: a 503 for a request
                outcomes.append("timed out")

        async def cancelled() -> None:
            task = asyncio.create_task(one())
            for _ in range(rng.randrange(6)):  # cancelled at a varying point: waiting, holding, or just handed one
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            outcomes.append("cancelled")

        await asyncio.gather(*(one() if n % 3 else cancelled() for n in range(240)))
        assert {"served", "timed out", "cancelled"} <= set(outcomes)
        assert pool.size <= 2 and pool.freesize == pool.size, "a connection was lost or leaked"
        assert await asyncio.gather(*(db.fetch_one("SELECT 1") for _ in range(20))) == [(1,)] * 20


async def test_waiters_are_served_oldest_first(url):
    async with opened(url, minsize=1, maxsize=1) as pool:
        held = await pool.acquire()
        order: list[int] = []

        async def waiter(n: int) -> None:
            conn = await pool.acquire()
            order.append(n)
            pool.release(conn)

        tasks = []
        for n in range(5):
            tasks.append(asyncio.create_task(waiter(n)))
            await asyncio.sleep(0)  # each starts waiting before the next
        pool.release(held)
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4]


async def test_a_connection_left_in_a_transaction_or_broken_is_never_handed_out_again(url):
    async with opened(url, minsize=0, maxsize=2) as pool:
        db = Database(pool, acquire_timeout=5, direct_dsn=url)
        conn = await pool.acquire()
        first = await backend_pid(conn)
        async with conn.cursor() as cur:
            await cur.execute("BEGIN")
        pool.release(conn)  # mid-transaction: closed, not reused
        assert conn.closed and pool.size == 0

        conn = await pool.acquire()
        second = await backend_pid(conn)
        assert second != first
        conn.close()  # broken by its user
        pool.release(conn)
        assert pool.size == 0
        (third,) = await db.fetch_one("SELECT pg_backend_pid()")
        assert third not in (first, second)
        with pytest.raises(DatabaseUnavailable):  # the server ends the session under the pool
            async with db.cursor() as cur:
                await cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        assert pool.freesize == pool.size == 0
        assert await db.fetch_one("SELECT 1") == (1,)


async def test_an_idle_connection_past_its_recycle_age_is_replaced(url):
    async def pids_of_two_uses(pool: ConnectionPool) -> tuple[int, int]:
        pids = []
        for _ in range(2):
            conn = await pool.acquire()
            pids.append(await backend_pid(conn))
            pool.release(conn)
        return pids[0], pids[1]

    kept = ConnectionPool(url, minsize=0, maxsize=2, timeout=30, recycle=-1)  # never recycled
    recycled = ConnectionPool(url, minsize=0, maxsize=2, timeout=30, recycle=0)  # any idleness is too long
    try:
        first, second = await pids_of_two_uses(kept)
        assert first == second
        first, second = await pids_of_two_uses(recycled)
        assert first != second
        # The old one was closed, not dropped open: its server session ends.
        await wait_for(lambda: gone(url, first), timeout=10, what="the recycled connection's session to end")
    finally:
        for pool in (kept, recycled):
            pool.close()
            await pool.wait_closed()


async def test_closing_refuses_new_callers_and_waits_for_connections_in_use(url):
    pool = await create_pool(url, minsize=1, maxsize=1, connect_timeout=5, statement_timeout=30)
    held = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    pool.close()
    with pytest.raises(PoolClosed):
        await waiting
    with pytest.raises(PoolClosed):
        await pool.acquire()
    closed = asyncio.create_task(pool.wait_closed())
    await asyncio.sleep(0)
    assert not closed.done()  # `held` is still in use
    pool.release(held)
    await asyncio.wait_for(closed, 5)
    assert held.closed and pool.size == 0


async def test_a_connection_handed_to_a_waiter_that_gave_up_goes_back(url):
    async with opened(url, minsize=1, maxsize=1) as pool:
        held = await pool.acquire()
        waiter = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0)  # it waits
        pool.release(held)  # handed to the waiter...
        waiter.cancel()  # ...which gives up before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert pool.size == pool.freesize == 1
        conn = pool.acquire_free()
        assert conn is held and not conn.closed
        pool.release(conn)


async def test_a_connect_that_fails_hands_its_place_to_a_waiter(url):
    """A connect given up (the database hung) frees its place: a caller waiting for one goes on and connects."""
    params = psycopg2.extensions.parse_dsn(url)
    proxy = PgProxy.for_dsn_params(params)
    await proxy.start()
    proxied = psycopg2.extensions.make_dsn(**{**params, "host": "127.0.0.1", "port": str(proxy.port)})
    pool = ConnectionPool(proxied, minsize=0, maxsize=1, timeout=30, recycle=-1)
    try:
        proxy.black_hole = True  # connects hang
        hanging = asyncio.create_task(pool.acquire())
        await wait_for(lambda: asyncio.sleep(0, pool.size == 1), timeout=5, what="the first connect to start")
        waiting = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0)
        proxy.black_hole = False  # the database is back...
        hanging.cancel()  # ...as the first caller gives up its connect
        with pytest.raises(asyncio.CancelledError):
            await hanging
        conn = await asyncio.wait_for(waiting, 10)
        assert await backend_pid(conn) > 0 and pool.size == 1
        pool.release(conn)
    finally:
        pool.close()
        await pool.wait_closed()
        await proxy.close()
