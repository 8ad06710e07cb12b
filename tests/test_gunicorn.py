"""chatterd under gunicorn as in production: two workers migrating once; the embedded Postgres by default."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import aiohttp
import psycopg2
import pytest

from tests.support.common import wait_for
from tests.support.launcher import Gunicorn, base_env


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
