"""The make targets a newcomer uses, run in a fresh checkout: dev (loopback, reload), stop and reset-db."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psutil
import pytest

from db.embedded import postmaster_pid
from tests.support.checkout import checkout_env, fresh_checkout, interrupt
from tests.support.common import free_port, wait_for


@pytest.fixture
def checkout() -> Iterator[Path]:
    with fresh_checkout() as root:
        yield root


class Make:
    """`make <target>` in the checkout, in a session of its own (so Ctrl-C reaches gunicorn too), logged to a file."""

    def __init__(self, root: Path, *args: str, **env: str) -> None:
        self.root = root
        self.log_path = root / f"make-{args[0]}-{secrets.token_hex(3)}.log"
        self.port = int(env.get("PORT", "0"))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["make", *args],  # noqa: S607 -- make from PATH, as a newcomer types it
                cwd=root,
                env=checkout_env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def get(self, path: str) -> tuple[int, str] | None:
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{self.port}{path}") as resp:
                    return resp.status, await resp.text()
        except aiohttp.ClientError:
            if self.process.poll() is not None:
                raise AssertionError(f"make exited early:\n{self.log()}") from None
            return None

    async def ready(self) -> None:
        async def answers() -> bool:
            return await self.get("/readyz") == (200, '{"status":"ok"}')

        await wait_for(answers, timeout=90, what=f"the server of make to answer\n{self.log()}")

    def wait(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)


def make_once(root: Path, target: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`make <target>` to its end; its output."""
    return subprocess.run(
        ["make", target],  # noqa: S607 -- make from PATH, as a newcomer types it
        cwd=root,
        env=checkout_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def listening(pid: int) -> set[tuple[str, int]]:
    """Every TCP address a process and its children listen on (children come and go while make starts)."""
    found = set()
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            connections = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found |= {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
    return found


async def test_make_dev_listens_on_loopback_only_and_reloads_changed_code(checkout, make_database):
    port = free_port()
    dev = Make(checkout, "dev", PORT=str(port), DATABASE_URL=make_database())
    try:
        await dev.ready()
        assert listening(dev.process.pid) == {("127.0.0.1", port)}, "one address, loopback, no second port"
        health = checkout / "views" / "health.py"
        health.write_text(health.read_text().replace('{"status": "ok"', '{"status": "reloaded"'))

        async def reloaded() -> bool:
            answer = await dev.get("/healthz")
            return answer is not None and '"reloaded"' in answer[1]

        await wait_for(reloaded, timeout=60, what="the changed view to be served")
    finally:
        interrupt(dev.process)
    assert "Shutting down: Master" in dev.log()


async def test_make_dev_binds_where_told(checkout, make_database):
    port = free_port()
    # Another loopback address stands for "told": the tests never listen beyond loopback.
    dev = Make(checkout, "dev", PORT=str(port), CHATTERD_BIND=f"127.0.0.2:{port}", DATABASE_URL=make_database())
    try:

        async def listens() -> bool:
            if dev.process.poll() is not None:
                raise AssertionError(dev.log())
            return ("127.0.0.2", port) in listening(dev.process.pid)

        await wait_for(listens, timeout=90, what="make dev to listen on the address it was given")
        assert listening(dev.process.pid) == {("127.0.0.2", port)}
    finally:
        interrupt(dev.process)


async def test_make_stop_ends_the_servers_and_the_postgres_they_used_and_reset_db_empties_it(checkout):
    first, second = free_port(), free_port()
    runs = [Make(checkout, "run", PORT=str(first)), Make(checkout, "run", PORT=str(second))]
    try:
        for run in runs:
            await run.ready()
        pgdata = checkout / "var" / "pgdata"
        assert postmaster_pid(pgdata) is not None
        # Two first starts at once: one makes the data folder and the database, and each step says so once.
        both = runs[0].log() + runs[1].log()
        assert runs[0].log() != runs[1].log()
        for step in ("first start: creating a Postgres data folder", "created the database chatterd"):
            assert both.count(step) == 1, both
        assert both.count("using the Postgres already running") == 1
        assert both.count("applied migration 0001_initial") == 1
        async with aiohttp.ClientSession() as session:
            account = {"username": "ann", "password": "correct horse battery"}
            async with session.post(f"http://127.0.0.1:{first}/register", json=account) as resp:
                assert resp.status == 201

        stop = await asyncio.to_thread(make_once, checkout, "stop")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert stop.stdout.count("stopping chatterd") == 2, stop.stdout
        assert [run.wait() for run in runs] == [0, 0]
        assert postmaster_pid(pgdata) is None
        assert list((checkout / "var" / "run").glob("*.pid")) == []

        again = Make(checkout, "run", PORT=str(first))
        runs.append(again)
        await again.ready()
        reset = await asyncio.to_thread(make_once, checkout, "reset-db")
        assert reset.returncode == 0, reset.stdout + reset.stderr
        assert not pgdata.exists() and "deleted" in reset.stdout

        fresh = Make(checkout, "run", PORT=str(first))
        runs.append(fresh)
        await fresh.ready()
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{first}/login", json=account) as resp:
                assert resp.status == 401, "the reset database has no users"
    finally:
        for run in runs:
            interrupt(run.process)


def test_reset_db_refuses_a_database_of_its_own(checkout):
    reset = make_once(checkout, "reset-db", DATABASE_URL="postgresql://nobody@127.0.0.1:1/x")
    assert reset.returncode != 0 and "DATABASE_URL is set" in reset.stdout + reset.stderr
