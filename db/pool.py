"""The database: pooled aiopg connections with bounded connect/acquire timeouts, driver errors turned into
DatabaseUnavailable."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiopg
import psycopg2
import psycopg2.extensions
import psycopg2.sql

from db.connections import ConnectionPool

logger = logging.getLogger(__name__)

# Bound parameters: positional (%s) or named (%(name)s).
Params = Sequence[Any] | dict[str, Any] | None

# Errors that mean "Postgres is not there right now", as opposed to a bug in a query.
_UNAVAILABLE = (
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    psycopg2.errors.AdminShutdown,
    psycopg2.errors.CannotConnectNow,
    OSError,
    TimeoutError,
)


# On the LISTEN connection any driver error means the connection is gone.
_LISTENER_ERRORS = (*_UNAVAILABLE, psycopg2.Error)


class DatabaseUnavailable(Exception):
    """Postgres could not be reached, or did not answer in time."""


class Cursor:
    """A thin cursor that counts statements, so benches can report queries per request."""

    __slots__ = ("_cur", "_db")

    def __init__(self, cur: aiopg.Cursor, db: Database) -> None:
        self._cur = cur
        self._db = db

    async def execute(self, query: str, params: Params = None) -> None:
        """Run one statement with bound parameters."""
        self._db.queries += 1
        await self._cur.execute(query, params)

    async def fetchone(self) -> Any:
        """The next row, or None."""
        return await self._cur.fetchone()

    async def fetchall(self) -> list[Any]:
        """All remaining rows."""
        return list(await self._cur.fetchall())

    @property
    def rowcount(self) -> int:
        """Rows touched by the last statement."""
        return int(self._cur.rowcount)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """BEGIN … COMMIT, or ROLLBACK when the block raises."""
        await self.execute("BEGIN")
        try:
            yield
        except BaseException:
            if not self._cur.closed and not self._cur.connection.closed:
                await self._cur.execute("ROLLBACK")
            raise
        await self.execute("COMMIT")


class Notifications:
    """A dedicated connection LISTENing on one channel."""

    def __init__(self, conn: aiopg.Connection, timeout: float) -> None:
        self._conn = conn
        self._timeout = timeout

    async def get(self, wait: float) -> str | None:
        """The next payload; None when `wait` seconds pass quietly and the connection still answers a ping."""
        try:
            async with asyncio.timeout(wait):
                notice = await self._conn.notifies.get()
            return str(notice.payload)
        except TimeoutError:
            pass
        except _LISTENER_ERRORS as exc:
            raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
        # A quiet channel may be a dead connection (a partition sends no FIN): check it answers.
        try:
            async with asyncio.timeout(self._timeout):
                async with self._conn.cursor() as cur:
                    await cur.execute("SELECT 1")
        except _LISTENER_ERRORS as exc:
            raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
        return None


class Database:
    """The application's connection pool; hand out a cursor for the shortest possible time.

    The pool (DATABASE_URL) may go through a pooler in transaction mode, so nothing done on it relies on the state of
    a session: each statement or transaction stands alone. What needs a session of its own, LISTEN and the migration
    lock, uses a direct connection (`direct_dsn`, from DATABASE_LISTEN_URL).
    """

    def __init__(self, pool: ConnectionPool, *, acquire_timeout: float, direct_dsn: str) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        self.direct_dsn = direct_dsn
        self.queries = 0

    async def _connect_direct(self, statement_timeout: float) -> aiopg.Connection:
        try:
            async with asyncio.timeout(self.acquire_timeout):
                return await aiopg.connect(
                    self.direct_dsn,
                    timeout=statement_timeout,
                    enable_json=False,
                    enable_hstore=False,
                    enable_uuid=False,
                )
        except _LISTENER_ERRORS as exc:
            raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc

    @asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[Notifications]:
        """LISTEN on a direct connection of its own (outside the pool), closed when the block ends."""
        conn = await self._connect_direct(self.acquire_timeout)
        try:
            async with asyncio.timeout(self.acquire_timeout):
                async with conn.cursor() as cur:
                    await cur.execute(psycopg2.sql.SQL("LISTEN {}").format(psycopg2.sql.Identifier(channel)))
            yield Notifications(conn, self.acquire_timeout)
        except _LISTENER_ERRORS as exc:
            raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
        finally:
            await conn.close()

    @asynccontextmanager
    async def direct_cursor(self, statement_timeout: float) -> AsyncIterator[Cursor]:
        """A cursor on a direct connection of its own, for work that needs one session throughout; closed after."""
        conn = await self._connect_direct(statement_timeout)
        try:
            async with conn.cursor() as cur:
                yield Cursor(cur, self)
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
        finally:
            await conn.close()

    @asynccontextmanager
    async def cursor(self) -> AsyncIterator[Cursor]:
        """A cursor on a pooled connection; driver failures surface as DatabaseUnavailable."""
        conn = self.pool.acquire_free()
        if conn is None:
            try:
                async with asyncio.timeout(self.acquire_timeout):
                    conn = await self.pool.acquire()
            except _UNAVAILABLE as exc:
                raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
        try:
            async with conn.cursor() as cur:
                yield Cursor(cur, self)
        except _UNAVAILABLE as exc:
            conn.close()  # its state is unknown; the pool replaces it
            raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
        except BaseException:
            if not conn.closed and conn.raw.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                conn.close()
            raise
        finally:
            self.pool.release(conn)

    async def execute(self, query: str, params: Params = None) -> int:
        """Run one statement on a pooled connection; the number of rows it touched."""
        async with self.cursor() as cur:
            await cur.execute(query, params)
            return cur.rowcount

    async def fetch_one(self, query: str, params: Params = None) -> Any:
        """Run one statement; its first row, or None."""
        async with self.cursor() as cur:
            await cur.execute(query, params)
            return await cur.fetchone()

    async def fetch_all(self, query: str, params: Params = None) -> list[Any]:
        """Run one statement; all its rows."""
        async with self.cursor() as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    async def ping(self) -> bool:
        """True when Postgres answers a trivial query."""
        try:
            async with self.cursor() as cur:
                await cur.execute("SELECT 1")
                return bool((await cur.fetchone()) == (1,))
        except DatabaseUnavailable:
            return False


def connect_dsn(url: str, *, connect_timeout: float, application_name: str = "chatterd") -> str:
    """The libpq DSN with our connect timeout and name added, whatever form the URL came in."""
    params = psycopg2.extensions.parse_dsn(url)
    params.setdefault("connect_timeout", str(max(1, round(connect_timeout))))
    params.setdefault("application_name", application_name)
    return str(psycopg2.extensions.make_dsn(**params))


async def create_pool(
    url: str, *, minsize: int, maxsize: int, connect_timeout: float, statement_timeout: float
) -> ConnectionPool:
    """A pool of aiopg connections that skips the extra round trips and conversions chatterd does not need."""
    pool = ConnectionPool(
        connect_dsn(url, connect_timeout=connect_timeout),
        minsize=minsize,
        maxsize=maxsize,
        timeout=statement_timeout,
        recycle=600,
        enable_json=False,
        enable_hstore=False,
        enable_uuid=False,
    )
    try:
        await pool.fill()
    except BaseException:
        pool.close()
        raise
    return pool


def describe_connections(url: str, listen_url: str | None) -> str:
    """Which connection does what, for the log at start; no password."""
    if not listen_url or listen_url == url:
        return f"database: queries, the events channel (LISTEN) and the migration lock all on {_where(url)}"
    return (
        f"database: queries on {_where(url)} (DATABASE_URL, may be a pooler in transaction mode);"
        f" the events channel (LISTEN) and the migration lock on {_where(listen_url)} (DATABASE_LISTEN_URL, direct)"
    )


def _where(url: str) -> str:
    """user@host:port/dbname of a libpq URL or DSN."""
    params = psycopg2.extensions.parse_dsn(url)
    port = f":{params['port']}" if params.get("port") else ""
    return f"{params.get('user', '')}@{params.get('host', 'localhost')}{port}/{params.get('dbname', '')}"
