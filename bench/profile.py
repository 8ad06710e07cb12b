"""Sampling one gunicorn worker with py-spy while wrk runs, and summarising where its time went."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path


class Profiler:
    """`py-spy record` on one process for a fixed time; raw collapsed stacks plus a text summary."""

    def __init__(self, pid: int, out: Path, duration: float) -> None:
        self.pid = pid
        self.out = out
        self.duration = max(1, round(duration))
        self.proc: asyncio.subprocess.Process | None = None
        self.error = ""

    @staticmethod
    def executable() -> str | None:
        """py-spy beside this Python, or on PATH."""
        beside = Path(sys.executable).parent / "py-spy"
        return str(beside) if beside.exists() else shutil.which("py-spy")

    async def start(self) -> None:
        """Begin sampling (it ends by itself after `duration` seconds)."""
        exe = self.executable()
        if exe is None:
            self.error = "py-spy is not installed (pip install py-spy)"
            return
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            exe,
            "record",
            "--pid",
            str(self.pid),
            "--duration",
            str(self.duration),
            "--rate",
            "200",
            "--format",
            "raw",
            "--function",
            "--nonblocking",
            "--output",
            str(self.out),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def finish(self) -> str:
        """Wait for py-spy, write the summary next to the raw file and return a one-line note."""
        if self.proc is None:
            return self.error
        try:
            output, _ = await asyncio.wait_for(self.proc.communicate(), timeout=self.duration + 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            return "py-spy did not finish in time"
        if self.proc.returncode != 0 or not self.out.exists():
            return f"py-spy failed: {output.decode(errors='replace').strip()[-300:]}"
        summary = summarise(self.out.read_text())
        summary_path = self.out.with_suffix(".top.txt")
        summary_path.write_text(summary)
        return (
            f"py-spy profile of worker {self.pid}: {self.out.name} (collapsed stacks), summary in {summary_path.name}"
        )


def summarise(collapsed: str, top: int = 30) -> str:
    """The functions with the most samples on top of the stack (self) and anywhere in it (total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return "no samples\n"
    lines = [f"{samples} samples", "", "self %  function"]
    lines += [f"{100 * n / samples:6.1f}  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "total %  function"]
    lines += [f"{100 * n / samples:7.1f}  {frame}" for frame, n in total.most_common(top)]
    return "\n".join(lines) + "\n"
