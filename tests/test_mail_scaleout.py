"""Two servers (two gunicorn masters, two workers each) on one database: each message goes out once, codes and
recovery limits hold when many requests race over new connections, and the sessions a password change or reset ends
are refused everywhere within a second."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2
import pytest

from tests.support.accounts import NEW_PASSWORD, PASSWORD
from tests.support.common import wait_for
from tests.support.launcher import Gunicorn, base_env
from tests.support.load import ACCESS_LOG_ARGS, JWT, Credentials, send
from tests.support.probes import refused_everywhere
from tests.support.smtp import MailServer

MAX_PER_ACCOUNT = 3
DELIVERED = re.compile(r"\[(\d+)\] INFO mail\.sender \[[^\]]*\]: mail (\d+) \(\w+\) delivered")


@pytest.fixture
async def servers(make_database: Any, tmp_path: Path, smtp: MailServer) -> Any:
    shared = base_env(
        DATABASE_URL=make_database(),
        SMTP_URL=smtp.url(),
        MAIL_RETRY_SECONDS="0.2",
        SIGNUP_MAX_PER_ADDRESS="1000",
        RECOVERY_MAX_PER_ACCOUNT=str(MAX_PER_ACCOUNT),
        RECOVERY_MAX_PER_ADDRESS="1000",
        ACCESS_LOG="-",
    )
    pair = [
        Gunicorn({**shared, "CHATTERD_VAR_DIR": str(tmp_path / n)}, tmp_path / f"{n}.log", extra_args=ACCESS_LOG_ARGS)
        for n in ("a", "b")
    ]
    await asyncio.gather(*(server.start() for server in pair))
    try:
        yield pair
    finally:
        assert await asyncio.gather(*(server.stop() for server in pair)) == [0, 0]


async def call(url: str, path: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    """One POST on a new connection (any worker may answer): its status and JSON body (None when empty)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.post(url + path, json=body, headers=headers) as resp:
            return resp.status, (await resp.json() if resp.content_length else None)


async def sign_up(url: str, username: str, email: str) -> str:
    assert (await call(url, "/register", {"username": username, "password": PASSWORD, "email": email}))[0] == 201
    status, body = await call(url, "/login", {"username": username, "password": PASSWORD})
    assert status == 200
    token: str = body["token"]
    return token


def query(servers: list[Gunicorn], sql: str) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(servers[0].env["DATABASE_URL"])
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


async def test_each_message_goes_out_once_through_an_outage(servers, smtp):
    a, b = servers
    await smtp.stop()  # down while the messages are written
    smtp.delay = 0.05  # a slow relay: deliveries overlap, so the senders compete for the same rows
    count = 40
    results = await asyncio.gather(
        *(
            call((a, b)[n % 2].url, "/register", {"username": f"u{n}", "password": PASSWORD, "email": f"u{n}@x.test"})
            for n in range(count)
        )
    )
    assert [status for status, _ in results] == [201] * count  # answered while the relay was down

    async def retried() -> bool:
        return bool(query(servers, "SELECT count(*) FROM mail_outbox WHERE attempts > 0 AND sent_at IS NULL")[0][0])

    await wait_for(retried, timeout=30, what="failed attempts during the outage")
    await smtp.start()

    async def all_sent() -> bool:
        return query(servers, "SELECT count(*) FROM mail_outbox WHERE sent_at IS NOT NULL")[0][0] == count

    await wait_for(all_sent, timeout=60, what="every message to be marked sent")
    recipients = Counter(r for _, rcpts, _ in smtp.received for r in rcpts)
    assert recipients == Counter({f"u{n}@x.test": 1 for n in range(count)})
    delivered = [m for server in servers for m in DELIVERED.findall(server.log())]
    assert sorted(int(mid) for _, mid in delivered) == [
        mid for (mid,) in query(servers, "SELECT id FROM mail_outbox ORDER BY id")
    ]
    assert len({pid for pid, _ in delivered}) >= 2, "several workers sent"


async def test_codes_hold_when_tries_race(servers, smtp):
    a, b = servers
    token = await sign_up(a.url, "ann", "ann@x.test")
    code = await smtp.code_for("ann@x.test")

    async def burst(guesses: list[str]) -> list[int]:
        shots = [call((a, b)[n % 2].url, "/email/verify", {"code": g}, token) for n, g in enumerate(guesses)]
        return [status for status, _ in await asyncio.gather(*shots)]

    # The right code twelve times at once: it works exactly once.
    assert sorted(await burst([code] * 12)) == [204] + [400] * 11
    # A new address and code; twelve wrong tries at once: five are counted, and the right code is then dead.
    assert (await call(b.url, "/email", {"email": "ann2@x.test"}, token))[0] == 204
    code = await smtp.code_for("ann2@x.test")
    wrong = [f"{(int(code) + n) % 1_000_000:06d}" for n in range(1, 13)]
    assert await burst(wrong) == [400] * 12
    assert query(servers, "SELECT tries FROM email_codes WHERE purpose = 'verify'") == [(5,)]
    assert await burst([code]) == [400]
    # Two accounts verifying the same address at once: one gets it.
    tokens = [await sign_up(a.url, name, "shared@x.test") for name in ("bob", "carol")]
    codes = [await smtp.code_for("shared@x.test", nth=n) for n in (1, 2)]
    statuses = await asyncio.gather(
        *(
            call(server.url, "/email/verify", {"code": c}, t)
            for server, c, t in zip(servers, codes, tokens, strict=True)
        )
    )
    assert sorted(status for status, _ in statuses) == [204, 409]


