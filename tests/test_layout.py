"""The layout holds: test modules share helpers through tests/support only, and no view imports another view."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.support.common import PROJECT_DIR

# A test module or conftest, however it is named: tests.test_x, tests.conftest, or test_x/conftest off sys.path.
TEST_MODULE = re.compile(r"^(tests\.)?(test_\w+|conftest)(\.|$)")


def module_name(path: Path, root: Path) -> str:
    """The dotted name a file under `root` is imported as."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = PROJECT_DIR) -> set[str]:
    """Every module a file imports, relative imports made absolute; `from p import m` counts as importing p.m too."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_no_test_module_imports_a_test_module_or_conftest():
    offenders = {
        str(path.relative_to(PROJECT_DIR)): sorted(m for m in imported_modules(path) if TEST_MODULE.match(m))
        for path in sorted((PROJECT_DIR / "tests").rglob("*.py"))
    }
    assert {path: found for path, found in offenders.items() if found} == {}, "shared helpers go in tests/support"


def test_no_view_imports_another_view():
    views = PROJECT_DIR / "views"
    offenders = {
        str(path.relative_to(PROJECT_DIR)): sorted(
            m for m in imported_modules(path) if m == "views" or m.startswith("views.")
        )
        for path in sorted(views.rglob("*.py"))
        if path != views / "__init__.py"  # the route table imports the views it routes
    }
    assert {path: found for path, found in offenders.items() if found} == {}, "shared pieces go in their own package"


# "{tests}" stands for the package, so that grepping the tree for such imports finds only real ones.
@pytest.mark.parametrize(
    "statement",
    [
        "import {tests}.test_other",
        "from {tests}.test_other import helper",
        "from {tests} import test_other",
        "from {tests}.conftest import CLIENT_ID",
        "from {tests} import conftest",
        "from . import test_other",
        "from .conftest import CLIENT_ID",
        "import conftest",
    ],
)
def test_the_check_sees_every_form_of_import(statement, tmp_path):
    path = tmp_path / "tests" / "test_probe.py"
    path.parent.mkdir()
    path.write_text(statement.format(tests="tests") + "\n")
    found = imported_modules(path, root=tmp_path)
    assert any(TEST_MODULE.match(m) for m in found), found
