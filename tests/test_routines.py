"""Statements served as plpgsql functions: declared once, named by their text, created once, answering as the
statement itself would."""

from __future__ import annotations

import asyncio

import pytest

from db import routines
from db.migrations import ROUTINES
from db.pool import Database, create_pool
from db.routines import Routine

STATEMENT = """
WITH numbers AS (SELECT n FROM generate_series(1, %(upto)s) AS n)
SELECT %(label)s || ':' || count(*), coalesce(sum(n), 0)::bigint FROM numbers WHERE n %% 2 = 0
"""
EVENS = Routine("test_evens", STATEMENT, (("upto", "integer"), ("label", "text")), "label text, total bigint")


def test_every_parameter_is_an_argument_and_nothing_else():
    with pytest.raises(ValueError, match="must be the parameters"):
        Routine("bad", STATEMENT, (("upto", "integer"),), "label text, total bigint")
    with pytest.raises(ValueError, match="must be the parameters"):
        Routine("bad", STATEMENT, (("upto", "integer"), ("label", "text"), ("extra", "text")), "x text")


def test_a_changed_statement_is_another_function():
    changed = Routine("test_evens", STATEMENT.replace("n %% 2", "n %% 3"), EVENS.arguments, EVENS.returns)
    assert changed.function != EVENS.function and changed.function.startswith("chatterd_test_evens_")
    assert Routine("test_evens", STATEMENT, EVENS.arguments, EVENS.returns).function == EVENS.function
    retyped = Routine("test_evens", STATEMENT, (("upto", "bigint"), ("label", "text")), EVENS.returns)
    renamed_column = Routine("test_evens", STATEMENT, EVENS.arguments, "name text, total bigint")
    assert len({EVENS.function, retyped.function, renamed_column.function}) == 3


@pytest.fixture
async def db(make_database):
    url = make_database()
    pool = await create_pool(url, minsize=0, maxsize=4, connect_timeout=5, statement_timeout=30)
    yield Database(pool, acquire_timeout=10, direct_dsn=url)
    pool.close()
    await pool.wait_closed()


async def test_created_once_even_by_servers_starting_together_and_answering_as_the_statement(db):
    async def install() -> list[str]:
        async with db.direct_cursor(30) as cur:
            await cur.execute("SELECT pg_advisory_lock(1)")  # as the migrations hold theirs
            try:
                return await routines.install(cur, [EVENS])
            finally:
                await cur.execute("SELECT pg_advisory_unlock(1)")

    created = await asyncio.gather(*(install() for _ in range(4)))
    assert sorted(created) == [[], [], [], [EVENS.function]]
    for upto in (0, 7, 10):
        params = {"upto": upto, "label": "evens"}
        assert await db.fetch_one(EVENS.call, params) == await db.fetch_one(STATEMENT, params)


async def test_the_shipped_routines_are_created_by_the_migrations(db):
    from db.migrations import migrate

    await migrate(db)
    async with db.cursor() as cur:
        await cur.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'chatterd\\_%%'")
        assert {row[0] for row in await cur.fetchall()} == {routine.function for routine in ROUTINES}
    assert await migrate(db) == []  # a second start creates nothing and applies nothing
