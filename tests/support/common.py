"""Helpers most test modules use: the project folder, the Google client ID, ports, waits, headers, clean tables."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from aiohttp import web

from core.keys import db_key
from db.pool import DatabaseUnavailable

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
CLIENT_ID = "test-client.apps.googleusercontent.com"
T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(condition: Callable[[], Awaitable[T | None]], *, timeout: float, what: str) -> T:
    """Poll an async condition until it returns something truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def end_process(proc: asyncio.subprocess.Process, sig: int, *, timeout: float) -> int:
    """Send `sig` (unless it has exited), wait up to `timeout` seconds, then SIGKILL; its exit code."""
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), timeout=timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0


def bearer(token: str) -> dict[str, str]:
    """The Authorization header that presents `token`."""
    return {"Authorization": f"Bearer {token}"}


async def truncate_all(app: web.Application) -> None:
    """Empty every table but the migration record.

    The app's background tasks (the mail sender, the last-use writer) already run and may lock, in another order,
    tables the TRUNCATE takes one by one; Postgres ends such a deadlock by failing one side, so a failed TRUNCATE
    is tried again.
    """
    async with app[db_key].cursor() as cur:
        await cur.execute(
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables"
            " WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        (tables,) = await cur.fetchone()
    if not tables:
        return
    for attempt in range(5):
        try:
            async with app[db_key].cursor() as cur:
                await cur.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
            return
        except DatabaseUnavailable as exc:
            if "deadlock" not in str(exc) or attempt == 4:
                raise
