"""Every shell block of the README runs as written, top to bottom, in a fresh checkout, against a fresh `make run`.

Each block names its terminal on its first line, as a reader would use them: terminal 2 is one shell session
(variables and the activated virtualenv carry over from block to block) where every command must succeed, httpie's
included (`--check-status`); a block for another terminal starts a server, after Ctrl-C on whatever that terminal
ran before. Only the example ports (8000, 8765, 8443) become free ones and 0.0.0.0 becomes 127.0.0.1: the tests
listen on loopback only, beside other test runs on the same machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.checkout import checkout_env, fresh_checkout
from tests.support.common import PROJECT_DIR, free_port, wait_for

BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)
TERMINAL = re.compile(r"^# terminal (\d+)\b")
SERVER = 1  # the terminal where chatterd runs
SESSION = 2  # the terminal whose blocks run in one shell, in order
EXAMPLE_PORTS = (8000, 8765, 8443)
DONE = "__readme_block_done__"
BLOCK_TIMEOUT = 180.0


def blocks() -> list[tuple[int, str]]:
    """The README's shell blocks, in order, each with the terminal its first line names (0 when it names none)."""
    found = []
    for body in BLOCK.findall((PROJECT_DIR / "README.md").read_text()):
        match = TERMINAL.match(body)
        found.append((int(match[1]) if match else 0, body))
    return found


def test_every_shell_block_names_its_terminal():
    unnamed = [body.splitlines()[0] for terminal, body in blocks() if not terminal]
    assert not unnamed, f"start these README blocks with '# terminal N: ...': {unnamed}"
    assert sum(terminal == SESSION for terminal, _ in blocks()) >= 5


@pytest.fixture
def checkout() -> Iterator[Path]:
    with fresh_checkout("chatterd-readme-") as root:
        yield root


class Terminal:
    """A block running in the background in a session of its own, as a server in a terminal window."""

    def __init__(self, number: int, process: asyncio.subprocess.Process, log: Path) -> None:
        self.number = number
        self.process = process
        self.log = log

    async def interrupt(self) -> None:
        """Ctrl-C, and wait for everything it started to exit."""
        if self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=90)
            except TimeoutError:
                os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()


# A whole `make run` set-up and every block: under a minute on a quiet machine, a few on a loaded one.
@pytest.mark.timeout(360)
async def test_the_readme_runs_top_to_bottom(checkout, tmp_path):
    ports = {port: free_port() for port in EXAMPLE_PORTS}

    def localized(text: str) -> str:
        for example, port in ports.items():
            text = re.sub(rf"(?<![\d.]){example}(?!\d)", str(port), text)
        return text.replace("0.0.0.0", "127.0.0.1")  # noqa: S104 -- replacing it, not binding it

    httpie = tmp_path / "httpie"
    httpie.mkdir()
    (httpie / "config.json").write_text(json.dumps({"default_options": ["--check-status", "--ignore-stdin"]}))
    env = checkout_env(PORT=str(ports[8000]), HTTPIE_CONFIG_DIR=str(httpie))
    shell = await asyncio.create_subprocess_exec(
        "bash",
        "--noprofile",
        "--norc",
        cwd=checkout,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert shell.stdin is not None and shell.stdout is not None
    terminals: dict[int, Terminal] = {}
    transcript: list[str] = []
    try:
        for number, (terminal, body) in enumerate(blocks()):
            script = localized(body)
            transcript.append(f"--- block {number} (terminal {terminal})\n{script}")
            if terminal == SESSION:
                (checkout / f".readme-block-{number}.sh").write_text(script)
                shell.stdin.write(f"set -eo pipefail; . ./.readme-block-{number}.sh; set +e; echo {DONE}\n".encode())
                await shell.stdin.drain()
                try:
                    output = await asyncio.wait_for(shell.stdout.readuntil(DONE.encode()), timeout=BLOCK_TIMEOUT)
                except asyncio.IncompleteReadError as exc:
                    transcript.append(exc.partial.decode(errors="replace"))
                    raise AssertionError("a command failed:\n" + "\n".join(transcript)) from None
                transcript.append(output.decode(errors="replace"))
                continue
            if terminal in terminals:
                await terminals[terminal].interrupt()
            log = tmp_path / f"terminal-{terminal}-{number}.log"
            with log.open("wb") as out:
                process = await asyncio.create_subprocess_exec(
                    "bash", "-c", script, cwd=checkout, env=env, stdout=out, stderr=out, start_new_session=True
                )
            terminals[terminal] = Terminal(terminal, process, log)
            await started(terminals[terminal], script, ports, transcript)
    finally:
        for running in terminals.values():
            await running.interrupt()
        if shell.returncode is None:
            shell.stdin.close()
            await asyncio.wait_for(shell.wait(), timeout=30)


async def started(terminal: Terminal, script: str, ports: dict[int, int], transcript: list[str]) -> None:
    """Wait until the block serves: chatterd's /readyz in terminal 1 (the server's), else every port it names."""
    bind = re.search(r"CHATTERD_BIND=[\w.]+:(\d+)", script)
    server = int(bind[1]) if bind else ports[8000]
    scheme = "https" if "TLS_CERT_FILE=" in script else "http"
    named = [port for port in ports.values() if re.search(rf"(?<!\d){port}(?!\d)", script)]

    async def serving() -> bool:
        if terminal.process.returncode is not None:
            transcript.append(terminal.log.read_text(errors="replace"))
            raise AssertionError("a server block exited:\n" + "\n".join(transcript))
        if terminal.number == SERVER:
            return await ready(f"{scheme}://127.0.0.1:{server}/readyz")
        return all([await accepts(port) for port in named])

    await wait_for(serving, timeout=120, what=f"the block to serve:\n{script}")


async def accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def ready(url: str) -> bool:
    try:
        # The self-signed certificate of the TLS block is checked by the block's own curl.
        async with aiohttp.ClientSession() as session, session.get(url, ssl=False) as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False
