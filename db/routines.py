"""Statements served as plpgsql functions, so that Postgres plans them once per connection instead of once per call.

A big statement (the Google sign-in is fifteen CTEs) costs Postgres more to plan than to run, and a pooler in
transaction mode rules out prepared statements. A plpgsql function's plans are cached by each server session that
calls it, which works through any pooler. The statement stays written once, in Python, from the shared SQL fragments:
`Routine` turns its `%(name)s` parameters into the function's arguments, and the function's name carries a hash of
its text, so a changed statement is a new function and two versions of chatterd on one database (a rolling deploy)
each call their own. The function of a version no longer deployed stays behind, unused and harmless; drop it by hand
(psql lists them: `\\df chatterd_*`) once no server of that version runs.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field

from db.pool import Cursor, Database

logger = logging.getLogger(__name__)

_PARAMETER = re.compile(r"%\((\w+)\)s")
PREFIX = "chatterd_"

SELECT_INSTALLED = "SELECT proname FROM pg_proc WHERE proname = ANY(%s)"


@dataclass(frozen=True)
class Routine:
    """One statement as a function: `arguments` names each `%(name)s` of `statement` with its SQL type, in order;
    `returns` is the column list of its rows."""

    name: str
    statement: str
    arguments: tuple[tuple[str, str], ...]
    returns: str
    function: str = field(init=False)
    call: str = field(init=False)

    def __post_init__(self) -> None:
        used = set(_PARAMETER.findall(self.statement))
        declared = [name for name, _ in self.arguments]
        if used != set(declared) or len(declared) != len(set(declared)):
            raise ValueError(f"{self.name}: the arguments {sorted(declared)} must be the parameters {sorted(used)}")
        # Named by everything that defines it (arguments, result, settings and body): any change is a new function.
        digest = hashlib.sha256(self._definition(f"{PREFIX}{self.name}").encode()).hexdigest()[:12]
        object.__setattr__(self, "function", f"{PREFIX}{self.name}_{digest}")
        casts = ", ".join(f"%({name})s::{sql_type}" for name, sql_type in self.arguments)
        # Built from constants of the code (names and types), never from input: values travel as parameters.
        object.__setattr__(self, "call", f"SELECT * FROM {self.function}({casts})")  # noqa: S608

    def definition_body(self) -> str:
        """The function's body: the statement with `$n` for its parameters (and `%%` unescaped)."""
        position = {name: f"${i}" for i, (name, _) in enumerate(self.arguments, start=1)}
        body = _PARAMETER.sub(lambda m: position[m.group(1)], self.statement).replace("%%", "%")
        # Columns win over the OUT columns of `returns` where names meet: the body never reads those.
        return f"#variable_conflict use_column\nBEGIN\nRETURN QUERY {body.strip()};\nEND"

    def definition(self) -> str:
        """CREATE OR REPLACE FUNCTION for this routine."""
        return self._definition(self.function)

    def _definition(self, function: str) -> str:
        # A generic plan is forced: the statement's plan does not depend on its values, and a custom plan per call is
        # the cost the function is there to save.
        arguments = ", ".join(sql_type for _, sql_type in self.arguments)
        return (
            f"CREATE OR REPLACE FUNCTION {function}({arguments}) RETURNS TABLE ({self.returns})\n"
            f"LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $routine$\n"
            f"{self.definition_body()}\n$routine$"
        )


async def install(cur: Cursor, routines: list[Routine]) -> list[str]:
    """Create the functions the database lacks (under the migration lock, after the migrations); their names."""
    await cur.execute(SELECT_INSTALLED, ([r.function for r in routines],))
    present = {row[0] for row in await cur.fetchall()}
    created = []
    for routine in routines:
        if routine.function not in present:
            await cur.execute(routine.definition())
            created.append(routine.function)
            logger.info("created the function %s", routine.function)
    return created


async def fetch_one(db: Database, routine: Routine, params: dict[str, object]) -> object:
    """Call the routine; its first row, or None."""
    return await db.fetch_one(routine.call, params)
