"""Changing two-factor settings: wrong codes at /totp/disable are counted before they are checked, and audited."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyotp

from core.keys import db_key
from tests.support.accounts import call, signed_in_at
from tests.support.common import bearer
from tests.support.launcher import base_env, running
from tests.support.two_factor import signed_in_with_totp, wrong_code

MAX_FAILURES = 3


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
    async with running(env, tmp_path / "gunicorn.log") as server:
        token = await signed_in_at(server.url)
        status, body = await call("POST", f"{server.url}/totp/setup", token=token)
        assert status == 200
        totp = pyotp.TOTP(body["secret"])
        assert (await call("POST", f"{server.url}/totp/enable", token=token, json={"otp": totp.now()}))[0] == 204
        # Thirty-one wrong codes at once over new connections to both workers. (Not the right one among them: a right
        # code evaluated early in the burst turns TOTP off and clears the count, and the attempts after it are about
        # nothing any more.)
        codes = [wrong_code(totp)] * 31
        url = f"{server.url}/totp/disable"
        results = await asyncio.gather(*(call("POST", url, token=token, json={"otp": code}) for code in codes))
        # Locked: the right code now gets the 429 too.
        right = await call("POST", url, token=token, json={"otp": totp.at(time.time() + 30)})
    statuses = Counter(status for status, _ in results)
    assert statuses == {422: MAX_FAILURES, 429: len(codes) - MAX_FAILURES}, statuses
    assert right[0] == 429
