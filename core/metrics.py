"""Prometheus metrics: every metric chatterd exports is defined here, so any module can import and count.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set by gunicorn.conf.py before any worker imports this module,
and prometheus_client then keeps each worker's values in files there; /metrics adds them up.
Outside gunicorn (tests, adev) the default single-process registry is used.
"""

from __future__ import annotations

import asyncio
import os
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from db.pool import DatabaseUnavailable

CLIENT_CLOSED = 499  # nginx's code for "the client closed the connection before the answer"
UNMATCHED_ROUTE = "unmatched"  # every path no route matches (404s, scanners) shares this one label value

HTTP_REQUESTS = Counter(
    "chatterd_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "chatterd_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# ---- counters the sign-in, throttling and revocation code increments --------------------------------------------

SIGN_INS = Counter(
    "chatterd_sign_ins_total",
    "Sign-in attempts, by kind (google, google_web, password, passkey, refresh) and outcome "
    "(success, failure, reuse, throttled, unavailable, banned).",
    ["kind", "outcome"],
)
THROTTLES = Counter(
    "chatterd_throttles_total",
    "Requests refused with a 429, by what was throttled (login, signup, ...).",
    ["kind"],
)
REVOCATIONS = Counter(
    "chatterd_revocations_total",
    "Revocations, by how: jwt or chatterid (a logout with one: its session), session (DELETE /sessions/{id}), "
    "others (sign out everywhere else), reuse (a refresh token used twice), all (log out everywhere).",
    ["kind"],
)
SESSIONS_OPENED = Counter(
    "chatterd_sessions_opened_total",
    "Sessions opened by a sign-in, by kind (password, google, google_web, passkey).",
    ["kind"],
)
SESSIONS_ENDED = Counter(
    "chatterd_sessions_ended_total",
    "Sessions ended before their time, by reason (logout, revoked, revoke_others, refresh_reuse, password_reset, "
    "password_change, ...).",
    ["reason"],
)
SESSION_LAST_SEEN_WRITES = Counter(
    "chatterd_session_last_seen_writes_total",
    "Sessions whose last use was written (at most once a minute each).",
)
CERTIFICATE_FETCHES = Counter(
    "chatterd_google_certificate_fetches_total",
    "Fetches of Google's signing certificates, by outcome (success, failure).",
    ["outcome"],
)
MAIL_ATTEMPTS = Counter(
    "chatterd_mail_attempts_total",
    "Attempts to hand an outbox message to the relay, by kind of message and outcome (sent, retry, failed).",
    ["kind", "outcome"],
)


def route_label(request: web.Request) -> str:
    """The matched resource's template ("/chatts/{id}"), never the raw URL, so unknown paths cannot add series."""
    resource = request.match_info.route.resource
    if resource is None:
        return UNMATCHED_ROUTE
    # "/getchatts" and "/getchatts/" are one endpoint.
    return resource.canonical.rstrip("/") or "/"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count each request and time it, labelled by route template and final status."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except DatabaseUnavailable:
        status = 503  # what the error middleware outside this one turns it into
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED  # the client went away: not a server error, and no alert should think so
        raise
    finally:
        labels = (request.method, route_label(request), str(status))
        HTTP_REQUESTS.labels(*labels).inc()
        HTTP_LATENCY.labels(*labels).observe(time.perf_counter() - started)


def multiprocess_dir() -> str | None:
    """The folder where gunicorn workers keep their metric files, when running multi-process."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> bytes:
    """The metrics in Prometheus' text format: every worker's, added up, under gunicorn; this process's otherwise."""
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


__all__ = [
    "CERTIFICATE_FETCHES",
    "CONTENT_TYPE_LATEST",
    "HTTP_LATENCY",
    "HTTP_REQUESTS",
    "REVOCATIONS",
    "SESSIONS_ENDED",
    "SESSIONS_OPENED",
    "SESSION_LAST_SEEN_WRITES",
    "SIGN_INS",
    "THROTTLES",
    "exposition",
    "metrics_middleware",
    "route_label",
]
