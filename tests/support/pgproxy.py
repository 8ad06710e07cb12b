"""A TCP relay in front of Postgres that tests can cut, black-hole and restore to break the database on purpose."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path


class PgProxy:
    """Listens on 127.0.0.1 and relays to Postgres' unix socket (or host:port)."""

    def __init__(self, *, unix_path: str | None = None, host: str | None = None, port: int | None = None) -> None:
        self._unix_path = unix_path
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.black_hole = False

    @classmethod
    def for_dsn_params(cls, params: dict[str, str]) -> PgProxy:
        """A relay to the server the libpq parameters name."""
        host = params.get("host", "")
        port = int(params.get("port", "5432"))
        if host.startswith("/"):
            return cls(unix_path=str(Path(host) / f".s.PGSQL.{port}"))
        return cls(host=host or "127.0.0.1", port=port)

    async def start(self) -> None:
        """Accept connections (again), on the same port as before if it had one."""
        self.black_hole = False
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop_accepting(self) -> None:
        """Refuse new connections but keep relaying the open ones, as a server out of connection slots would."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones, as if Postgres had gone away."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop everything."""
        await self.cut()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._writers.add(client_writer)
        try:
            if self.black_hole:
                # Accept and never answer: what a hung or partitioned database looks like.
                await client_reader.read()
                return
            if self._unix_path:
                reader, writer = await asyncio.open_unix_connection(self._unix_path)
            else:
                reader, writer = await asyncio.open_connection(*self._target)
            self._writers.add(writer)
            pumps = [
                asyncio.create_task(self._pump(client_reader, writer)),
                asyncio.create_task(self._pump(reader, client_writer)),
            ]
            for pump in pumps:
                self._tasks.add(pump)
                pump.add_done_callback(self._tasks.discard)
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            writer.transport.abort()
            self._writers.discard(writer)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            client_writer.transport.abort()
            self._writers.discard(client_writer)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
