"""Prometheus metrics: every metric chatterd exports is defined here, so any module can import and count.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set by gunicorn.conf.py before any worker imports this module,
and prometheus_client then keeps each worker's values in files there; /metrics adds them up.
Outside gunicorn (tests, adev) the default single-process registry is used.

Counting goes into plain dictionaries first: prometheus_client takes a lock and writes its file for every increment,
which cost more than the rest of a small request. The counts of one event-loop iteration reach prometheus_client
together at the start of the next (a loop answering many requests at once pays once for all of them), and before
every read of the default registry; so a scrape sees every request any worker had answered a moment before.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterable

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

CLIENT_CLOSED = 499  # nginx's code for "the client closed the connection before the answer"
UNMATCHED_ROUTE = "unmatched"  # every path no route matches (404s, scanners) shares this one label value
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PendingCounter:
    """A prometheus_client Counter whose increments wait in a dictionary, by label values, until the next flush."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...] = ()) -> None:
        self.exported = Counter(name, documentation, labelnames)
        self._labelnames = labelnames
        self._pending: dict[tuple[str, ...], float] = {}
        self._children: dict[tuple[str, ...], _PendingChild] = {}
        _PENDING.append(self)

    def labels(self, *values: str, **named: str) -> _PendingChild:
        """The counter of these label values (given in order, or by name)."""
        key = values or tuple(named[name] for name in self._labelnames)
        child = self._children.get(key)
        if child is None:  # label values are a few fixed words (kinds, outcomes, reasons): kept for good
            child = self._children[key] = _PendingChild(self, key)
        return child

    def inc(self, amount: float = 1.0) -> None:
        """Count `amount` on a counter without labels."""
        self.add((), amount)

    def add(self, key: tuple[str, ...], amount: float) -> None:
        """Count `amount` under the label values `key`."""
        self._pending[key] = self._pending.get(key, 0.0) + amount
        if _flushing_in is None or _flushing_in.is_closed():
            _flush_soon()

    def flush(self) -> None:
        """Hand the pending counts to prometheus_client."""
        pending, self._pending = self._pending, {}
        for key, amount in pending.items():
            (self.exported.labels(*key) if key else self.exported).inc(amount)


class _PendingChild:
    __slots__ = ("_counter", "_key")

    def __init__(self, counter: PendingCounter, key: tuple[str, ...]) -> None:
        self._counter = counter
        self._key = tuple(str(value) for value in key)

    def inc(self, amount: float = 1.0) -> None:
        """Count `amount`."""
        self._counter.add(self._key, amount)


class RequestMetrics:
    """HTTP requests counted and timed by method, route and status: per key, one count per latency bucket and the sum
    of the latencies, until the next flush (which labels them with the route's template)."""

    def __init__(self, requests: Counter, latency: Histogram) -> None:
        self._requests = requests
        self._latency = latency
        self._bounds = LATENCY_BUCKETS
        self._pending: dict[tuple[str, AbstractResource | None, int], list[float]] = {}
        _PENDING.append(self)

    def record(self, key: tuple[str, AbstractResource | None, int], seconds: float) -> None:
        """One request (method, matched resource or None, status) answered in `seconds`."""
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = [0.0] * (len(self._bounds) + 2)  # the buckets, +Inf, and the sum
        entry[bisect_left(self._bounds, seconds)] += 1  # the first bucket whose bound is >= seconds
        entry[-1] += seconds
        if _flushing_in is None or _flushing_in.is_closed():
            _flush_soon()

    def flush(self) -> None:
        """Hand the pending counts and latencies to prometheus_client."""
        pending, self._pending = self._pending, {}
        labelled: dict[tuple[str, str, str], list[float]] = {}
        for (method, resource, status), entry in pending.items():
            labels = (method, resource_label(resource), str(status))
            total = labelled.get(labels)
            if total is None:
                labelled[labels] = entry
            else:
                labelled[labels] = [a + b for a, b in zip(total, entry, strict=True)]
        for labels, entry in labelled.items():
            self._requests.labels(*labels).inc(sum(entry[:-1]))
            # prometheus_client has no call to add many observations at once: its histogram child keeps one value
            # per bucket (non-cumulative, +Inf last) and the sum, which take the counts as observe() would have.
            child = self._latency.labels(*labels)
            child._sum.inc(entry[-1])
            for bucket, count in zip(child._buckets, entry[:-1], strict=True):
                if count:
                    bucket.inc(count)


_PENDING: list[PendingCounter | RequestMetrics] = []


