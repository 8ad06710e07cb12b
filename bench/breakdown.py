"""`python -m bench.breakdown`: what each part of a small request costs a worker, in µs, measured in-process.

Each figure is the best of 5 rounds of `--calls` calls, on this process alone, without sockets: so it is the Python
work of that part and nothing else (the system calls of reading and answering are the same for hello and chatterd,
and are in neither). The access log goes to /dev/null through the handlers and filters gunicorn.conf.py configures,
and the metrics to prometheus_client's multiprocess files, as under gunicorn.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

# As under gunicorn: prometheus_client in multiprocess mode, before anything imports it.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="chatterd-breakdown-")

from aiohttp import web, web_log
from aiohttp.test_utils import make_mocked_request

from core import metrics
from core.access_log import AccessLogger, BufferedStreamHandler
from core.bodies import json_response
from core.headers import add_security_headers
from core.observability import (
    ACCESS_LOG_FORMAT,
    AccessLogRedactor,
    RequestIdFilter,
    new_request_id,
    sane_request_id,
)
from middlewares import request_middleware
from settings import Settings
from web import create_app

ROUNDS = 5


def best(calls: int, action: Callable[[], object]) -> float:
    """µs per call of `action`: the best of ROUNDS rounds of `calls` calls, inside an event loop (as in a worker)."""

    async def rounds() -> float:
        times = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            for _ in range(calls):
                action()
            times.append(time.perf_counter() - started)
        return 1e6 * min(times) / calls

    return asyncio.run(rounds())


def best_async(calls: int, action: Callable[[], Awaitable[object]]) -> float:
    """µs per await of `action()`: the best of ROUNDS rounds of `calls` awaits, in one event loop."""

    async def rounds() -> float:
        times = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            for _ in range(calls):
                await action()
            times.append(time.perf_counter() - started)
        return 1e6 * min(times) / calls

    return asyncio.run(rounds())


def access_logger(name: str, handler: logging.Handler) -> logging.Logger:
    """A logger set up as gunicorn.conf.py sets up the access loggers, writing to `handler`."""
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.filters = [AccessLogRedactor()]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    return logger


def main(argv: list[str] | None = None) -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round (20000)")
    calls = parser.parse_args(argv).calls
    logging.getLogger("bench.breakdown").setLevel(logging.WARNING)

    settings = Settings(secret_key="x" * 48, database_url="postgresql:///unused")
    app = asyncio.run(create_app(settings))
    app.freeze()
    hello = web.Application()

    async def say_hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    hello.router.add_get("/", say_hello)
    hello.freeze()

    healthz = make_mocked_request("GET", "/healthz", headers={"User-Agent": "wrk"}, app=app)
    root = make_mocked_request("GET", "/", headers={"User-Agent": "wrk"}, app=hello)
    response = json_response({"status": "ok"})
    response.headers["X-Request-ID"] = new_request_id()

    async def plain(request: web.Request) -> web.StreamResponse:
        return response

    async def through_request_middleware() -> Any:
        return await request_middleware(healthz, plain)

    def security_headers() -> None:
        add_security_headers(healthz, response.headers)

    devnull = open(os.devnull, "w")  # open for the whole run
    ours = AccessLogger(access_logger("breakdown.ours", BufferedStreamHandler(devnull)), ACCESS_LOG_FORMAT)
    theirs = web_log.AccessLogger(access_logger("breakdown.aiohttp", logging.StreamHandler(devnull)), ACCESS_LOG_FORMAT)
    labels = ("GET", "/healthz", "200")

    def prometheus_per_request() -> None:
        metrics.HTTP_REQUESTS.labels(*labels).inc()
        metrics.HTTP_LATENCY.labels(*labels).observe(0.0002)

    def count_request() -> None:
        metrics.count_request(healthz, 200, 2e-4)

    def log_now() -> None:
        ours.log(healthz, response, 2e-4)

    def log_before() -> None:
        theirs.log(healthz, response, 2e-4)

    rows: list[tuple[str, float]] = [
        ("hello: route and view (the baseline's Python work)", best_async(calls, lambda: hello._handle(root))),
        ("healthz: route, middlewares and view", best_async(calls, lambda: app._handle(healthz))),
        (
            "the middleware (request id, no credential, errors, headers, metrics)",
            best_async(calls, through_request_middleware),
        ),
        ("security headers (nosniff, HSTS check)", best(calls, security_headers)),
        ("JSON body (json_response of the healthz answer)", best(calls, lambda: json_response({"status": "ok"}))),
        ("request id made (new_request_id)", best(calls, new_request_id)),
        ("request id checked (sane_request_id)", best(calls, lambda: sane_request_id("abc-123"))),
        (
            "metrics now: one request counted (count_request)",
            best(calls, count_request),
        ),
        ("metrics before: prometheus_client Counter.inc + Histogram.observe", best(calls, prometheus_per_request)),
        (
            "access log now: AccessLogger + BufferedStreamHandler",
            best(calls, log_now),
        ),
        (
            "access log before: aiohttp's AccessLogger + StreamHandler",
            best(calls, log_before),
        ),
    ]
    metrics.flush()
    width = max(len(name) for name, _ in rows)
    print(f"| {'part':<{width}} | µs per request |")
    print(f"| {'-' * width} | --- |")
    for name, micros in rows:
        print(f"| {name:<{width}} | {micros:.1f} |")
    print(f"\n(best of {ROUNDS} rounds of {calls:,} calls, Python work only, no sockets)")


if __name__ == "__main__":
    main()
