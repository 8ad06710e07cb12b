"""The running app against openapi.py with schemathesis: generated requests, answers checked against the document."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import hypothesis
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from core.openapi import DOCUMENT
from settings import Settings
from tests.support.common import free_port
from web import create_app

schemathesis = pytest.importorskip("schemathesis", reason="needs the schemathesis package")


@pytest.fixture(scope="module")
def live_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Any]]:
    """The real app on a real port, in its own thread and event loop (schemathesis calls it synchronously)."""
    settings = Settings(
        secret_key=secrets.token_urlsafe(48),
        database_url=database_url,
        var_dir=tmp_path_factory.mktemp("st") / "var",
        db_pool_min=0,
        password_time_cost=1,
        password_memory_cost=8 * 1024,
    )
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Event | None = None
    apps: list[web.Application] = []

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        app = await create_app(replace(settings))
        apps.append(app)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        started.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(60), "the app did not start"
    yield f"http://127.0.0.1:{port}", apps[0], loop
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    loop.close()


from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

schema = schemathesis.openapi.from_dict(DOCUMENT)


# The contract refuses some schema-valid values on meaning, not shape (an `after` id no chatt has is a 422),
# so "valid data must be accepted" does not hold; every other check (status codes, content types, bodies) does.
EXCLUDED = [positive_data_acceptance]


@schema.parametrize()
@hypothesis.settings(max_examples=25, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_api_conforms(case, live_app):
    url, app, loop = live_app
    # An id the route takes: a user's is a number, a chatt's or a session's a UUID.
    user_id = any(
        p.get("schema", {}).get("type") == "integer" for p in case.operation.definition.raw.get("parameters", [])
    )
    path = case.operation.path.replace("{id}", "1" if user_id else "00000000-0000-4000-8000-000000000000")
    request = make_mocked_request(case.operation.method.upper(), path, app=app)
    match = asyncio.run_coroutine_threadsafe(app.router.resolve(request), loop).result(10)
    what = f"{case.operation.method.upper()} {case.operation.path}"
    assert not isinstance(match.http_exception, web.HTTPNotFound), f"{what} is documented, not routed"
    case.call_and_validate(base_url=url, excluded_checks=EXCLUDED)
