"""Several gunicorn masters from one checkout: a taken port is refused, each keeps its metrics, Postgres is shared."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import psycopg2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core import startup
from db.embedded import DATABASE_NAME, postmaster_pid, stop_running
from tests.support.launcher import Gunicorn, base_env
from tests.support.load import ACCESS_LOG_ARGS, served, worker_pids
from tests.support.pgctl import EmbeddedControl, private_var_dir

ROUNDS = 40


async def fresh_get(url: str) -> int:
    """GET on a new connection, so that any worker listening on the port may take it."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.get(url) as resp:
            await resp.read()
            return resp.status


def refusal_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "cannot start" in line]


async def test_a_second_server_on_a_taken_port_refuses_to_start_and_the_first_keeps_every_connection(
    make_database, tmp_path
):
    env = base_env(DATABASE_URL=make_database(), CHATTERD_VAR_DIR=str(tmp_path / "var"), ACCESS_LOG="-")
    first = Gunicorn(env, tmp_path / "first.log", extra_args=ACCESS_LOG_ARGS)
    await first.start()
    try:
        second = Gunicorn(env, tmp_path / "second.log", extra_args=ACCESS_LOG_ARGS)
        second.port = first.port
        assert await second.refused(timeout=30) == 1
        log = second.log()
        assert refusal_lines(log) == [
            line for line in log.splitlines() if f"another process already listens on 127.0.0.1:{first.port}" in line
        ]
        assert len(refusal_lines(log)) == 1, log
        assert "Traceback" not in log and "Booting worker" not in log, log

        statuses = await asyncio.gather(*(fresh_get(f"{first.url}/healthz") for _ in range(ROUNDS)))
        assert statuses == [200] * ROUNDS
        pids = worker_pids(first.proc.pid)
        answered_by = {s.pid for s in served(first.log()) if s.path == "/healthz"}
        # Every connection reached the first server, and reuse_port still spreads them over both of its workers.
        assert answered_by == set(pids), (answered_by, pids)
    finally:
        assert await first.stop() == 0


async def test_a_plain_listener_on_the_port_is_refused_too(make_database, tmp_path):
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as another server's worker would
        other.bind(("127.0.0.1", 0))
        other.listen()
        server = Gunicorn(base_env(DATABASE_URL=make_database()), tmp_path / "g.log")
        server.port = other.getsockname()[1]
        assert await server.refused() == 1
    assert len(refusal_lines(server.log())) == 1, server.log()


def test_a_master_holds_its_port_even_while_no_worker_listens():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        address = free.getsockname()
    held = startup.reserve([address])
    try:
        assert startup.taken_address([address]) == f"127.0.0.1:{address[1]}", "another master is refused"
        with socket.socket() as worker:  # this master's workers still bind, as gunicorn's do
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            worker.bind(address)
            worker.listen()
    finally:
        for reservation in held:
            reservation.close()
    assert startup.taken_address([address]) is None


def getchatts_count(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "chatterd_http_requests_total"
        and sample.labels == {"method": "GET", "route": "/getchatts", "status": "200"}
    )


async def scrape(server: Gunicorn) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/metrics") as resp:
        assert resp.status == 200
        return getchatts_count(await resp.text())


def folders(var_dir: Path) -> set[Path]:
    return set((var_dir / "prometheus").iterdir())


async def test_two_masters_of_one_checkout_keep_their_own_metrics(make_database, tmp_path):
    var_dir = tmp_path / "var"
    env = base_env(DATABASE_URL=make_database(), CHATTERD_VAR_DIR=str(var_dir))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    first, second = Gunicorn(env, tmp_path / "first.log"), Gunicorn(env, tmp_path / "second.log")
    await first.start()
    try:
        assert [await fresh_get(f"{first.url}/getchatts/") for _ in range(ROUNDS)] == [200] * ROUNDS
        counted = await scrape(first)
        assert counted >= ROUNDS
        (first_folder,) = folders(var_dir)

        await second.start()
        try:
            assert [await fresh_get(f"{second.url}/getchatts/") for _ in range(5)] == [200] * 5
            assert await scrape(first) == counted, "the second master left the first one's files alone"
            assert 5 <= await scrape(second) < counted, "each master counts its own requests only"
            second_folder = (folders(var_dir) - {first_folder}).pop()
            assert first_folder.name.startswith(f"master-{first.proc.pid}-")
            assert second_folder.name.startswith(f"master-{second.proc.pid}-")
        finally:
            assert await second.stop() == 0
        assert folders(var_dir) == {first_folder}, "a master removes its own folder at exit, and only that"
        assert await scrape(first) == counted
    finally:
        assert await first.stop() == 0
    assert folders(var_dir) == set()


def answers(var_dir: Path) -> bool:
    """The embedded Postgres of `var_dir` takes a connection."""
    with psycopg2.connect(EmbeddedControl(var_dir).url) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database()")
        (name,) = cur.fetchone()
    conn.close()
    return name == DATABASE_NAME


async def post(server: Gunicorn, message: str) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/postchatt/", json={"username": "pg", "message": message}) as resp:
            return resp.status


@pytest.fixture
def var_dir():
    with private_var_dir("chatterd-owner-") as path:
        yield path


@pytest.fixture
async def pair(var_dir, tmp_path):
    """Two servers on the embedded Postgres of one var/ folder, not started; whatever still runs is stopped after."""
    env = base_env(CHATTERD_VAR_DIR=str(var_dir))
    servers = Gunicorn(env, tmp_path / "starter.log"), Gunicorn(env, tmp_path / "joiner.log")
    yield servers
    for server in servers:
        if server.proc is not None:
            await server.stop()


async def test_only_the_server_that_started_the_embedded_postgres_stops_it(var_dir, pair):
    starter, joiner = pair
    await starter.start()
    assert "first start: creating a Postgres data folder" in starter.log()
    await joiner.start()
    assert "using the Postgres already running" in joiner.log()
    assert await joiner.stop() == 0
    assert postmaster_pid(var_dir / "pgdata") is not None, "the server that found Postgres running left it running"
    assert answers(var_dir)
    assert await post(starter, "still served") == 200
    assert await starter.stop() == 0
    assert postmaster_pid(var_dir / "pgdata") is None, "the server that started Postgres stopped it, being the last"
    assert "stopped the Postgres" in starter.log()


async def test_the_starter_leaves_postgres_to_a_server_still_using_it(var_dir, pair):
    starter, joiner = pair
    await starter.start()
    await joiner.start()
    assert await starter.stop() == 0
    assert "still use it" in starter.log()
    assert await post(joiner, "served after the starter left") == 200
    assert await joiner.stop() == 0
    pid = postmaster_pid(var_dir / "pgdata")
    assert pid is not None, "nobody who did not start it stops it"
    assert stop_running(var_dir) == pid  # what `make stop` does
    assert postmaster_pid(var_dir / "pgdata") is None
