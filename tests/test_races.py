"""Races driven for real against a multi-worker gunicorn: a demotion during a burst of logins, a burst of posts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import psycopg2
import pytest

from tests.support.common import wait_for
from tests.support.launcher import Gunicorn, base_env
from tests.support.load import ACCESS_LOG_ARGS, served, worker_pids

PASSWORD = "correct horse battery"
WORKERS = 3


@pytest.fixture
async def server(make_database: Any, tmp_path: Path) -> AsyncIterator[Gunicorn]:
    """One gunicorn with several workers, real argon2 costs, and an access log that names the worker."""
    env = base_env(
        DATABASE_URL=make_database(),
        CHATTERD_VAR_DIR=str(tmp_path / "var"),
        ACCESS_LOG="-",
        # attempts in flight count against these limits: room for the burst's
        LOGIN_MAX_FAILURES="1000",
        LOGIN_MAX_FAILURES_PER_ADDRESS="1000",
    )
    gunicorn = Gunicorn(env, tmp_path / "gunicorn.log", workers=WORKERS, extra_args=ACCESS_LOG_ARGS)
    await gunicorn.start()
    try:
        yield gunicorn
    finally:
        assert await gunicorn.stop() == 0


def execute(url: str, statement: str, *params: Any) -> None:
    """One statement committed from outside the server, as an operator's psql session would."""
    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement, params)
    finally:
        conn.close()


async def call(
    method: str, url: str, *, token: str | None = None, rid: str = "", **kwargs: Any
) -> tuple[int, dict[str, Any] | None]:
    """One request on a new connection (so any worker may answer): its status and JSON body (None when empty)."""
    headers = {"X-Request-ID": rid} if rid else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        timeout = aiohttp.ClientTimeout(total=30)
        async with session.request(method, url, headers=headers, timeout=timeout, **kwargs) as resp:
            body = await resp.json() if resp.content_length else None
            return resp.status, body


@dataclass(frozen=True, slots=True)
class Minted:
    """A JWT a login of the burst returned: when its request was sent, its claims, and what it did at once."""

    sent: float  # time.time()
    token: str
    claims: dict[str, Any]
    first_uses: tuple[int, ...]  # statuses of GET /audit (admins only) sent the moment the token arrived


async def login_loop(url: str, stop: asyncio.Event, minted: list[Minted], sent: list[int]) -> None:
    """Log in again and again until told to stop; use every token at once for something only an admin may do."""
    while not stop.is_set() and sent[0] < 400:
        sent[0] += 1
        started = time.time()
        status, body = await call("POST", f"{url}/login", json={"username": "root", "password": PASSWORD})
        if status != 200:
            assert status == 429, (status, body)  # a worker bounds the hashes one address has in flight
            continue
        assert body is not None
        token = body["token"]
        uses = await asyncio.gather(*(call("GET", f"{url}/audit?limit=1", token=token) for _ in range(WORKERS)))
        claims = jwt.decode(token, options={"verify_signature": False})
        minted.append(Minted(started, token, claims, tuple(status for status, _ in uses)))


