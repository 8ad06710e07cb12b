"""A real HAProxy (the Debian package's binary) in front of chatterd servers: round robin, health checks on /readyz."""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import signal
from pathlib import Path

from tests.support.common import end_process, free_port, wait_for

HAPROXY = shutil.which("haproxy") or next(
    (path for path in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if os.access(path, os.X_OK)), None
)
MISSING = "haproxy is not installed: `make test-slow` installs it as root (apt-get install haproxy)"
BACKEND = "chatterd"
# Which server answered, for the tests' eyes only.
SERVED_BY = "X-Served-By"


class HAProxy:
    """`haproxy -db` with its own config: one frontend on 127.0.0.1, one backend of `servers` (name: port)."""

    def __init__(self, folder: Path, servers: dict[str, int], *, check_interval_ms: int = 300) -> None:
        self.folder = folder
        self.servers = servers
        self.check_interval_ms = check_interval_ms
        self.port = free_port()
        self.socket = folder / "admin.sock"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> str:
        servers = "\n".join(f"    server {name} 127.0.0.1:{port} check" for name, port in self.servers.items())
        return f"""global
    nbthread 1
    maxconn 4096
    stats socket {self.socket} mode 600 level admin

defaults
    mode http
    option forwardfor
    timeout connect 2s
    timeout client 30s
    timeout server 35s
    timeout http-request 10s
    timeout http-keep-alive 10s
    # A connection refused is retried on another server; a request already sent never is.
    retries 2
    option redispatch 1

frontend web
    bind 127.0.0.1:{self.port}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter {self.check_interval_ms}ms fall 2 rise 2
    http-response set-header {SERVED_BY} %s
{servers}
"""

    async def start(self) -> None:
        """Write the config, start HAProxy in the foreground, and wait until every server is UP."""
        assert HAPROXY is not None, MISSING
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "haproxy.cfg"
        config.write_text(self._config())
        log = (self.folder / "haproxy.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(HAPROXY, "-db", "-f", str(config), stdout=log, stderr=log)
        log.close()
        for name in self.servers:
            await self.wait_status(name, "UP", timeout=20)

    async def command(self, line: str) -> str:
        """One command on the runtime API (the admin socket); its answer."""
        reader, writer = await asyncio.open_unix_connection(str(self.socket))
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return (await reader.read()).decode()
        finally:
            writer.close()

    async def stats(self) -> dict[str, dict[str, str]]:
        """`show stat` for the backend's servers, by name (fields: status, scur, stot, hrsp_5xx, …)."""
        text = await self.command("show stat")
        rows = csv.DictReader(text.removeprefix("# ").splitlines())
        return {row["svname"]: row for row in rows if row["pxname"] == BACKEND and row["svname"] in self.servers}

    async def wait_status(self, name: str, status: str, *, timeout: float) -> None:
        """Wait until `show stat` gives the server this status (UP, DOWN, DRAIN, MAINT…)."""

        async def reached() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"haproxy exited early:\n{self.log()}")
            try:
                return (await self.stats())[name]["status"] == status
            except (OSError, KeyError):
                return False

        await wait_for(reached, timeout=timeout, what=f"haproxy to see {name} {status}")

    async def drain(self, name: str, *, timeout: float) -> None:
        """Send the server no new requests, then wait until none it has is still in flight."""
        await self.command(f"set server {BACKEND}/{name} state drain")

        async def idle() -> bool:
            return (await self.stats())[name]["scur"] == "0"

        await wait_for(idle, timeout=timeout, what=f"{name}'s requests to finish")

    async def ready(self, name: str, *, timeout: float) -> None:
        """Take the server back, and wait until its health checks pass and it gets requests again."""
        await self.command(f"set server {BACKEND}/{name} state ready")
        await self.wait_status(name, "UP", timeout=timeout)

    def log(self) -> str:
        return (self.folder / "haproxy.log").read_text(errors="replace")

    async def stop(self) -> None:
        if self.proc is not None:
            await end_process(self.proc, signal.SIGTERM, timeout=10)
