"""Running wrk: installing it when missing, driving it with bench/lua/requests.lua, reading its result."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

LUA_SCRIPT = Path(__file__).resolve().parent / "lua" / "requests.lua"
RESULT_PREFIX = "BENCH-RESULT "
STOP_MARKER = "BENCH-STOP"
# wrk leaves requests slower than its --timeout out of the latency figures; keep that well above any p99 we expect.
WRK_TIMEOUT = "10s"


class WrkError(RuntimeError):
    """wrk could not be found, installed or run, or printed no result."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run measured."""

    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    non_2xx: int

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


def ensure_wrk() -> str:
    """The path of wrk, installing it with apt-get when missing and running as root."""
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() != 0:
        raise WrkError("wrk is not installed; install it with `sudo apt-get install -y wrk` and run the bench again")
    apt = shutil.which("apt-get")
    if apt is None:
        raise WrkError("wrk is not installed and apt-get is not available; install wrk and run the bench again")
    logger.info("wrk is missing; installing it with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, capture_output=True, timeout=600, check=False).returncode != 0:
        subprocess.run([apt, "update", "-q"], env=env, capture_output=True, timeout=600, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise WrkError(f"`apt-get install -y wrk` failed:\n{done.stderr.strip()}")
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("apt-get installed wrk but it is not on PATH")
    return path


def wrk_version(wrk: str) -> str:
    """wrk's version line, for the report."""
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10, check=False)
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "wrk (unknown version)"


def parse_result(output: str) -> WrkResult:
    """The BENCH-RESULT line that requests.lua's done() printed."""
    for line in output.splitlines():
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line[len(RESULT_PREFIX) :])
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=int(data["duration_us"]) / 1e6,
                p50_ms=int(data["p50_us"]) / 1000,
                p99_ms=int(data["p99_us"]) / 1000,
                max_ms=int(data["max_us"]) / 1000,
                socket_errors=sum(int(data[k]) for k in ("connect", "read", "write", "timeout")),
                non_2xx=int(data["status"]),
            )
    raise WrkError(f"wrk printed no result:\n{output.strip()}")


async def run_wrk(
    wrk: str,
    url: str,
    specs: list[str],
    *,
    duration: float,
    connections: int,
    threads: int = 1,
    stop_after: int | None = None,
    log_path: Path | None = None,
) -> WrkResult:
    """Run wrk against `url` with the given request specs; with `stop_after`, end once that many responses came."""
    args = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={WRK_TIMEOUT}",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        *specs,
    ]
    if stop_after is not None:
        args.append(f"stop_after={stop_after}")
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True
    )
    lines: list[str] = []
    try:
        async with asyncio.timeout(duration + 30):
            assert proc.stdout is not None
            async for raw in proc.stdout:
                line = raw.decode(errors="replace")
                lines.append(line)
                if line.strip() == STOP_MARKER and proc.returncode is None:
                    proc.send_signal(signal.SIGINT)  # wrk then prints its summary at once
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = "".join(lines)
    if log_path is not None:
        with log_path.open("a") as log:
            log.write(f"$ {' '.join(args)}\n{output}\n")
    if proc.returncode != 0:
        raise WrkError(f"wrk exited with status {proc.returncode}:\n{output.strip()}")
    return parse_result(output)
