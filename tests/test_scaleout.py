"""Scale-out: two chatterd servers (two gunicorn masters, two workers each) on one Postgres act as one."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.accounts import signed_in_at
from tests.support.common import CLIENT_ID, wait_for
from tests.support.launcher import Gunicorn
from tests.support.load import CHATTERID, JWT, Credentials, google_sign_in, send, served
from tests.support.probes import refused_everywhere
from tests.support.scaleout import all_workers, answered_by, fetch, run_sql, server_pair

PASSWORD = "correct horse battery"
MAX_FAILURES = 3
MAX_REFRESHES = 5
# The user a Google subject (a parameter) signs in as, for an operator's SQL.
OF_SUB = "id = (SELECT user_id FROM google_identities WHERE sub = %s)"


@pytest.fixture
async def servers(make_database: Any, google_certs_url: str, tmp_path: Path) -> AsyncIterator[list[Gunicorn]]:
    """Two servers sharing one database and one SECRET_KEY, each with its own var/ and two workers."""
    limits = {"LOGIN_MAX_FAILURES": str(MAX_FAILURES), "REFRESH_MAX_PER_SESSION": str(MAX_REFRESHES)}
    async with server_pair(make_database(), google_certs_url, tmp_path, **limits) as pair:
        yield pair


async def call(method: str, url: str, *, token: str | None = None, **kwargs: Any) -> tuple[int, Any]:
    """One request on a fresh connection (so any worker may answer): its status and JSON body (None when empty)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.request(method, url, headers=headers, **kwargs) as resp:
            body = await resp.json() if resp.content_length else None
            return resp.status, body


async def log_in(url: str, username: str, password: str = PASSWORD) -> tuple[int, Any]:
    """POST /login."""
    return await call("POST", f"{url}/login", json={"username": username, "password": password})


async def test_credentials_issued_by_one_server_work_on_the_other(servers, google, make_client):
    """A chatterID and a JWT from A, an account registered on B: each works on the other server (same SECRET_KEY)."""
    a, b = servers
    async with aiohttp.ClientSession() as session:
        signed_in = await google_sign_in(
            session, a.url, google.id_token(client_id=CLIENT_ID, sub="scale", name="Sam"), CLIENT_ID
        )
    creds = Credentials(chatter_id=signed_in["chatterID"], token=signed_in["token"])
    async with aiohttp.ClientSession() as session:
        for kind in (CHATTERID, JWT):
            shot = await send(session, b.url, kind, f"on-b-{kind}", creds, timeout=5)
            assert shot.status == 200, shot
    status, body = await call("GET", f"{b.url}/get-user", token=creds.token)
    assert status == 200 and body["user"]["username"] == "Sam"
    # A server with another SECRET_KEY on the same database refuses the JWT: the key must be the same everywhere.
    stranger = await make_client(database_url=a.env["DATABASE_URL"], secret_key="another key " * 4)
    assert (await stranger.get("/get-user", headers={"Authorization": f"Bearer {creds.token}"})).status == 401

    assert (await call("POST", f"{b.url}/register", json={"username": "bea", "password": PASSWORD}))[0] == 201
    status, body = await log_in(a.url, "bea")
    assert status == 200
    assert (await call("GET", f"{b.url}/get-user", token=body["token"]))[1]["user"]["username"] == "bea"

    # What one server stores, the other serves at once (its in-memory feed is dropped by the NOTIFY).
    async def seen_on_a() -> bool:
        status, rows = await call("GET", f"{a.url}/getchatts/")
        return status == 200 and {"on-b-chatterid", "on-b-jwt"} <= {row[1] for row in rows}

    await wait_for(seen_on_a, timeout=1.0, what="B's chatts on A")