async def test_no_jwt_minted_after_a_demotion_carries_or_acts_with_the_old_role(server):
    """A burst of /login while an operator demotes the admin in SQL, on a server with several workers."""
    database_url = server.env["DATABASE_URL"]
    assert (await call("POST", f"{server.url}/register", json={"username": "root", "password": PASSWORD}))[0] == 201
    await asyncio.to_thread(execute, database_url, "UPDATE users SET role = 'admin' WHERE username = 'root'")
    stop, minted, sent = asyncio.Event(), [], [0]
    loops = [asyncio.create_task(login_loop(server.url, stop, minted, sent)) for _ in range(2 * WORKERS)]
    try:
        await wait_for(lambda: asyncio.sleep(0, len(minted) >= 6), timeout=60, what="logins under way")
        await asyncio.to_thread(execute, database_url, "UPDATE users SET role = 'user' WHERE username = 'root'")
        demoted = time.time()  # the demotion has returned: it is committed
        await asyncio.sleep(1.5)  # logins go on across the demotion; none of them is awaited here
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loops), timeout=60)

    after = [m for m in minted if m.claims["iat"] > demoted]
    in_flight = [m for m in after if m.sent < demoted]
    assert in_flight, "no login was hashing while the demotion ran: the race was not exercised"
    for m in after:
        assert m.claims["role"] == "user", (m.sent - demoted, m.claims)
        assert set(m.first_uses) == {403}, (m.sent - demoted, m.first_uses)

    # Tokens minted before the demotion lose the role everywhere within the contract's second.
    before = [m for m in minted if m.claims["iat"] <= demoted]
    assert before
    assert time.time() > demoted + 1.0
    assert server.proc is not None
    workers = set(worker_pids(server.proc.pid))
    probes = 0

    async def every_worker_refuses() -> bool:
        nonlocal probes
        for m in before:
            probes += 1
            status, _ = await call("GET", f"{server.url}/audit?limit=1", token=m.token, rid=f"late-{probes}")
            assert status == 403, status
        refusing = {e.pid for e in served(server.log()) if e.status == 403 and e.rid.startswith("late-")}
        return refusing >= workers

    await wait_for(every_worker_refuses, timeout=30, what="every worker to refuse the old tokens' role")


def fetch_messages(url: str) -> list[str]:
    """Every stored chatt's message, read straight from the database."""
    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT message FROM chatts")
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


async def test_a_burst_of_posts_isolates_the_ones_that_fail(server):
    """Posts at once over new connections, some breaking a rule of the database, one poster deleted mid-burst."""
    database_url = server.env["DATABASE_URL"]
    tokens = {}
    for name in ("alice", "doomed"):
        assert (await call("POST", f"{server.url}/register", json={"username": name, "password": PASSWORD}))[0] == 201
        status, body = await call("POST", f"{server.url}/login", json={"username": name, "password": PASSWORD})
        assert status == 200 and body is not None
        tokens[name] = body["token"]
    await asyncio.to_thread(
        execute, database_url, "ALTER TABLE chatts ADD CONSTRAINT no_spam CHECK (message NOT LIKE 'spam%%')"
    )
    posters = [None, "alice", "doomed"]
    posts = [(posters[i % 3], f"spam {i}" if i % 7 == 3 else f"ham {i}") for i in range(180)]
    answered: list[int] = []

    async def post(poster: str | None, message: str) -> int:
        if poster is None:
            status, _ = await call("POST", f"{server.url}/postchatt/", json={"username": "anon", "message": message})
        else:
            status, _ = await call("POST", f"{server.url}/postauth/", json={"message": message}, token=tokens[poster])
        answered.append(status)
        return status

    async def burst_across_a_deletion() -> list[int]:
        """Half the burst at once; the poster is deleted once 40 are answered, then the other half is sent."""
        first = asyncio.gather(*(post(*p) for p in posts[:90]))
        await wait_for(lambda: asyncio.sleep(0, len(answered) >= 40), timeout=60, what="the burst under way")
        await asyncio.to_thread(execute, database_url, "DELETE FROM users WHERE username = 'doomed'")
        second = asyncio.gather(*(post(*p) for p in posts[90:]))
        return [*await first, *await second]

    statuses = await burst_across_a_deletion()
    for n, ((poster, message), status) in enumerate(zip(posts, statuses, strict=True)):
        refused = 422 if message.startswith("spam") else 200
        if poster != "doomed":
            assert status == refused, (poster, message, status)
        elif n < 90:  # in flight while the user was deleted: stored, or refused on its own
            assert status in {refused, 401}, (poster, message, status)
        else:  # sent after: refused at the door, or by the INSERT if the worker had not heard yet
            assert status == 401, (poster, message, status)
    stored = await asyncio.to_thread(fetch_messages, database_url)
    assert sorted(stored) == sorted(m for (_, m), status in zip(posts, statuses, strict=True) if status == 200)