class _FlushFirst(Collector):
    """Registered before every metric: whoever reads the default registry (a scrape outside gunicorn, a test's
    get_sample_value) reads this worker's pending counts too."""

    def collect(self) -> Iterable[Metric]:
        """Flush; no metric of its own."""
        for pending in _PENDING:
            pending.flush()
        return []


REGISTRY.register(_FlushFirst())

HTTP_REQUESTS = Counter(
    "chatterd_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "chatterd_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
REQUESTS = RequestMetrics(HTTP_REQUESTS, HTTP_LATENCY)

# ---- counters the sign-in, throttling and revocation code increments --------------------------------------------

SIGN_INS = PendingCounter(
    "chatterd_sign_ins_total",
    "Sign-in attempts, by kind (google, google_web, password, passkey, refresh) and outcome "
    "(success, failure, reuse, throttled, unavailable, banned).",
    ("kind", "outcome"),
)
THROTTLES = PendingCounter(
    "chatterd_throttles_total",
    "Requests refused with a 429, by what was throttled (login, signup, ...).",
    ("kind",),
)
REVOCATIONS = PendingCounter(
    "chatterd_revocations_total",
    "Revocations, by how: jwt or chatterid (a logout with one: its session), session (DELETE /sessions/{id}), "
    "others (sign out everywhere else), reuse (a refresh token used twice), all (log out everywhere).",
    ("kind",),
)
SESSIONS_OPENED = PendingCounter(
    "chatterd_sessions_opened_total",
    "Sessions opened by a sign-in, by kind (password, google, google_web, passkey).",
    ("kind",),
)
SESSIONS_ENDED = PendingCounter(
    "chatterd_sessions_ended_total",
    "Sessions ended before their time, by reason (logout, revoked, revoke_others, refresh_reuse, password_reset, "
    "password_change, ...).",
    ("reason",),
)
SESSION_LAST_SEEN_WRITES = PendingCounter(
    "chatterd_session_last_seen_writes_total",
    "Sessions whose last use was written (at most once a minute each).",
)
CERTIFICATE_FETCHES = PendingCounter(
    "chatterd_google_certificate_fetches_total",
    "Fetches of Google's signing certificates, by outcome (success, failure).",
    ("outcome",),
)
MAIL_ATTEMPTS = PendingCounter(
    "chatterd_mail_attempts_total",
    "Attempts to hand an outbox message to the relay, by kind of message and outcome (sent, retry, failed).",
    ("kind", "outcome"),
)


def route_label(request: web.Request) -> str:
    """The matched resource's template ("/chatts/{id}"), never the raw URL, so unknown paths cannot add series."""
    return resource_label(request.match_info.route.resource)


def resource_label(resource: AbstractResource | None) -> str:
    """A resource's template, the same with or without its trailing slash; UNMATCHED_ROUTE for none."""
    if resource is None:
        return UNMATCHED_ROUTE
    # "/getchatts" and "/getchatts/" are one endpoint.
    return resource.canonical.rstrip("/") or "/"


def count_request(request: web.Request, status: int, seconds: float) -> None:
    """Count one answered request, labelled by method, route template and final status."""
    REQUESTS.record((request.method, request.match_info.route.resource, status), seconds)


_flushing_in: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled in, if any


def _flush_soon() -> None:
    """Flush at the start of the running loop's next iteration (at once outside a loop)."""
    global _flushing_in
    if _flushing_in is not None and not _flushing_in.is_closed():
        return  # already scheduled (a loop closed before running it, as a test's may be, is replaced)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        flush()
        return
    if _flushing_in is not loop:
        _flushing_in = loop
        loop.call_soon(flush)


def _forget_scheduled_flush() -> None:
    global _flushing_in
    _flushing_in = None


os.register_at_fork(after_in_child=_forget_scheduled_flush)


def flush() -> None:
    """Hand every pending count of this worker to prometheus_client (its files, under gunicorn)."""
    _forget_scheduled_flush()
    for pending in _PENDING:
        pending.flush()


async def flushing(app: web.Application) -> AsyncIterator[None]:
    """Flush what is pending when the app stops (its loop may not run the scheduled flush)."""
    try:
        yield
    finally:
        flush()


def multiprocess_dir() -> str | None:
    """The folder where gunicorn workers keep their metric files, when running multi-process."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> bytes:
    """The metrics in Prometheus' text format: every worker's, added up, under gunicorn; this process's otherwise."""
    flush()
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
    "count_request",
    "exposition",
    "flushing",
    "route_label",
]
