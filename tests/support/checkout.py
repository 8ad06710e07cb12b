"""A fresh checkout of the project in a folder of its own, for running `make` and the README as a newcomer would.

Its var/ is its own (nothing touches the developer's), and its .venv is the virtualenv running the tests, already
up to date: the requirement files are dated before the venv's stamps, so `make` installs nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.common import PROJECT_DIR
from tests.support.pgctl import EmbeddedControl

REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt")
# What a clone never has, for a project folder that is not a git checkout.
NOT_IN_A_CLONE = {".git", ".venv", "var", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "artifacts"}


def project_files() -> list[str]:
    """The files a clone would have: tracked ones and new ones not ignored (so work in progress counts)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],  # noqa: S607 -- git from PATH
            cwd=PROJECT_DIR,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return [
            str(path.relative_to(PROJECT_DIR))
            for path in PROJECT_DIR.rglob("*")
            if path.is_file() and not NOT_IN_A_CLONE & set(path.relative_to(PROJECT_DIR).parts)
        ]
    return [name for name in listed.split("\0") if name and (PROJECT_DIR / name).is_file()]


@contextmanager
def fresh_checkout(prefix: str = "chatterd-checkout-") -> Iterator[Path]:
    """A copy of the project with the test's venv as .venv; whatever Postgres its var/ started is stopped after.

    Outside pytest's temporary tree, which other pytest runs reset to mode 0700, locking the embedded Postgres'
    own system user out.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        for name in project_files():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_DIR / name, root / name)
        (root / ".venv").symlink_to(sys.prefix)
        stamps = [Path(sys.prefix) / stamp for stamp in (".runtime", ".dev")]
        oldest = min((p.stat().st_mtime for p in stamps if p.exists()), default=0.0)
        for name in REQUIREMENT_FILES:
            os.utime(root / name, (oldest - 60, oldest - 60))
        yield root
    finally:
        control = EmbeddedControl(root / "var")
        if control.running:
            control.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def checkout_env(**extra: str) -> dict[str, str]:
    """This process's environment without the settings a newcomer would not have set, plus `extra`."""
    dropped = {"DATABASE_URL", "SECRET_KEY", "CHATTERD_VAR_DIR", "CHATTERD_BIND", "PORT", "PROMETHEUS_MULTIPROC_DIR"}
    env = {key: value for key, value in os.environ.items() if key not in dropped and not key.startswith("MAKE")}
    env.update(extra)
    return env


def interrupt(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """Ctrl-C a process started in a session of its own (the whole group, as a terminal does); its exit status."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode
