"""Admins' changes on two servers (two gunicorn masters, two workers each): in force on every worker within a second."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2
import pytest

from tests.support.common import CLIENT_ID
from tests.support.launcher import Gunicorn
from tests.support.load import google_sign_in
from tests.support.probes import until_every_worker_answers
from tests.support.scaleout import fetch, run_sql, server_pair

PASSWORD = "correct horse battery"
FUTURE = "2099-01-01T00:00:00Z"


@pytest.fixture
async def servers(make_database: Any, google_certs_url: str, tmp_path: Path) -> AsyncIterator[list[Gunicorn]]:
    """Two servers on one database, with sign-up limits out of the way of many accounts from one address."""
    async with server_pair(make_database(), google_certs_url, tmp_path, SIGNUP_MAX_PER_ADDRESS="100000") as pair:
        yield pair


async def admin(servers: list[Gunicorn], username: str) -> tuple[int, str]:
    """A new admin (made in SQL, as an operator would): its id and a JWT."""
    url = servers[0].url
    status, registered = await fetch(
        "POST", f"{url}/register", f"reg-{username}", json={"username": username, "password": PASSWORD}
    )
    assert status == 201, registered
    await asyncio.to_thread(
        run_sql, servers[0].env["DATABASE_URL"], "UPDATE users SET role = 'admin' WHERE id = %s", (registered["id"],)
    )
    status, body = await fetch(
        "POST", f"{url}/login", f"login-{username}", json={"username": username, "password": PASSWORD}
    )
    assert status == 200, body
    return registered["id"], body["token"]


async def google_person(servers: list[Gunicorn], google: Any, sub: str) -> dict[str, Any]:
    """A Google user signed in on the second server: /adduser/'s answer and their id."""
    async with aiohttp.ClientSession() as session:
        signed_in = await google_sign_in(
            session, servers[1].url, google.id_token(client_id=CLIENT_ID, sub=sub), CLIENT_ID
        )
    status, me = await fetch("GET", f"{servers[1].url}/get-user", f"me-{sub}", token=signed_in["token"])
    assert status == 200
    return {**signed_in, "id": me["user"]["id"]}


