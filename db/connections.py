"""A pool of aiopg connections that costs little per use.

aiopg's own pool takes an asyncio.Condition and sweeps every free connection on each acquire, and starts a task on
each release: tens of µs per statement, more than a short statement costs the worker otherwise. This one hands out
the most recently used connection (a stack), gives a released connection straight to the oldest waiter, and checks
only the connection it hands out (closed, or older than `recycle` seconds of idleness).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import aiopg
import psycopg2.extensions

logger = logging.getLogger(__name__)

IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE


class PoolClosed(RuntimeError):
    """The pool was closed: no connection is handed out any more."""


class ConnectionPool:
    """Up to `maxsize` aiopg connections to `dsn` (at least `minsize` once filled); each statement on them is bounded
    by `timeout` seconds, and a connection idle for `recycle` seconds is closed rather than handed out."""

    def __init__(self, dsn: str, *, minsize: int, maxsize: int, timeout: float, recycle: float, **options: Any):
        if not 0 <= minsize <= maxsize or maxsize < 1:
            raise ValueError("the pool needs 0 <= minsize <= maxsize and maxsize >= 1")
        self.minsize = minsize
        self.maxsize = maxsize
        self._dsn = dsn
        self._timeout = timeout
        self._recycle = recycle
        self._options = options
        self._free: list[aiopg.Connection] = []
        self._used: set[aiopg.Connection] = set()
        self._connecting = 0
        # Each waits for a connection handed over, or for None: a place came free, so it may connect one itself.
        self._waiters: deque[asyncio.Future[aiopg.Connection | None]] = deque()
        self._closing = False
        self._all_returned = asyncio.Event()

    @property
    def size(self) -> int:
        """Connections open or being opened."""
        return len(self._free) + len(self._used) + self._connecting

    @property
    def freesize(self) -> int:
        """Connections open and not in use."""
        return len(self._free)

    async def fill(self) -> None:
        """Open connections up to `minsize`."""
        while self.size < self.minsize:
            self._free.append(await self._connect())

    async def _connect(self) -> aiopg.Connection:
        self._connecting += 1
        try:
            conn = await aiopg.connect(self._dsn, timeout=self._timeout, **self._options)
        except BaseException:
            self._connecting -= 1
            self._wake_one(None)  # the place this connect held is free again: a waiter may try its own
            raise
        self._connecting -= 1
        return conn

    def acquire_free(self) -> aiopg.Connection | None:
        """A free connection at once, or None when none is: the common case, with no waiting to set up."""
        if self._closing:
            raise PoolClosed("the connection pool is closed")
        now = asyncio.get_running_loop().time()
        while self._free:
            conn = self._free.pop()
            if conn.closed:
                continue
            if 0 <= self._recycle < now - conn.last_usage:
                conn.close()
                continue
            self._used.add(conn)
            return conn
        return None

    async def acquire(self) -> aiopg.Connection:
        """A connection for the caller alone until it is released; waits while all `maxsize` are in use."""
        loop = asyncio.get_running_loop()
        while True:
            conn = self.acquire_free()
            if conn is not None:
                return conn
            if self.size < self.maxsize:
                conn = await self._connect()
                if self._closing:
                    await conn.close()
                    continue  # raises PoolClosed
                self._used.add(conn)
                return conn
            waiter: asyncio.Future[aiopg.Connection | None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    late = waiter.result()  # handed over just as the caller gave up: it goes back
                    if late is not None:
                        self.release(late)
                    else:
                        self._wake_one(None)
                raise
            finally:
                if not waiter.done():
                    self._waiters.remove(waiter)
            if handed is not None:
                return handed

    def release(self, conn: aiopg.Connection) -> None:
        """Take a connection back: to the next waiter, or the free stack; closed if its state is unknown."""
        self._used.discard(conn)
        if self._closing or conn.closed or conn.raw.get_transaction_status() != IDLE:
            if not conn.closed:
                conn.close()
            self._wake_one(None)
        elif not self._wake_one(conn):
            self._free.append(conn)
        if self._closing and not self._used:
            self._all_returned.set()

    def _wake_one(self, conn: aiopg.Connection | None) -> bool:
        """Give `conn` (or, with None, a free place) to the oldest waiter still waiting; False when none is."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                if conn is not None:
                    self._used.add(conn)
                waiter.set_result(conn)
                return True
        return False

    def close(self) -> None:
        """Close the free connections and refuse new acquires; connections in use close when released."""
        self._closing = True
        for conn in self._free:
            conn.close()
        self._free.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(PoolClosed("the connection pool is closed"))
        if not self._used:
            self._all_returned.set()

    async def wait_closed(self) -> None:
        """Wait until every connection in use has been released (and so closed)."""
        await self._all_returned.wait()
