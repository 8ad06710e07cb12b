"""Changing two-factor settings: wrong codes at /totp/disable are counted before they are checked, and audited."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pyotp

from core.keys import db_key
from tests.support.common import bearer
from tests.support.launcher import Gunicorn, base_env

PASSWORD = "correct horse battery"
MAX_FAILURES = 3


async def signed_in_with_totp(client, username: str = "ann") -> tuple[str, pyotp.TOTP]:
    assert (await client.post("/register", json={"username": username, "password": PASSWORD})).status == 201
    token = (await (await client.post("/login", json={"username": username, "password": PASSWORD})).json())["token"]
    client.session.cookie_jar.clear()
    secret = (await (await client.post("/totp/setup", headers=bearer(token))).json())["secret"]
    totp = pyotp.TOTP(secret)
    assert (await client.post("/totp/enable", json={"otp": totp.now()}, headers=bearer(token))).status == 204
    return token, totp


def wrong_code(totp: pyotp.TOTP) -> str:
    valid = {totp.at(time.time() + offset) for offset in (-30, 0, 30, 60)}
    return next(code for code in ("000000", "111111", "222222") if code not in valid)


async def test_wrong_codes_at_totp_disable_are_limited_and_audited(make_client):
    client = await make_client(login_max_failures=MAX_FAILURES)
    token, totp = await signed_in_with_totp(client)
    for _ in range(MAX_FAILURES):
        resp = await client.post("/totp/disable", json={"otp": wrong_code(totp)}, headers=bearer(token))
        assert resp.status == 422
    # Past the limit even the right code is refused, unchecked, until the lockout passes.
    resp = await client.post("/totp/disable", json={"otp": totp.at(time.time() + 30)}, headers=bearer(token))
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT event, address FROM auth_events WHERE event = 'totp_off_failed'")
        failures = await cur.fetchall()
        await cur.execute("SELECT totp_enabled FROM users")
        assert await cur.fetchone() == (True,)
    assert len(failures) == MAX_FAILURES and all(address for _, address in failures)


async def test_turning_totp_off_clears_the_count(make_client):
    client = await make_client(login_max_failures=MAX_FAILURES)
    token, totp = await signed_in_with_totp(client)
    for _ in range(MAX_FAILURES - 1):
        assert (await client.post("/totp/disable", json={"otp": wrong_code(totp)}, headers=bearer(token))).status == 422
    code = totp.at(time.time() + 30)
    assert (await client.post("/totp/disable", json={"otp": code}, headers=bearer(token))).status == 204
    # On again: the earlier wrong codes no longer count.
    secret = (await (await client.post("/totp/setup", headers=bearer(token))).json())["secret"]
    totp = pyotp.TOTP(secret)
    assert (await client.post("/totp/enable", json={"otp": totp.now()}, headers=bearer(token))).status == 204
    for _ in range(MAX_FAILURES):
        assert (await client.post("/totp/disable", json={"otp": wrong_code(totp)}, headers=bearer(token))).status == 422


async def test_a_burst_of_guesses_at_totp_disable_gets_no_more_tries_than_the_limit(make_database: Any, tmp_path: Path):
    env = base_env(
        DATABASE_URL=make_database(), CHATTERD_VAR_DIR=str(tmp_path / "var"), LOGIN_MAX_FAILURES=str(MAX_FAILURES)
    )
    server = Gunicorn(env, tmp_path / "gunicorn.log")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/register", json={"username": "ann", "password": PASSWORD}) as resp:
                assert resp.status == 201
            async with session.post(f"{server.url}/login", json={"username": "ann", "password": PASSWORD}) as resp:
                token = (await resp.json())["token"]
            async with session.post(f"{server.url}/totp/setup", headers=bearer(token)) as resp:
                totp = pyotp.TOTP((await resp.json())["secret"])
            async with session.post(f"{server.url}/totp/enable", json={"otp": totp.now()}, headers=bearer(token)) as r:
                assert r.status == 204
            session.cookie_jar.clear()

        async def guess(code: str) -> int:
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=connector) as fresh:
                async with fresh.post(f"{server.url}/totp/disable", json={"otp": code}, headers=bearer(token)) as r:
                    return r.status

        # Thirty wrong codes and, last, the right one, all at once over new connections to both workers.
        codes = [wrong_code(totp)] * 30 + [totp.at(time.time() + 30)]
        statuses = Counter(await asyncio.gather(*(guess(code) for code in codes)))
    finally:
        assert await server.stop() == 0
    assert statuses[429] == len(codes) - MAX_FAILURES, statuses
    assert statuses[422] + statuses[204] == MAX_FAILURES, statuses
