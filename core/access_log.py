"""The access log, cheaply: one line per request, written in batches.

aiohttp's own access logger interprets its format string for every request, formats the time with strftime, and goes
through `Logger.info`, which walks the stack to find its caller; the stream handler then writes and flushes each line
with a system call of its own. Together that cost more than the rest of a small request. Here the line of
ACCESS_LOG_FORMAT is built directly, the record is made from a template and handed to the logger's filters and
handlers as before (the redactor and the request-id filter still see it), and `BufferedStreamHandler` writes the
lines a few at a time, from a thread of its own, at most FLUSH_INTERVAL after they were logged.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import threading
import time
from typing import Any

from aiohttp import web_log
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from core.observability import ACCESS_LOG_FORMAT, REQUEST_ID_HEADER

FLUSH_INTERVAL = 0.2  # seconds a logged line may wait in the buffer
FLUSH_SIZE = 64 * 1024  # characters that make the buffer go out at once


class AccessLogger(AbstractAccessLogger):
    """Writes ACCESS_LOG_FORMAT's line with the same fields aiohttp's AccessLogger gives (so the JSON lines keep their
    keys); any other format goes to aiohttp's AccessLogger."""

    __slots__ = ("_fallback",)

    def __init__(self, logger: logging.Logger, log_format: str = ACCESS_LOG_FORMAT) -> None:
        super().__init__(logger, log_format)
        self._fallback = None if log_format == ACCESS_LOG_FORMAT else web_log.AccessLogger(logger, log_format)

    @property
    def enabled(self) -> bool:
        """Whether the line would be written at all."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Log one answered request that took `time` seconds."""
        if self._fallback is not None:
            self._fallback.log(request, response, time)
            return
        try:
            self.logger.handle(_record(self.logger.name, request, response, time))
        except Exception:
            self.logger.exception("Error in logging")


def _record(name: str, request: BaseRequest, response: StreamResponse, elapsed: float) -> logging.LogRecord:
    remote = request.remote or "-"
    version = request.version
    first_line = f"{request.method} {request.path_qs} HTTP/{version.major}.{version.minor}"
    user_agent = request.headers.get("User-Agent", "-")
    request_id = response.headers.get(REQUEST_ID_HEADER, "-")
    started = _start_time(elapsed)
    duration = f"{elapsed:06f}"
    status, size = response.status, response.body_length
    record = _new_record(name)
    record.msg = f'{remote} {started} "{first_line}" {status} {size} {duration} "{user_agent}" rid={request_id}'
    # The fields aiohttp's AccessLogger gives for this format, by the same names.
    record.remote_address = remote
    record.request_start_time = started
    record.first_request_line = first_line
    record.response_status = status
    record.response_size = size
    record.request_time_frac = duration
    record.request_header = {"User-Agent": user_agent}
    record.response_header = {REQUEST_ID_HEADER: request_id}
    return record


# A record of this process made once; each line's record is a copy with its own time, message and fields, which
# spares LogRecord's constructor (it looks up the thread, the process and the source file every time).
_template: dict[str, Any] = {}


def _forget_template() -> None:
    _template.clear()


os.register_at_fork(after_in_child=_forget_template)


def _new_record(name: str) -> logging.LogRecord:
    if not _template:
        _template.update(vars(logging.LogRecord(name, logging.INFO, "", 0, "", None, None)))
    record: logging.LogRecord = logging.LogRecord.__new__(logging.LogRecord)
    fields = vars(record)
    fields.update(_template)
    now = time.time()
    fields["name"] = name
    fields["created"] = now
    fields["msecs"] = (now - int(now)) * 1000
    fields["relativeCreated"] = _template["relativeCreated"] + (now - _template["created"]) * 1000
    return record


# "[01/Dec/2026:21:13:05 +0000]" for each whole second, as aiohttp's %t writes the request's start in local time.
_start_times: dict[int, str] = {}


def _start_time(elapsed: float) -> str:
    second = int(time.time() - elapsed)
    text = _start_times.get(second)
    if text is None:
        if len(_start_times) > 4:
            _start_times.clear()
        moment = datetime.datetime.fromtimestamp(second).astimezone()
        text = _start_times[second] = moment.strftime("[%d/%b/%Y:%H:%M:%S %z]")
    return text


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes its lines in batches: when FLUSH_SIZE characters are waiting, else from a thread
    of its own every FLUSH_INTERVAL, and at flush() and close() (logging does both at exit)."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._buffer: list[str] = []
        self._size = 0
        self._flusher: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget_flusher)  # a thread does not survive a fork

    def _forget_flusher(self) -> None:
        self._flusher = None

    def emit(self, record: logging.LogRecord) -> None:
        """Format the record and put its line in the buffer."""
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._buffer.append(line)  # the handler's lock is held (Handler.handle)
        self._size += len(line)
        if self._size >= FLUSH_SIZE:
            self._write()
        elif self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_periodically, name="access-log", daemon=True)
            self._flusher.start()

    def _write(self) -> None:
        lines, self._buffer, self._size = self._buffer, [], 0
        if lines:
            self.stream.write("".join(lines))
            self.stream.flush()

    def flush(self) -> None:
        """Write whatever is waiting."""
        self.acquire()
        try:
            if self.stream is not None and hasattr(self, "_buffer"):
                self._write()
        finally:
            self.release()

    def _flush_periodically(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            with contextlib.suppress(OSError, ValueError):  # a closed or broken stream: lines are lost as they would be
                self.flush()
