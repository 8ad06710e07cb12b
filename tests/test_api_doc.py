"""docs/api.md keeps up with /openapi.json: every served operation is in its index, with the same status codes.

The index may list operations not served yet (the contract's planned endpoints); those are not checked here.
"""

from __future__ import annotations

import re

from tests.support.common import PROJECT_DIR

API_DOC = PROJECT_DIR / "docs" / "api.md"
METHODS = {"get", "post", "put", "patch", "delete"}
ROW = re.compile(r"^\| (?P<method>[A-Z]+) \| (?P<path>/\S*) \| (?P<answers>[^|]*) \|")


def index() -> list[tuple[str, str, tuple[str, ...]]]:
    """The rows of docs/api.md's endpoint index: method, path, status codes."""
    text = API_DOC.read_text()
    section = text.split("\n## Endpoint index\n", 1)[1].split("\n## ", 1)[0]
    return [
        (m["method"], m["path"], tuple(sorted(re.findall(r"\b\d{3}\b", m["answers"]))))
        for line in section.splitlines()
        if (m := ROW.match(line))
    ]


def row(method: str, path: str, answers: tuple[str, ...], what: str) -> str:
    return f"| {method} | {path} | {', '.join(answers)} | {what} |"


async def test_every_served_operation_is_in_the_index_with_its_statuses(client):
    document = await (await client.get("/openapi.json")).json()
    listed = {(method, path): answers for method, path, answers in index()}
    problems = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            served = tuple(sorted(operation["responses"]))
            wanted = row(method.upper(), path, served, operation.get("summary", ""))
            documented = listed.get((method.upper(), path))
            if documented is None:
                problems.append(f"add this row to the endpoint index of docs/api.md: {wanted}")
            elif documented != served:
                problems.append(
                    f"docs/api.md says {method.upper()} {path} answers {', '.join(documented)} but /openapi.json says "
                    f"{', '.join(served)}: make its row {row(method.upper(), path, served, '...')}"
                )
    assert not problems, "\n".join(problems)


def test_each_operation_is_indexed_once():
    keys = [(method, path) for method, path, _ in index()]
    assert len(keys) > 20
    assert sorted(keys) == sorted(set(keys)), "an operation is listed twice in docs/api.md's endpoint index"


def test_the_readme_links_the_contract():
    readme = (PROJECT_DIR / "README.md").read_text()
    assert "](docs/api.md)" in readme
    assert "../shared" not in readme, "the contract lives in the repository"
