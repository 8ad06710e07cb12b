"""Bounded HTTP load for the fault, scale-out and soak tests: every loop stops by itself, in requests and in time."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import psutil

# Kinds of request in a mixed load: a read, an anonymous post, and posts signed in with a chatterID or a JWT.
READ, ANON, CHATTERID, JWT = "read", "anon", "chatterid", "jwt"
POSTS = frozenset({ANON, CHATTERID, JWT})

# gunicorn's --access-logformat for aiohttp's worker (aiohttp's own directives): which worker answered what, and the
# X-Request-ID each request carries (the app echoes the client's), which is the request's rid.
ACCESS_LOG_ARGS = ("--access-logformat", 'ACCESS %P %s "%r" %{X-Request-ID}o')
_ACCESS_LINE = re.compile(r'^ACCESS <(\d+)> (\d{3}) "(\S+) (\S+) [^"]*" (\S+)$', re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Served:
    """One line of the access log: the worker that answered, the status, and the request's rid."""

    pid: int
    status: int
    method: str
    path: str
    rid: str


def served(log: str) -> list[Served]:
    """The requests a gunicorn log (written with ACCESS_LOG_ARGS) says were answered."""
    return [
        Served(int(pid), int(status), method, target.partition("?")[0], rid)
        for pid, status, method, target, rid in _ACCESS_LINE.findall(log)
    ]


@dataclass(frozen=True, slots=True)
class Shot:
    """One request of a load and what became of it."""

    kind: str
    rid: str  # unique; sent as X-Request-ID, and the message of a post
    started: float  # time.monotonic()
    elapsed: float
    status: int | None = None  # None when no response came back
    error: str | None = None  # "refused" (never connected), "disconnected", "reset", "timeout", ...
    retry_after: str | None = None
    json_error: bool = True  # a non-200 body was the contract's {"message": str}

    @property
    def finished(self) -> float:
        """When the answer (or the failure) came, on the time.monotonic() clock."""
        return self.started + self.elapsed


@dataclass(slots=True)
class Credentials:
    """What a signed-in load client presents."""

    chatter_id: str | None = None
    token: str | None = None


