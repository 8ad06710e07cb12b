"""Liveness and readiness: /healthz always answers; /readyz follows Postgres and the migrations."""

from __future__ import annotations

import re
import tomllib

import pytest

from db.migrations import Migration, load_migrations
from settings import VERSION
from tests.support.checkout import project_files
from tests.support.common import PROJECT_DIR
from views import health


async def test_healthz_is_ok_and_says_the_version(client):
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "version": VERSION}


async def test_the_version_is_written_in_pyproject_only(client):
    version = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]["version"]
    assert (await (await client.get("/healthz")).json())["version"] == version
    assert (await (await client.get("/openapi.json")).json())["info"]["version"] == version
    written = [
        name
        for name in project_files()
        if name.endswith((".py", ".md", ".toml", ".yaml", ".yml", ".json", ".cfg"))
        and re.search(rf"(?<![\d.]){re.escape(version)}(?![\d.])", (PROJECT_DIR / name).read_text(errors="replace"))
    ]
    assert written == ["pyproject.toml"]


async def test_readyz_is_ok_when_postgres_answers_and_is_migrated(client):
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_503_when_postgres_is_cut_then_200_again(proxied):
    client, proxy = proxied
    assert (await client.get("/readyz")).status == 200

    await proxy.cut()
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) >= 1
    body = await resp.json()
    assert set(body) == {"message"} and "database" in body["message"].lower()
    # liveness does not depend on the database
    assert (await client.get("/healthz")).status == 200

    await proxy.start()
    resp = await client.get("/readyz")
    assert resp.status == 200


async def test_readyz_503_while_a_migration_is_not_applied(client, monkeypatch: pytest.MonkeyPatch):
    future = [*load_migrations(), Migration("9999_not_yet", "SELECT 1")]
    monkeypatch.setattr(health, "_known_migrations", lambda: future)
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert "Retry-After" in resp.headers
    assert "9999_not_yet" in (await resp.json())["message"]
