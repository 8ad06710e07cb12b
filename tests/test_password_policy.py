"""New passwords: refused when too guessable (zxcvbn, knowing the username and email) or listed by the range API."""

from __future__ import annotations

import logging

import pytest

from tests.support.accounts import PASSWORD
from tests.support.common import free_port
from tests.support.pwned import RangeApi, sha1_hex

BREACHED = "quiet violet lantern"  # strong by the estimate, but "breached" in the fake list


async def register(client, username="ann", password=PASSWORD, **extra):
    return await client.post("/register", json={"username": username, "password": password, **extra})


@pytest.mark.parametrize("password", ["password1", "qwertyuiop", "11111111", "abcdefgh", "iloveyou2"])
async def test_guessable_passwords_are_422_saying_why(client, password):
    resp = await register(client, password=password)
    assert resp.status == 422
    assert (await resp.json())["message"].startswith("That password is too easy to guess.")


async def test_the_username_and_email_count_as_known_words(client):
    # Strong enough for someone else, but it is the username with a digit.
    assert (await register(client, "violetlantern", "violetlantern1")).status == 422
    assert (await register(client, "someone", "violetlantern1")).status == 201
    resp = await register(client, "bob", "annsmith1999", email="annsmith@example.com")
    assert resp.status == 422
    assert (await register(client, "carol", "annsmith1999")).status == 201


async def test_strength_is_judged_on_a_long_passwords_first_72_characters(client):
    assert (await register(client, "ann", "a" * 256)).status == 422
    assert (await register(client, "bob", "a" * 72 + "Tr0ub4dor&3 and more")).status == 422
    assert (await register(client, "carol", "Tr0ub4dor&3 " * 21)).status == 201


@pytest.fixture
async def range_api(aiohttp_server):
    """The fake range API on a real local port, with BREACHED listed."""
    api = RangeApi({BREACHED: 3})
    server = await aiohttp_server(api.app(), host="127.0.0.1")
    api.url = str(server.make_url("")).rstrip("/")
    return api


async def test_a_listed_password_is_422_and_others_pass(make_client, range_api):
    client = await make_client(pwned_passwords_url=range_api.url)
    resp = await register(client, password=BREACHED)
    assert resp.status == 422 and "breach" in (await resp.json())["message"]
    assert range_api.requests == [sha1_hex(BREACHED)[:5]]  # only the first five hex digits leave the server
    assert (await register(client, password=PASSWORD)).status == 201
    assert range_api.requests[-1] == sha1_hex(PASSWORD)[:5]


async def test_padding_entries_do_not_count(make_client, range_api):
    range_api.breached = {sha1_hex(PASSWORD): 0}  # a padding line for exactly this password
    client = await make_client(pwned_passwords_url=range_api.url)
    assert (await register(client)).status == 201


async def test_ranges_are_cached(make_client, range_api):
    client = await make_client(pwned_passwords_url=range_api.url)
    for _ in range(3):
        assert (await register(client, password=BREACHED)).status == 422
    assert len(range_api.requests) == 1


async def test_an_unreachable_range_api_allows_the_password_and_says_so(make_client, range_api, caplog):
    range_api.status = 503
    client = await make_client(pwned_passwords_url=range_api.url)
    with caplog.at_level(logging.WARNING, logger="auth.password_policy"):
        assert (await register(client, "ann", BREACHED)).status == 201
    assert any("unavailable (HTTP 503): password allowed" in r.getMessage() for r in caplog.records)
    nobody = await make_client(pwned_passwords_url=f"http://127.0.0.1:{free_port()}")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="auth.password_policy"):
        assert (await register(nobody, "bob", BREACHED)).status == 201
    assert any("password allowed" in r.getMessage() for r in caplog.records)
