"""Stopping and starting the embedded Postgres of a var/ folder with the wheel's own pg_ctl, as an operator would."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from db.embedded import DATABASE_NAME, pg_ctl


class EmbeddedControl:
    """The Postgres serving `var_dir/pgdata`: where its socket is, and stop/start that keep it there."""

    def __init__(self, var_dir: Path) -> None:
        self.pgdata = var_dir / "pgdata"
        self._socket_dir = ""

    def _postmaster(self) -> list[str] | None:
        try:
            return (self.pgdata / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None

    @property
    def running(self) -> bool:
        """True while postmaster.pid names a live process."""
        lines = self._postmaster()
        if not lines:
            return False
        try:
            os.kill(int(lines[0]), 0)
        except (ProcessLookupError, ValueError):
            return False
        return True

    @property
    def url(self) -> str:
        """The chatterd database on this server, by its unix socket (the same one the server uses)."""
        lines = self._postmaster()
        if lines:
            self._socket_dir = lines[4].strip()
        assert self._socket_dir, "the server has never been seen running"
        return f"postgresql://postgres@/{DATABASE_NAME}?host={quote(self._socket_dir)}"

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: roll back and disconnect every session). Blocking."""
        self.url  # noqa: B018 -- remember the socket dir for start()
        pg_ctl(self.pgdata, "-w", "-m", mode, "stop")

    def start(self) -> None:
        """Start it again on the same socket, as the wheel starts it. Blocking."""
        assert self._socket_dir, "stop() first"
        pg_ctl(
            self.pgdata,
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self._socket_dir}",
            "-l",
            str(self.pgdata / "log"),
            "start",
        )


@contextmanager
def private_var_dir(prefix: str) -> Iterator[Path]:
    """A var/ folder outside pytest's temporary tree, removed after; its Postgres is stopped if still running.

    pytest resets its tree to mode 0700 whenever another pytest run starts, which locks the embedded Postgres'
    own system user out of a folder inside it.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        control = EmbeddedControl(path)
        if control.running:
            control.stop("immediate")
        shutil.rmtree(path, ignore_errors=True)
