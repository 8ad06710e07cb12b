"""Shared fixtures: one real Postgres per run, a fresh database, the real app on a real port, a relay to cut."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from psycopg2 import sql

from core.keys import settings_key
from db.embedded import EmbeddedPostgres
from settings import Settings
from tests.support.common import CLIENT_ID, truncate_all
from tests.support.pgproxy import PgProxy
from tests.support.smtp import MailServer
from tools.fake_google import CERTS_PATH, FakeGoogle
from web import create_app


def _admin_execute(url: str, statement: sql.Composable) -> None:
    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def with_database(url: str, name: str) -> str:
    """The same server URL/DSN, naming another database."""
    params = psycopg2.extensions.parse_dsn(url)
    params["dbname"] = name
    return psycopg2.extensions.make_dsn(**params)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A Postgres server: DATABASE_URL when set, else an embedded one in a temporary folder."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    # Not under pytest's basetemp: concurrent pytest runs prune each other's old basetemps.
    folder = Path(tempfile.mkdtemp(prefix="chatterd-test-pg-"))
    server = EmbeddedPostgres(folder)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def make_database(postgres_server_url: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty databases on the test server, all dropped at the end of the run."""
    created: list[str] = []

    def make() -> str:
        name = f"chatterd_test_{secrets.token_hex(6)}"
        _admin_execute(postgres_server_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return with_database(postgres_server_url, name)

    yield make
    for name in created:
        _admin_execute(
            postgres_server_url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def database_url(make_database: Callable[[], str]) -> str:
    """The database most tests share; tables are emptied before each test."""
    return make_database()


@pytest.fixture
def google() -> FakeGoogle:
    """A stand-in for Google: its own RSA key, certificates in Google's format, real RS256 ID tokens."""
    return FakeGoogle(max_age=3600)


@pytest.fixture
async def google_certs_url(aiohttp_server: Any, google: FakeGoogle) -> str:
    """Where the fake Google serves its certificates, on a real local port."""
    server = await aiohttp_server(google.app(), host="127.0.0.1")
    return str(server.make_url(CERTS_PATH))


@pytest.fixture
def settings(database_url: str, tmp_path: Path, google_certs_url: str) -> Settings:
    """Settings for one test: a fresh secret, the shared test database, cheap password hashing."""
    return Settings(
        secret_key=secrets.token_urlsafe(48),
        database_url=database_url,
        var_dir=tmp_path / "var",
        google_client_ids=(CLIENT_ID,),
        google_certs_url=google_certs_url,
        db_pool_min=0,
        db_pool_max=10,
        db_connect_timeout=2.0,
        db_acquire_timeout=2.0,
        db_statement_timeout=5.0,
        retry_after=2,
        adduser_max_per_address=100_000,
        password_time_cost=1,
        password_memory_cost=8 * 1024,
    )


ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def make_client(aiohttp_client: Any, settings: Settings) -> ClientFactory:
    """Build the real app with the given setting overrides and serve it on a real port; the first empties the tables."""
    fresh = True

    async def make(**overrides: Any) -> TestClient[web.Request, web.Application]:
        nonlocal fresh
        app = await create_app(replace(settings, **overrides))
        client: TestClient[web.Request, web.Application] = await aiohttp_client(app)
        if fresh and app[settings_key].database_url == settings.database_url:
            await truncate_all(app)
            fresh = False
        return client

    return make


@pytest.fixture
async def client(make_client: ClientFactory) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The app with test settings, its tables empty."""
    yield await make_client()


@pytest.fixture
async def proxied(
    make_client: ClientFactory, database_url: str
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], PgProxy]]:
    """The app reaching Postgres through a relay the test can cut."""
    params = psycopg2.extensions.parse_dsn(database_url)
    proxy = PgProxy.for_dsn_params(params)
    await proxy.start()
    url = psycopg2.extensions.make_dsn(**{**params, "host": "127.0.0.1", "port": str(proxy.port)})
    client = await make_client(
        database_url=url, db_connect_timeout=1.0, db_acquire_timeout=1.0, db_statement_timeout=1.0
    )
    yield client, proxy
    await proxy.close()


@pytest.fixture
async def smtp() -> AsyncIterator[MailServer]:
    """A real SMTP server on loopback (aiosmtpd), listening."""
    server = MailServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def mail_client(make_client: ClientFactory, smtp: MailServer) -> TestClient[web.Request, web.Application]:
    """The app sending its mail to `smtp`, retrying fast."""
    return await make_client(smtp_url=smtp.url(), mail_retry_seconds=0.05)