async def test_logout_on_one_server_is_refused_by_the_other_within_a_second(servers, google, capsys):
    """A logout on A, with the JWT of one sign-in and the chatterID of another: both of B's workers refuse every
    credential of that sign-in (its JWT and its chatterID) in well under a second."""
    a, b = servers
    figures = []
    for used in (JWT, CHATTERID):
        async with aiohttp.ClientSession() as session:
            signed_in = await google_sign_in(
                session, a.url, google.id_token(client_id=CLIENT_ID, sub="leaver", name="Lee"), CLIENT_ID
            )
        creds = {JWT: Credentials(token=signed_in["token"]), CHATTERID: Credentials(chatter_id=signed_in["chatterID"])}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            # Both credentials work on every worker of B first (and B's workers cache the chatterID).
            for kind, cred in creds.items():
                before = await asyncio.gather(
                    *(send(session, b.url, kind, f"pre-{used}-{kind}-{n}", cred, timeout=5) for n in range(20))
                )
                assert {shot.status for shot in before} == {200}, before

        token = signed_in["token"] if used == JWT else signed_in["chatterID"]
        assert (await call("POST", f"{a.url}/logout", token=token))[0] == 204
        for kind, cred in creds.items():
            accepted_for, covered, accepted = await refused_everywhere(b, kind, cred, f"{used}-{kind}-out", bound=1.0)
            assert accepted_for < 1.0
            figures.append(
                f"logout with the {used}, {kind} probed: last accepted {accepted_for * 1000:.0f} ms after"
                f" ({accepted} probes accepted), both workers seen refusing by {covered * 1000:.0f} ms"
            )
    with capsys.disabled():
        print("\nscale-out logout on A, probed on B: " + "; ".join(figures))


async def test_failed_logins_are_counted_across_both_servers(servers):
    """LOGIN_MAX_FAILURES wrong passwords spread over A and B lock the account on both, right password or not."""
    a, b = servers
    assert (await call("POST", f"{a.url}/register", json={"username": "tom", "password": PASSWORD}))[0] == 201
    for n in range(MAX_FAILURES):
        status, body = await log_in((a, b)[n % 2].url, "tom", "wrong password")
        assert status == 401, body
    for server in (b, a):
        status, body = await log_in(server.url, "tom")
        assert status == 429, body
        assert set(body) == {"message"}


async def test_a_write_is_read_at_once_on_every_worker_of_both_servers(servers):
    """Post on one server, read at once on new connections to both (limit and after): never missing, ever."""
    previous = None
    for n in range(120):
        status, _ = await fetch(
            "POST", f"{servers[n % 2].url}/postchatt/", f"rw-post-{n}", json={"username": "rw", "message": f"m{n}"}
        )
        assert status == 200
        for reader in servers:
            status, rows = await fetch("GET", f"{reader.url}/getchatts/?limit=2", f"rw-read-{n}")
            assert status == 200 and rows[-1][1] == f"m{n}", (n, rows)
            if previous is not None:
                status, rows = await fetch("GET", f"{reader.url}/getchatts/?after={previous}", f"rw-after-{n}")
                assert status == 200 and [row[1] for row in rows] == [f"m{n}"], (n, rows)
        previous = rows[-1][2]
    assert answered_by(servers, "rw-read-") == all_workers(servers)


async def test_a_delete_is_read_at_once_on_every_worker_of_both_servers(servers):
    """A moderator deletes on one server; both servers' next reads, on any worker, no longer have the chatt."""
    a, b = servers
    assert (await call("POST", f"{a.url}/register", json={"username": "mo", "password": PASSWORD}))[0] == 201
    await asyncio.to_thread(run_sql, a.env["DATABASE_URL"], "UPDATE users SET role = 'moderator' WHERE username = 'mo'")
    token = (await log_in(b.url, "mo"))[1]["token"]
    for n in range(40):
        assert (await fetch("POST", f"{a.url}/postchatt/", f"del-post-{n}", json={"username": "x", "message": "spam"}))[
            0
        ] == 200
        status, rows = await fetch("GET", f"{b.url}/getchatts/?limit=1", f"del-seen-{n}")
        assert rows[-1][1] == "spam"
        assert (await fetch("DELETE", f"{servers[n % 2].url}/chatts/{rows[-1][2]}", f"del-{n}", token=token))[0] == 204
        for reader in servers:
            status, rows = await fetch("GET", f"{reader.url}/getchatts/", f"del-read-{n}")
            assert status == 200 and rows == [], (n, rows)
    assert answered_by(servers, "del-read-") == all_workers(servers)


