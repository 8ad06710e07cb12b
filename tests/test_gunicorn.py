"""chatterd under gunicorn as in production: two workers migrating once; the embedded Postgres by default."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import aiohttp
import psycopg2
import pytest

from tests.conftest import PROJECT_DIR, free_port, wait_for


class Gunicorn:
    """`gunicorn web:create_app -c gunicorn.conf.py` in a subprocess, with its log kept in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 2, extra_args: tuple[str, ...] = ()) -> None:
        self.extra_args = extra_args
        self.port = free_port()
        self.env = env
        self.log_path = log_path
        self.workers = workers
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
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

        async def ready() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"gunicorn exited early:\n{self.log()}")
            return await self._answers()

        await wait_for(ready, timeout=60, what="gunicorn to answer")
        await wait_for(self._all_workers_up, timeout=60, what="every worker to start")

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
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode or 0


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY"}}
    env.update({"SECRET_KEY": "s" * 48, "ACCESS_LOG": "", **extra})
    return env


async def test_two_workers_on_an_empty_database_migrate_once(make_database, tmp_path):
    url = make_database()
    server = Gunicorn(base_env(DATABASE_URL=url, CHATTERD_VAR_DIR=str(tmp_path / "var")), tmp_path / "gunicorn.log")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/postchatt/", json={"username": "a", "message": "b"}) as resp:
                assert resp.status == 200
    finally:
        assert await server.stop() == 0
    log = server.log()
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT version, count(*) OVER () FROM schema_migrations")
        rows = cur.fetchall()
    conn.close()
    assert rows, "migrations were applied"
    for version, _ in rows:
        assert log.count(f"applied migration {version}") == 1, log


@pytest.fixture
def own_var_dir():
    """A var/ outside pytest's basetemp, which other pytest runs on the machine may prune while Postgres uses it."""
    folder = Path(tempfile.mkdtemp(prefix="chatterd-test-var-"))
    yield folder / "var"
    shutil.rmtree(folder, ignore_errors=True)


async def test_embedded_postgres_starts_from_empty_var_and_keeps_data(tmp_path, own_var_dir):
    var_dir = own_var_dir
    env = base_env(CHATTERD_VAR_DIR=str(var_dir))
    first = Gunicorn(env, tmp_path / "first.log")
    await first.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{first.url}/postchatt/", json={"username": "keep", "message": "me"}) as resp:
                assert resp.status == 200
    finally:
        assert await first.stop() == 0
    assert (var_dir / "pgdata" / "PG_VERSION").exists()
    assert not (var_dir / "pgdata" / "postmaster.pid").exists(), "Postgres stopped with the server"

    second = Gunicorn(env, tmp_path / "second.log")
    await second.start()
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{second.url}/getchatts/") as resp:
            rows = await resp.json()
        assert [r[:2] for r in rows] == [["keep", "me"]]
    finally:
        assert await second.stop() == 0


async def test_two_workers_both_refuse_a_token_right_after_logout(make_database, tmp_path):
    env = base_env(DATABASE_URL=make_database(), CHATTERD_VAR_DIR=str(tmp_path / "var"), ACCESS_LOG="-")
    # %P: the pid of the worker that answered, to see that both workers refused the token.
    server = Gunicorn(env, tmp_path / "g.log", extra_args=("--access-logformat", "served-by %P %r %s"))
    await server.start()
    try:
        # A fresh connection per request, so the kernel spreads them over both workers (reuse_port).
        async def call(method: str, path: str, **kwargs: object) -> tuple[int, object]:
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.request(method, server.url + path, **kwargs) as resp:
                    return resp.status, await resp.json() if resp.status not in {204} else None

        account = {"username": "ann", "password": "correct horse battery"}
        assert (await call("POST", "/register", json=account))[0] == 201
        status, body = await call("POST", "/login", json=account)
        assert status == 200
        headers = {"Authorization": f"Bearer {body['token']}"}  # type: ignore[index]
        before = await asyncio.gather(*(call("GET", "/get-user", headers=headers) for _ in range(20)))
        assert {status for status, _ in before} == {200}

        assert (await call("POST", "/logout", headers=headers))[0] == 204

        async def all_refused() -> bool:
            after = await asyncio.gather(*(call("GET", "/get-user", headers=headers) for _ in range(20)))
            return {status for status, _ in after} == {401}

        await wait_for(all_refused, timeout=1.0, what="every worker to refuse the logged-out token")
    finally:
        assert await server.stop() == 0
    log = server.log().splitlines()
    pids = {line.split("pid: ")[1].strip() for line in log if "Booting worker with pid" in line}
    assert len(pids) == 2
    refusing = {
        line.split()[1].strip("<>")
        for line in log
        if line.startswith("served-by") and "get-user" in line and line.endswith(" 401")
    }
    assert refusing == pids, server.log()