async def test_a_demotion_and_a_ban_reach_every_worker_of_both_servers_within_a_second(servers, google, capsys):
    """A moderator demoted through A: every worker of both servers refuses their moderation within a second (the JWT
    was minted a moderator). Then banned through B: their JWT and chatterID are refused by every worker within a second,
    and a sign-in on either server answers 403 banned at once."""
    a, b = servers
    _, boss = await admin(servers, "boss")
    dee = await google_person(servers, google, "dee")
    assert (
        await fetch("PUT", f"{a.url}/admin/users/{dee['id']}/role", "promote", token=boss, json={"role": "moderator"})
    )[0] == 204
    dee_token = {"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID, sub="dee")}
    status, body = await fetch("POST", f"{b.url}/adduser/", "mod-sign-in", json=dee_token)
    assert status == 200
    moderator = body["token"]  # minted with the role moderator

    async def moderate(server: Gunicorn, rid: str) -> int:
        return (await fetch("DELETE", f"{server.url}/chatts/{uuid.uuid4()}", rid, token=moderator))[0]

    await until_every_worker_answers(
        servers, moderate, old=403, new=404, tag="as-mod", bound=10.0
    )  # 404: no such chatt
    assert (await fetch("PUT", f"{a.url}/admin/users/{dee['id']}/role", "demote", token=boss, json={"role": "user"}))[
        0
    ] == 204
    stale, covered = await until_every_worker_answers(servers, moderate, old=404, new=403, tag="demoted", bound=5.0)
    assert stale < 1.0
    figures = [
        f"demotion: last old answer {stale * 1000:.0f} ms after, all four workers refusing by {covered * 1000:.0f} ms"
    ]

    credentials = {"jwt": moderator, "chatterid": body["chatterID"]}
    assert (await fetch("POST", f"{b.url}/admin/users/{dee['id']}/ban", "ban", token=boss, json={"until": FUTURE}))[
        0
    ] == 204
    for server in (a, b):
        status, refused = await fetch("POST", f"{server.url}/adduser/", f"banned-{server.port}", json=dee_token)
        assert (status, refused.get("error")) == (403, "banned")
    for kind, credential in credentials.items():

        async def who(server: Gunicorn, rid: str, credential: str = credential) -> int:
            return (await fetch("GET", f"{server.url}/get-user", rid, token=credential))[0]

        stale, covered = await until_every_worker_answers(servers, who, old=200, new=401, tag=f"ban-{kind}", bound=5.0)
        assert stale < 1.0
        figures.append(
            f"ban, {kind}: last accepted {stale * 1000:.0f} ms after, all four refusing by {covered * 1000:.0f} ms"
        )
    with capsys.disabled():
        print("\nadmin changes on two servers: " + "; ".join(figures))


async def test_a_deleted_account_is_refused_by_every_worker_within_a_second(servers, google):
    a, b = servers
    gone = await google_person(servers, google, "gone")
    for n in range(8):  # every worker knows the user (and caches the chatterID) first
        for credential in (gone["token"], gone["chatterID"]):
            assert (await fetch("GET", f"{servers[n % 2].url}/get-user", f"warm-{n}", token=credential))[0] == 200
    assert (await fetch("DELETE", f"{a.url}/me", "delete-me", token=gone["token"]))[0] == 204
    for kind in ("token", "chatterID"):

        async def who(server: Gunicorn, rid: str, credential: str = gone[kind]) -> int:
            return (await fetch("GET", f"{server.url}/get-user", rid, token=credential))[0]

        stale, _ = await until_every_worker_answers(servers, who, old=200, new=401, tag=f"gone-{kind}", bound=5.0)
        assert stale < 1.0
    assert (await fetch("POST", f"{b.url}/token/refresh", "refresh", json={"refresh_token": gone["refresh_token"]}))[
        0
    ] == 401


async def test_admins_demoting_each_other_through_two_servers_leave_one_admin(servers):
    a, b = servers
    url = a.env["DATABASE_URL"]
    for round_ in range(6):
        await asyncio.to_thread(run_sql, url, "UPDATE users SET role = 'user' WHERE role = 'admin'")
        (one, one_token), (two, two_token) = await admin(servers, f"one{round_}"), await admin(servers, f"two{round_}")
        answers = await asyncio.gather(
            fetch("PUT", f"{a.url}/admin/users/{two}/role", f"d1-{round_}", token=one_token, json={"role": "user"}),
            fetch("PUT", f"{b.url}/admin/users/{one}/role", f"d2-{round_}", token=two_token, json={"role": "user"}),
        )
        statuses = sorted(status for status, _ in answers)
        assert statuses in ([204, 403], [204, 409]), (round_, statuses)
        survivors = await asyncio.to_thread(count_admins, url)
        assert survivors == 1, round_


def count_admins(url: str) -> int:
    """How many admins the database has."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM users WHERE role = 'admin'")
        (count,) = cur.fetchone()
    conn.close()
    return int(count)


async def test_a_ban_ends_at_its_time_on_every_server(servers):
    """A short ban: refused on both servers, then, once it is over, sign-ins work on both again without any change."""
    a, b = servers
    _, boss = await admin(servers, "boss")
    assert (await fetch("POST", f"{a.url}/register", "reg-ann", json={"username": "ann", "password": PASSWORD}))[
        0
    ] == 201
    status, body = await fetch("GET", f"{a.url}/admin/users?q=ann", "find-ann", token=boss)
    assert status == 200
    ann = body["users"][0]["id"]
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))
    assert (await fetch("POST", f"{b.url}/admin/users/{ann}/ban", "short-ban", token=boss, json={"until": until}))[
        0
    ] == 204
    credentials = {"username": "ann", "password": PASSWORD}
    for server in (a, b):
        assert (await fetch("POST", f"{server.url}/login", f"banned-{server.port}", json=credentials))[0] == 403

    async def login(server: Gunicorn, rid: str) -> int:
        return (await fetch("POST", f"{server.url}/login", rid, json=credentials))[0]

    # (no burst: sign-ins at once from one address are limited per worker)
    await until_every_worker_answers(servers, login, old=403, new=200, tag="ban-over", bound=15.0, burst=0)