async def test_the_pages_read_is_as_fresh_and_tells_signed_posts_on_every_worker_of_both_servers(servers):
    """Posters at once, signed and not (under the same registered name), each reading GET /chatts right after its post
    is answered, on a new connection to the other server: its chatt is there, flagged as it was posted, every time."""
    token = await signed_in_at(servers[0].url, "sig")

    async def poster(k: int) -> None:
        mine = None
        for n in range(15):
            signed, message = (k + n) % 2 == 0, f"p{k}-{n}"
            url = servers[(k + n) % 2].url
            if signed:
                posted = await fetch(
                    "POST", f"{url}/postauth/", f"pg-post-{k}-{n}", token=token, json={"message": message}
                )
            else:
                posted = await fetch(
                    "POST", f"{url}/postchatt/", f"pg-post-{k}-{n}", json={"username": "sig", "message": message}
                )
            assert posted[0] == 200
            reader = servers[(k + n + 1) % 2].url
            query = "" if mine is None else f"?after={mine}"
            status, body = await fetch("GET", f"{reader}/chatts{query}", f"pg-read-{k}-{n}")
            assert status == 200
            found = [c for c in body["chatts"] if c["message"] == message]
            assert [(c["username"], c["signed"]) for c in found] == [("sig", signed)], (k, n, body)
            mine = found[0]["id"]

    await asyncio.gather(*(poster(k) for k in range(8)))
    assert answered_by(servers, "pg-read-") == all_workers(servers)
    body = (await fetch("GET", f"{servers[1].url}/chatts", "pg-all"))[1]
    rows = (await fetch("GET", f"{servers[0].url}/getchatts/", "pg-rows"))[1]
    assert [[c["username"], c["message"], c["id"], c["timestamp"]] for c in body["chatts"]] == rows
    assert sum(c["signed"] for c in body["chatts"]) == len(rows) // 2 == 60


async def test_a_demotion_and_rename_in_sql_reach_every_worker_within_a_second(servers, google):
    """An operator demotes and renames a user in psql: the JWT and chatterID they hold act as the new standing."""
    a = servers[0]
    url = a.env["DATABASE_URL"]
    async with aiohttp.ClientSession() as session:
        signed_in = await google_sign_in(
            session, a.url, google.id_token(client_id=CLIENT_ID, sub="demoted", name="Dee"), CLIENT_ID
        )
    await asyncio.to_thread(run_sql, url, f"UPDATE users SET role = 'admin' WHERE {OF_SUB}", ("demoted",))
    credentials = {"jwt": signed_in["token"], "chatterid": signed_in["chatterID"]}
    workers = all_workers(servers)
    probes = 0

    async def everyone_says(role: str, username: str, tag: str) -> bool:
        nonlocal probes
        probes += 1
        for server in servers:
            for kind, token in credentials.items():
                status, body = await fetch("GET", f"{server.url}/get-user", f"{tag}-{kind}-{probes}", token=token)
                assert status == 200, body
                if (body["user"]["role"], body["user"]["username"]) != (role, username):
                    return False
        return all(answered_by(servers, f"{tag}-{kind}-") == workers for kind in credentials)

    await wait_for(lambda: everyone_says("admin", "Dee", "before"), timeout=10.0, what="every worker to see the admin")
    await asyncio.to_thread(
        run_sql, url, f"UPDATE users SET role = 'user', username = 'Dee Renamed' WHERE {OF_SUB}", ("demoted",)
    )
    changed = time.monotonic()
    # Old answers are allowed only within the first second; by then all four workers answer with the new standing.
    await wait_for(lambda: everyone_says("user", "Dee Renamed", "after"), timeout=5.0, what="every worker to update")
    assert time.monotonic() - changed < 1.0
    burst = await asyncio.gather(
        *(
            fetch("DELETE", f"{servers[n % 2].url}/chatts/{uuid.uuid4()}", f"burst-{n}", token=credentials["jwt"])
            for n in range(20)
        )
    )
    assert {status for status, _ in burst} == {403}, burst


async def test_a_jwt_of_a_deleted_user_is_refused_by_every_worker(servers, google):
    """DELETE FROM users in psql: the user's JWT and chatterID get 401 everywhere within a second."""
    a, b = servers  # signed in on B, deleted through A's database URL
    async with aiohttp.ClientSession() as session:
        signed_in = await google_sign_in(
            session, b.url, google.id_token(client_id=CLIENT_ID, sub="gone", name="Gone"), CLIENT_ID
        )
    token, chatter_id = signed_in["token"], signed_in["chatterID"]
    for n in range(8):
        assert (await fetch("GET", f"{servers[n % 2].url}/get-user", f"alive-{n}", token=token))[0] == 200
    await asyncio.to_thread(run_sql, a.env["DATABASE_URL"], f"DELETE FROM users WHERE {OF_SUB}", ("gone",))
    deleted = time.monotonic()
    probes = 0

    async def refused_everywhere_now() -> bool:
        nonlocal probes
        for credential in (token, chatter_id):
            probes += 1
            status, _ = await fetch("GET", f"{servers[probes % 2].url}/get-user", f"gone-{probes}", token=credential)
            if status != 401:
                return False
        refusing = {e.pid for s in servers for e in served(s.log()) if e.rid.startswith("gone-") and e.status == 401}
        return refusing == all_workers(servers)

    await wait_for(refused_everywhere_now, timeout=1.0, what="every worker to refuse a deleted user's credentials")
    assert time.monotonic() - deleted < 1.0