def classify(exc: BaseException) -> str:
    """A short name for why a request got no response; "refused" only when no connection was ever made."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "refused"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    if isinstance(exc, aiohttp.ClientOSError):
        return "reset"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__


def _json_error(body: bytes) -> bool:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and set(data) == {"message"} and isinstance(data["message"], str)


async def send(
    session: aiohttp.ClientSession,
    base_url: str,
    kind: str,
    rid: str,
    creds: Credentials,
    *,
    timeout: float,
    data: Any = None,
) -> Shot:
    """Send one request of the given kind, read the whole answer, and record it; never raises for HTTP failures."""
    headers = {"X-Request-ID": rid}
    body: dict[str, str] = {"message": rid}
    if kind == READ:
        method, path = "GET", "/getchatts/"
    elif kind == ANON:
        method, path = "POST", "/postchatt/"
        body["username"] = "anon"
    elif kind == CHATTERID:
        method, path = "POST", "/postauth/"
        assert creds.chatter_id is not None
        body["chatterID"] = creds.chatter_id
    elif kind == JWT:
        method, path = "POST", "/postauth/"
        assert creds.token is not None
        headers["Authorization"] = f"Bearer {creds.token}"
    else:
        raise ValueError(kind)
    params = {"limit": "20"} if method == "GET" else {}
    payload: dict[str, Any] = {} if method == "GET" else ({"json": body} if data is None else {"data": data})
    if data is not None:
        headers["Content-Type"] = "application/json"
    started = time.monotonic()
    try:
        async with session.request(
            method,
            base_url + path,
            params=params,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            **payload,
        ) as resp:
            raw = await resp.read()
            return Shot(
                kind,
                rid,
                started,
                time.monotonic() - started,
                status=resp.status,
                retry_after=resp.headers.get("Retry-After"),
                json_error=resp.status == 200 or _json_error(raw),
            )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Shot(kind, rid, started, time.monotonic() - started, error=classify(exc))


class MixedLoad:
    """Clients in loops sending a mix of requests until stopped, or out of requests, or out of time."""

    def __init__(
        self,
        base_urls: Sequence[str],
        *,
        clients: int,
        max_requests: int,
        duration: float,
        timeout: float,
        kinds: Sequence[str] = (READ, ANON),
        creds: Credentials | None = None,
        tag: str = "load",
        fresh_connections: bool = False,
    ) -> None:
        self.base_urls = list(base_urls)
        self.clients = clients
        self.max_requests = max_requests
        self.duration = duration
        self.timeout = timeout
        self.kinds = list(kinds)
        self.creds = creds or Credentials()
        self.tag = tag
        self.fresh_connections = fresh_connections
        self.shots: list[Shot] = []
        self._issued = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ended_by = ""

    async def __aenter__(self) -> MixedLoad:
        self._task = asyncio.create_task(self.run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop()
        assert self._task is not None
        await self._task

    def stop(self) -> None:
        """Ask every client to finish its current request and stop."""
        self._stop.set()

    @property
    def done(self) -> bool:
        """True once every client has stopped."""
        return self._task is not None and self._task.done()

    async def run(self) -> None:
        """Run the clients to the end: stop(), `max_requests` sent, or `duration` seconds gone."""
        deadline = time.monotonic() + self.duration
        connector = aiohttp.TCPConnector(limit=0, force_close=self.fresh_connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(self._client(session, n, deadline) for n in range(self.clients)))
        if not self.ended_by:
            self.ended_by = "stop"

    async def _client(self, session: aiohttp.ClientSession, number: int, deadline: float) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            if self._issued >= self.max_requests:
                self.ended_by = self.ended_by or "requests"
                return
            if time.monotonic() >= deadline:
                self.ended_by = self.ended_by or "time"
                return
            self._issued += 1
            kind = self.kinds[(number + n) % len(self.kinds)]
            base_url = self.base_urls[(number + n) % len(self.base_urls)]
            shot = await send(session, base_url, kind, f"{self.tag}-{number}-{n}", self.creds, timeout=self.timeout)
            self.shots.append(shot)

    def count(self, *, status: int | None = None, error: str | None = None, since: float = 0.0) -> int:
        """How many requests started at or after `since` got this status (or failed with this error)."""
        return sum(
            1
            for s in self.shots
            if s.started >= since and (status is None or s.status == status) and (error is None or s.error == error)
        )

    def reached(self, *, at_least: int, since: float = 0.0, **which: Any) -> Callable[[], Awaitable[bool]]:
        """A condition for `wait_for`: `at_least` requests since `since` matched; fails at once if the load ended."""

        async def condition() -> bool:
            if self.count(since=since, **which) >= at_least:
                return True
            if self.done:
                raise AssertionError(f"the load ended ({self.ended_by}) before {at_least} requests matched {which}")
            return False

        return condition

    def statuses(self) -> Counter[int | str]:
        """Every outcome: an HTTP status, or the name of the failure."""
        return Counter(s.status if s.status is not None else str(s.error) for s in self.shots)

    def acked(self) -> set[str]:
        """The messages of the posts acknowledged with a 200."""
        return {s.rid for s in self.shots if s.kind in POSTS and s.status == 200}

    def slowest(self) -> float:
        """The longest any request took, in seconds."""
        return max((s.elapsed for s in self.shots), default=0.0)


@dataclass(slots=True)
class SlowUpload:
    """A post whose JSON body trickles in over several chunks: a request that is in flight for a while."""

    rid: str
    chunks: int = 6
    pace: float = 0.15
    sent: int = 0
    progressed: asyncio.Event = field(default_factory=asyncio.Event)

    async def body(self) -> AsyncIterator[bytes]:
        """The body of an anonymous post, a few bytes at a time; the pacing is the slow client being simulated."""
        data = orjson.dumps({"username": "slow", "message": self.rid})
        size = -(-len(data) // self.chunks)
        for offset in range(0, len(data), size):
            yield data[offset : offset + size]
            self.sent += 1
            self.progressed.set()
            await asyncio.sleep(self.pace)

    async def post(self, session: aiohttp.ClientSession, base_url: str, *, timeout: float) -> Shot:
        """Send it and record the answer."""
        return await send(session, base_url, ANON, self.rid, Credentials(), timeout=timeout, data=self.body())


async def google_sign_in(
    session: aiohttp.ClientSession, base_url: str, id_token: str, client_id: str
) -> dict[str, Any]:
    """POST /adduser/ with a Google ID token; the chatterID, JWT, username and lifetime it gives."""
    async with session.post(f"{base_url}/adduser/", json={"clientID": client_id, "idToken": id_token}) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
    return body


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes."""
    return int(psutil.Process(pid).memory_info().rss)


def worker_pids(master_pid: int) -> list[int]:
    """The pids of a gunicorn master's workers (its child processes)."""
    return sorted(child.pid for child in psutil.Process(master_pid).children())