async def test_forgot_is_limited_per_account_when_requests_race(servers, smtp):
    a, b = servers
    token = await sign_up(a.url, "ann", "ann@x.test")
    assert (await call(b.url, "/email/verify", {"code": await smtp.code_for("ann@x.test")}, token))[0] == 204
    shots = [call((a, b)[n % 2].url, "/password/forgot", {"username": "ann"}) for n in range(16)]
    statuses = Counter(status for status, _ in await asyncio.gather(*shots))
    assert statuses == Counter({202: MAX_PER_ACCOUNT, 429: 16 - MAX_PER_ACCOUNT})
    await smtp.code_for("ann@x.test", nth=1 + MAX_PER_ACCOUNT)

    # Any mail past the limit would have been written with the others: once the outbox has nothing left to send
    # (the sender marks a message sent just after the SMTP server took it), the server has every message there is.
    async def outbox_empty() -> bool:
        return query(servers, "SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL") == [(0,)]

    await wait_for(outbox_empty, timeout=30, what="every message to be marked sent")
    assert len(smtp.to("ann@x.test")) == 1 + MAX_PER_ACCOUNT


async def test_a_password_change_and_a_reset_stop_the_sessions_they_end_on_every_worker_of_both_servers(
    servers, smtp, capsys
):
    """Three sign-ins of one user: a password change from the laptop on B ends the phone's and the tablet's sessions,
    then a reset by code ends the laptop's: each time every worker of both servers refuses their JWTs within a
    second of the answer (probed at once on both), and their refresh tokens are refused."""
    a, b = servers
    token = await sign_up(a.url, "ann", "ann@x.test")
    assert (await call(b.url, "/email/verify", {"code": await smtp.code_for("ann@x.test")}, token))[0] == 204
    login = {"username": "ann", "password": PASSWORD}
    phone, laptop, tablet = [(await call(server.url, "/login", login))[1] for server in (a, b, a)]

    async def warm(session: dict[str, Any]) -> None:
        """Every worker of both servers takes the session's JWT."""
        cred = Credentials(token=session["token"])
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as client:
            for server in (a, b):
                shots = [send(client, server.url, JWT, f"warm-{n}", cred, timeout=5) for n in range(16)]
                assert {shot.status for shot in await asyncio.gather(*shots)} == {200}

    async def stopped_everywhere(ended: dict[str, dict[str, Any]]) -> list[str]:
        """Probe both servers with each ended session's JWT at once: every worker refuses each within a second."""
        probed = [(name, s, server) for name, s in ended.items() for server in (a, b)]
        results = await asyncio.gather(
            *(refused_everywhere(srv, JWT, Credentials(token=s["token"]), name, bound=1.0) for name, s, srv in probed)
        )
        for server in (a, b):
            for s in ended.values():
                assert (await call(server.url, "/token/refresh", {"refresh_token": s["refresh_token"]}))[0] == 401
        assert all(accepted_for < 1.0 for accepted_for, _, _ in results), results
        return [
            f"{name} on :{server.port}: all workers by {covered * 1000:.0f} ms"
            for (name, _, server), (_, covered, _) in zip(probed, results, strict=True)
        ]

    await warm(phone)
    await warm(tablet)
    body = {"current_password": PASSWORD, "password": NEW_PASSWORD}
    assert (await call(b.url, "/password/change", body, laptop["token"]))[0] == 204
    figures = await stopped_everywhere({"change-phone": phone, "change-tablet": tablet})
    await warm(laptop)  # the laptop's session goes on, on every worker of both

    assert (await call(a.url, "/password/forgot", {"email": "ann@x.test"}))[0] == 202
    body = {"email": "ann@x.test", "code": await smtp.code_for("ann@x.test", nth=2), "password": PASSWORD + "!"}
    assert (await call(b.url, "/password/reset", body))[0] == 204
    figures += await stopped_everywhere({"reset-laptop": laptop})
    with capsys.disabled():
        print("\npassword change and reset on B, probed on both: " + "; ".join(figures))
