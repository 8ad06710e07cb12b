""".env.example and the README's settings table list every setting the code reads, with the code's defaults."""

from __future__ import annotations

import ast
import re
import runpy
import secrets
import types
from typing import Any

import pytest

from settings import Settings
from tests.support.common import PROJECT_DIR

# Where settings are read from the environment.
READERS = ("settings.py", "gunicorn.conf.py", "core/startup.py", "core/metrics.py")
# Variables read there that belong to others: libpq's and systemd's.
NOT_OURS = {"PGHOST", "PGPORT", "LISTEN_FDS"}
# settings.py's helpers: _int(env, "NAME", default), _list(env, "NAME"), ...
HELPERS = {"_int", "_float", "_bool", "_list"}
ENV_EXAMPLE = PROJECT_DIR / ".env.example"
LINE = re.compile(r"^(?P<unset># )?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def read_by_code(readers: tuple[str, ...] = READERS) -> set[str]:
    """Every environment variable the code reads: env.get("NAME"), os.environ.get("NAME"), _int(env, "NAME", ...)."""
    names: set[str] = set()
    for path in readers:
        for node in ast.walk(ast.parse((PROJECT_DIR / path).read_text())):
            if not isinstance(node, ast.Call):
                continue
            func, args = node.func, node.args
            if isinstance(func, ast.Name) and func.id in HELPERS and len(args) > 1:
                arg = args[1]
            elif isinstance(func, ast.Attribute) and func.attr == "get" and args:
                arg = args[0]
            else:
                continue
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.isupper():
                names.add(arg.value)
    return names - NOT_OURS


def example_lines() -> dict[str, tuple[bool, str]]:
    """.env.example's settings: name -> (set by default, the value shown)."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := LINE.match(line):
            assert match["name"] not in found, f"{match['name']} is listed twice in .env.example"
            found[match["name"]] = (not match["unset"], match["value"])
    return found


def readme_settings() -> set[str]:
    """The names in the first column of the README's "Settings" table."""
    text = (PROJECT_DIR / "README.md").read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_every_setting_the_code_reads_is_in_env_example_and_the_readme():
    code, example, readme = read_by_code(), set(example_lines()), readme_settings()
    missing = sorted(code - example)
    assert not missing, (
        "add to .env.example, with its default (`NAME=default`, or `# NAME=` under a comment saying what unset "
        f"means): {', '.join(missing)}"
    )
    assert not sorted(example - code), f"in .env.example but read nowhere: {sorted(example - code)}"
    missing = sorted(code - readme)
    assert not missing, f"add a row to the README's settings table (name, default, meaning) for: {', '.join(missing)}"
    assert not sorted(readme - code), f"in the README's settings table but read nowhere: {sorted(readme - code)}"


# Defaults made at start rather than written down: a generated key, the project's own var/ folder.
DERIVED = {"SECRET_KEY", "CHATTERD_VAR_DIR"}


@pytest.mark.parametrize("name", sorted(set(example_lines()) - DERIVED))
def test_env_example_shows_the_default(name, tmp_path):
    is_set, value = example_lines()[name]
    base = {"SECRET_KEY": secrets.token_urlsafe(48), "CHATTERD_VAR_DIR": str(tmp_path)}
    # A shown default changes nothing; a setting unset by default reads an empty value as unset.
    given = {**base, name: value if is_set else ""}
    if name in read_by_code(("settings.py",)):
        assert Settings.from_env(given) == Settings.from_env(base), f".env.example's {name}={value} is not the default"
    else:
        assert gunicorn_config(given) == gunicorn_config(base), f".env.example's {name}={value} is not the default"


def gunicorn_config(env: dict[str, str]) -> dict[str, Any]:
    """What gunicorn.conf.py sets, run under exactly this environment."""
    with pytest.MonkeyPatch.context() as patch:
        for key in read_by_code():
            patch.delenv(key, raising=False)
        for key, value in env.items():
            patch.setenv(key, value)
        values = runpy.run_path(str(PROJECT_DIR / "gunicorn.conf.py"))
    return {
        key: value
        for key, value in values.items()
        if not key.startswith("__") and not isinstance(value, types.FunctionType | types.ModuleType)
    }
