"""Usernames: one key (NFKC, case folding) for lookups, uniqueness and throttling; look-alike names refused."""

from __future__ import annotations

import asyncio
import sys
import unicodedata

import pytest

import models
from auth.usernames import username_key, username_problem
from core.keys import db_key, password_hasher_key, settings_key
from db.migrations import load_migrations, migrate
from db.pool import Database, create_pool
from tests.support.cli import run_manage
from tests.support.common import bearer

PASSWORD = "correct horse battery"


async def register(client, username="ann", password=PASSWORD, **kwargs):
    return await client.post("/register", json={"username": username, "password": password}, **kwargs)


async def login(client, username="ann", password=PASSWORD, **extra):
    return await client.post("/login", json={"username": username, "password": password, **extra})


async def me(client, token):
    return await client.get("/get-user", headers=bearer(token))


async def open_db(url: str) -> Database:
    pool = await create_pool(url, minsize=0, maxsize=2, connect_timeout=5, statement_timeout=30)
    return Database(pool, acquire_timeout=30, direct_dsn=url)


DOTTED_CAPITAL = "\u0130stanbul"  # İstanbul, with U+0130 LATIN CAPITAL LETTER I WITH DOT ABOVE
DOTTED_SMALL = "i\u0307stanbul"  # i̇stanbul: i followed by U+0307 COMBINING DOT ABOVE, what İ folds to
FULL_WIDTH_ANN = "\uff21\uff2e\uff2e"  # full-width ANN, which NFKC folds into ASCII

TRICKY = [
    "ann",
    FULL_WIDTH_ANN,
    DOTTED_CAPITAL,
    DOTTED_SMALL,
    "ISTANBUL",
    "\u0131stanbul",  # dotless i
    "Straße",
    "STRASSE",
    "ẞ",
    "ﬃ",
    "ΣΑΣ",
    "σας",
    "ǅ",
    "Ⅻ",
    "\u210c",  # black-letter H
    "ᾈ",
    "\u0345\u0300",  # combining ypogegrammeni, which folds to iota, before a combining grave
    "A\u030a",  # A + combining ring
    "\u212b",  # ANGSTROM SIGN
    "ﷺ",  # expands to 18 characters
    "㍱",
    "ｶﾞ",  # half-width katakana and voiced mark
    "\u1e9b\u0323",  # long s with dot above, dot below
    "Ǆ\u0301",
]


# ---- the key --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TRICKY)
def test_the_key_of_a_key_is_itself(name):
    key = username_key(name)
    assert username_key(key) == key
    assert unicodedata.normalize("NFKC", key) == key and key.casefold() == key


def test_the_key_is_stable_for_every_code_point():
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        key = username_key(chr(code))
        assert username_key(key) == key, f"U+{code:04X}"


@pytest.mark.parametrize(
    ("a", "b"),
    [("Ann", FULL_WIDTH_ANN), ("Ann", "aNN"), (DOTTED_CAPITAL, DOTTED_SMALL), ("Straße", "STRASSE"), ("\u212b", "å")],
)
def test_variants_share_a_key(a, b):
    assert username_key(a) == username_key(b)


@pytest.mark.parametrize(
    "name",
    [
        "ann\u200b",  # zero-width space (Cf)
        "a\u200db",  # zero-width joiner
        "\u202eann",  # right-to-left override
        "ann\u2066",  # left-to-right isolate
        "\ufeffann",  # byte order mark
        " ann",
        "ann ",
        "ann\u00a0",  # trailing no-break space
        "\u3000ann",  # ideographic space
        "a\nb",
        "a\tb",
        "a\x7fb",
        "a\u2028b",  # line separator
        "a\u2029b",  # paragraph separator
        "a\u0378b",  # unassigned
        "\u00a8ann",  # folds to a space and a combining diaeresis
    ],
)
def test_look_alike_names_have_a_problem(name):
    assert username_problem(name) is not None


@pytest.mark.parametrize(
    "name",
    [
        "ann",
        "Ann Lee",
        FULL_WIDTH_ANN,
        DOTTED_CAPITAL,
        "Straße",
        "名前",
        "o'brien",
        "ann-2",
        "\u0645\u0631\u064a\u0645",
    ],
)
def test_ordinary_names_have_no_problem(name):
    assert username_problem(name) is None


# ---- register and login through the app -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", [FULL_WIDTH_ANN, "ann", "ANN", "\uff21nn"])
async def test_a_variant_of_a_taken_name_is_409(client, variant):
    assert (await register(client, "Ann")).status == 201
    resp = await register(client, variant)
    assert resp.status == 409
    assert "taken" in (await resp.json())["message"]


@pytest.mark.parametrize("name", ["ann\u200b", "\u202eann", " ann", "ann ", "a\nb", "a\u2028b", "a\u0378b", "a\u200db"])
async def test_look_alike_names_are_422_at_register(client, name):
    resp = await register(client, name)
    assert resp.status == 422
    assert "username" in (await resp.json())["message"]
    assert (await register(client, "ann")).status == 201  # the refusals took nothing


async def test_the_name_is_kept_as_typed_and_every_variant_signs_in_to_it(client):
    resp = await register(client, "Ann")
    assert resp.status == 201
    body = await resp.json()
    assert body["username"] == "Ann"
    for variant in ["Ann", "ANN", "ann", FULL_WIDTH_ANN]:
        resp = await login(client, variant)
        assert resp.status == 200, variant
        user = (await (await me(client, (await resp.json())["token"])).json())["user"]
        assert user["id"] == body["id"] and user["username"] == "Ann"