async def test_signing_out_a_device_from_another_stops_it_on_every_worker_of_both_servers(servers, google, capsys):
    """Three sign-ins of one user: from the laptop on B, sign out the phone (signed in on A), then every other device:
    each time every worker of both servers refuses every credential of those sessions within a second."""
    a, b = servers
    id_token = google.id_token(client_id=CLIENT_ID, sub="devices", name="Dev")
    async with aiohttp.ClientSession() as session:
        phone, laptop, tablet = [await google_sign_in(session, server.url, id_token, CLIENT_ID) for server in (a, b, a)]
    status, listed = await call("GET", f"{a.url}/sessions", token=phone["token"])
    assert status == 200 and len(listed["sessions"]) == 3
    phone_id = next(s["id"] for s in listed["sessions"] if s["current"])

    figures = []
    for ended, action in [(phone, ("DELETE", f"/sessions/{phone_id}")), (tablet, ("POST", "/sessions/revoke-others"))]:
        creds = {JWT: Credentials(token=ended["token"]), CHATTERID: Credentials(chatter_id=ended["chatterID"])}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            for server in (a, b):  # every worker of both servers accepts them first (and caches the chatterID)
                for kind, cred in creds.items():
                    warm = [send(session, server.url, kind, f"warm-{kind}-{n}", cred, timeout=5) for n in range(16)]
                    assert {shot.status for shot in await asyncio.gather(*warm)} == {200}
        method, path = action
        assert (await call(method, f"{b.url}{path}", token=laptop["token"]))[0] == 204
        tag = path.rsplit("/", 1)[-1][:8]
        for server in (a, b):
            for kind, cred in creds.items():
                accepted_for, covered, _ = await refused_everywhere(
                    server, kind, cred, f"{tag}-{server.port}-{kind}", bound=1.0
                )
                assert accepted_for < 1.0
                figures.append(f"{method} {kind} on :{server.port}: all workers refusing by {covered * 1000:.0f} ms")
            status, _ = await call(
                "POST", f"{server.url}/token/refresh", json={"refresh_token": ended["refresh_token"]}
            )
            assert status == 401
    for server in (a, b):  # the current session is untouched: the laptop's credentials work everywhere
        assert (await call("GET", f"{server.url}/get-user", token=laptop["token"]))[0] == 200
        assert (await call("GET", f"{server.url}/get-user", token=laptop["chatterID"]))[0] == 200
    status, listed = await call("GET", f"{a.url}/sessions", token=laptop["token"])
    assert [s["current"] for s in listed["sessions"]] == [True]
    with capsys.disabled():
        print("\nsessions ended from B: " + "; ".join(figures))


async def test_a_sessions_refresh_limit_holds_across_workers_and_servers(servers):
    """Bursts of one refresh on new connections to every worker of both servers: each burst rotates once (the racing
    repeats get the same successor and count nothing), and past REFRESH_MAX_PER_SESSION rotations every one is a 429."""
    a, b = servers
    assert (await call("POST", f"{a.url}/register", json={"username": "ria", "password": PASSWORD}))[0] == 201
    token = (await log_in(b.url, "ria"))[1]["refresh_token"]
    for burst in range(MAX_REFRESHES + 1):
        answers = await asyncio.gather(
            *(call("POST", f"{(a, b)[n % 2].url}/token/refresh", json={"refresh_token": token}) for n in range(16))
        )
        statuses = {status for status, _ in answers}
        if burst < MAX_REFRESHES:
            assert statuses == {200}, (burst, answers)
            successors = {body["refresh_token"] for _, body in answers}
            assert len(successors) == 1, burst
            token = successors.pop()
        else:
            assert statuses == {429}, answers
    status, body = await call("POST", f"{a.url}/token/refresh", json={"refresh_token": token})
    assert status == 429 and "refreshed too often" in body["message"]
