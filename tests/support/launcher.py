"""The gunicorn launcher: `gunicorn web:create_app -c gunicorn.conf.py` in a subprocess, as in production."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from tests.support.common import PROJECT_DIR, end_process, free_port, wait_for


class Gunicorn:
    """`gunicorn web:create_app -c gunicorn.conf.py` in a subprocess, with its log kept in a file."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        workers: int = 2,
        extra_args: tuple[str, ...] = (),
        port: int | None = None,
    ) -> None:
        self.extra_args = extra_args
        self.port = port or free_port()
        self.env = env
        self.log_path = log_path
        self.workers = workers
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start it and wait until every worker serves."""
        await self.spawn()

        async def ready() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"gunicorn exited early:\n{self.log()}")
            return await self._answers()

        await wait_for(ready, timeout=60, what="gunicorn to answer")
        await wait_for(self._all_workers_up, timeout=60, what="every worker to start")

    async def refused(self, timeout: float = 60) -> int:
        """Start it expecting it not to: its exit status, once it has exited (within `timeout` seconds)."""
        await self.spawn()
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout=timeout)
        except TimeoutError:
            await self.stop()
            raise AssertionError(f"gunicorn did not exit within {timeout} s:\n{self.log()}") from None

    async def spawn(self) -> None:
        """Start the process, waiting for nothing."""
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gunicorn",
            "web:create_app",
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            *self.extra_args,
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()

    async def _answers(self) -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(f"{self.url}/getchatts/") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def _all_workers_up(self) -> bool:
        return (
            self.log().count("Booting worker") >= self.workers and self.log().count("chatterd worker") >= self.workers
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def stop(self) -> int:
        assert self.proc is not None
        return await end_process(self.proc, signal.SIGTERM, timeout=60)


@contextlib.asynccontextmanager
async def running(env: dict[str, str], log_path: Path, workers: int = 2) -> AsyncIterator[Gunicorn]:
    """A Gunicorn started for the block, and stopped (cleanly) after it."""
    server = Gunicorn(env, log_path, workers=workers)
    await server.start()
    try:
        yield server
    finally:
        assert await server.stop() == 0


def base_env(**extra: str) -> dict[str, str]:
    """This process's environment minus its database and secret, plus a fixed secret, no access log, and `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY"}}
    env.update({"SECRET_KEY": "s" * 48, "ACCESS_LOG": "", **extra})
    return env