async def test_dotted_capital_i_forms_share_one_account_and_one_counter(client):
    assert (await register(client, DOTTED_CAPITAL)).status == 201
    assert (await register(client, DOTTED_SMALL)).status == 409
    assert (await login(client, DOTTED_SMALL)).status == 200
    failures = client.app[settings_key].login_max_failures
    for _ in range(failures):
        assert (await login(client, DOTTED_SMALL, "wrong password")).status == 401
    assert (await login(client, DOTTED_CAPITAL)).status == 429  # the right password, on the other spelling
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT key, hits FROM throttle WHERE key LIKE 'login:user:%'")
        # every attempt is counted before it is evaluated, the refused one too
        assert await cur.fetchall() == [(f"login:user:{DOTTED_SMALL}", failures + 1)]


async def test_full_width_failures_lock_the_ascii_name(client):
    assert (await register(client, "ann")).status == 201
    for _ in range(client.app[settings_key].login_max_failures):
        assert (await login(client, FULL_WIDTH_ANN, "wrong password")).status == 401
    assert (await login(client, "Ann")).status == 429


async def test_set_role_and_lookups_use_the_key(client):
    assert (await register(client, "Ann")).status == 201
    db = client.app[db_key]
    assert await models.set_role(db, FULL_WIDTH_ANN, "admin") is not None
    user = await models.user_by_name(db, "aNn")
    assert user is not None and (user.username, user.role) == ("Ann", "admin")
    assert await models.user_by_name(db, "ann\u200b") is None


async def test_manage_refuses_look_alike_names(client, settings):
    result = await asyncio.to_thread(
        run_manage, "create-user", "boss\u200b", "--password-stdin", settings=settings, stdin=PASSWORD + "\n"
    )
    assert result.returncode == 2
    assert "invisible" in result.stdout + result.stderr
    assert await models.user_by_name(client.app[db_key], "boss") is None


# ---- keys for rows that have none -----------------------------------------------------------------------------


async def insert_keyless(db, hashed, *names):
    """Password accounts inserted by SQL without a key, as an operator or the schema before 0005 would."""
    ids = []
    async with db.cursor() as cur:
        for name in names:
            insert = "INSERT INTO users (username, password_hash) VALUES (%s, %s) RETURNING id"
            await cur.execute(insert, (name, hashed))
            (user_id,) = await cur.fetchone()
            ids.append(user_id)
    return ids


async def keys_of(db):
    async with db.cursor() as cur:
        await cur.execute("SELECT username, username_key, username_key_clash, id FROM users ORDER BY id")
        return await cur.fetchall()


async def signed_in_id(client, name):
    resp = await login(client, name)
    assert resp.status == 200, (name, await resp.text())
    return (await (await me(client, (await resp.json())["token"])).json())["user"]["id"]


async def test_start_fills_keys_of_rows_inserted_without_one(client):
    db = client.app[db_key]
    hashed = await client.app[password_hasher_key].hash(PASSWORD)
    assert (await register(client, "Bob")).status == 201
    legacy_id, bob_clash_id = await insert_keyless(db, hashed, "Legacy", "BOB")
    assert (await login(client, "legacy")).status == 401  # no key yet: not found

    assert await migrate(db) == []  # nothing to apply, but the keys are filled under the same lock
    rows = await keys_of(db)
    assert rows[1:] == [("Legacy", "legacy", 0, legacy_id), ("BOB", "bob", bob_clash_id, bob_clash_id)]
    assert await signed_in_id(client, "LEGACY") == legacy_id
    assert await signed_in_id(client, "BOB") == bob_clash_id  # its exact spelling finds it
    assert await signed_in_id(client, "bob") == rows[0][3]  # any other spelling finds the key's owner
    assert (await register(client, "legacy")).status == 409
    assert await migrate(db) == [] and await keys_of(db) == rows  # a second run changes nothing


async def test_migration_keeps_old_accounts_whose_names_now_collide(client, make_client, make_database):
    url = make_database()
    old = await open_db(url)
    hashed = await client.app[password_hasher_key].hash(PASSWORD)
    try:
        await migrate(old, [m for m in load_migrations() if m.version < "0005"])
        # Distinct under the old lower(username) index, one key each pair now.
        ids = await insert_keyless(old, hashed, "Straße", "STRASSE", DOTTED_CAPITAL, DOTTED_SMALL, "Zoë")
    finally:
        old.pool.close()
        await old.pool.wait_closed()

    upgraded = await make_client(database_url=url)  # starting the app applies 0005 and fills the keys
    rows = await keys_of(upgraded.app[db_key])
    assert [(name, key, clash) for name, key, clash, _ in rows] == [
        ("Straße", "strasse", 0),
        ("STRASSE", "strasse", ids[1]),
        (DOTTED_CAPITAL, DOTTED_SMALL, 0),
        (DOTTED_SMALL, DOTTED_SMALL, ids[3]),
        ("Zoë", "zoë", 0),
    ]
    for name, user_id in zip(["Straße", "STRASSE", DOTTED_CAPITAL, DOTTED_SMALL, "Zoë"], ids, strict=True):
        assert await signed_in_id(upgraded, name) == user_id
    assert await signed_in_id(upgraded, "strasse") == ids[0]
    assert await signed_in_id(upgraded, "ZOË") == ids[4]
    assert (await register(upgraded, "Strasse")).status == 409
