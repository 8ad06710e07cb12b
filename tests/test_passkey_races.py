"""Passkey limits raced for real: many requests at once, over new connections, on two servers of two workers each."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from auth.passkeys import MAX_PASSKEYS
from tests.support.accounts import call, signed_in_at
from tests.support.authenticator import Authenticator
from tests.support.launcher import Gunicorn, base_env
from tests.support.passkeys import ORIGIN, RP_ID

OPTIONS_LIMIT = 7
BURST = 24


@pytest.fixture
async def servers(make_database: Any, tmp_path: Path) -> AsyncIterator[list[Gunicorn]]:
    """Two servers sharing one database, each with two workers, both the relying party chatter.test."""
    shared = base_env(
        DATABASE_URL=make_database(),
        WEBAUTHN_RP_ID=RP_ID,
        WEBAUTHN_ORIGINS=ORIGIN,
        PASSKEY_OPTIONS_MAX_PER_ADDRESS=str(OPTIONS_LIMIT),
        PASSKEY_OPTIONS_WINDOW_SECONDS="600",
    )
    pair = [Gunicorn({**shared, "CHATTERD_VAR_DIR": str(tmp_path / n)}, tmp_path / f"{n}.log") for n in ("a", "b")]
    await asyncio.gather(*(server.start() for server in pair))
    try:
        yield pair
    finally:
        assert await asyncio.gather(*(server.stop() for server in pair)) == [0, 0]


async def add_passkey(url: str, token: str, authenticator: Authenticator) -> None:
    status, options = await call("POST", f"{url}/passkeys/register/options", token=token)
    assert status == 200
    credential = authenticator.create(options)
    assert (await call("POST", f"{url}/passkeys/register", token=token, json={"credential": credential}))[0] == 201


async def login_options(url: str) -> dict[str, Any]:
    status, options = await call("POST", f"{url}/passkeys/login/options", json={})
    assert status == 200, options
    return dict(options)


async def test_one_challenge_used_at_once_on_two_servers_signs_in_exactly_once(servers):
    a, b = servers
    token = await signed_in_at(a.url)
    authenticator = Authenticator(ORIGIN)
    await add_passkey(a.url, token, authenticator)
    # The same assertion many times, and assertions with higher counters over the same challenge: one challenge.
    options = await login_options(b.url)
    assertions = [authenticator.get(options) for _ in range(BURST)]
    results = await asyncio.gather(
        *(
            call("POST", f"{servers[n % 2].url}/passkeys/login", json={"credential": assertions[n // 2 % BURST]})
            for n in range(2 * BURST)
        )
    )
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: 1, 401: 2 * BURST - 1}, statuses


async def test_a_cloned_authenticator_racing_itself_signs_in_exactly_once(servers):
    a = servers[0]
    token = await signed_in_at(a.url)
    authenticator = Authenticator(ORIGIN)
    await add_passkey(a.url, token, authenticator)
    # Many challenges, each answered with the same counter value, as two copies of one key would.
    challenges = await asyncio.gather(*(login_options(a.url) for _ in range(OPTIONS_LIMIT - 1)))
    assertions = [authenticator.get(options, sign_count=5) for options in challenges]
    results = await asyncio.gather(
        *(
            call("POST", f"{servers[n % 2].url}/passkeys/login", json={"credential": assertion})
            for n, assertion in enumerate(assertions)
        )
    )
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: 1, 401: len(assertions) - 1}, statuses


async def test_registrations_racing_past_the_cap_stop_at_it(servers):
    a, b = servers
    token = await signed_in_at(a.url)
    with psycopg2.connect(a.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO passkeys (user_id, credential_id, public_key, name)"
            " SELECT users.id, decode(md5(i::text), 'hex'), '\\x00', 'filler'"
            " FROM users, generate_series(1, %s) AS i WHERE users.username = 'ann'",
            (MAX_PASSKEYS - 3,),
        )
    conn.close()
    started = await asyncio.gather(
        *(call("POST", f"{servers[n % 2].url}/passkeys/register/options", token=token) for n in range(12))
    )
    credentials = [Authenticator(ORIGIN).create(options) for _, options in started]
    results = await asyncio.gather(
        *(
            call("POST", f"{servers[n % 2].url}/passkeys/register", token=token, json={"credential": credential})
            for n, credential in enumerate(credentials)
        )
    )
    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 3, 409: 9}, statuses
    status, listed = await call("GET", f"{b.url}/passkeys", token=token)
    assert status == 200 and len(listed["passkeys"]) == MAX_PASSKEYS


async def test_sign_in_options_racing_past_the_address_limit_stop_at_it(servers):
    results = await asyncio.gather(
        *(call("POST", f"{servers[n % 2].url}/passkeys/login/options", json={}) for n in range(4 * OPTIONS_LIMIT))
    )
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: OPTIONS_LIMIT, 429: 3 * OPTIONS_LIMIT}, statuses
