"""The access log, cheaply: one line per request, written in batches.

aiohttp's own access logger interprets its format string for every request, formats the time with strftime, and goes
through `Logger.info`, which walks the stack to find its caller; the stream handler then writes and flushes each line
with a system call of its own. Together that cost more than the rest of a small request. Here the line of
ACCESS_LOG_FORMAT is built directly, and `BufferedStreamHandler` writes the lines of one event-loop iteration at once.
When the access logger writes plain lines only to such handlers (as gunicorn.conf.py configures it without
LOG_FORMAT=json), the line goes straight into their buffers, redacted as AccessLogRedactor would; otherwise a record is
made and handed to the logger's filters and handlers as usual.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import time
from typing import Any

from aiohttp import hdrs, web_log
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from core.observability import (
    ACCESS_LOG_FORMAT,
    REQUEST_ID_HEADER,
    AccessLogRedactor,
    RequestIdFilter,
    redact_access_line,
)

logger = logging.getLogger(__name__)

FLUSH_SIZE = 64 * 1024  # characters that make the buffer go out at once
LINE_SIZE = 160  # characters an access line is counted as before it is made


class AccessLogger(AbstractAccessLogger):
    """Writes ACCESS_LOG_FORMAT's line with the same fields aiohttp's AccessLogger gives (so the JSON lines keep their
    keys); any other format goes to aiohttp's AccessLogger."""

    __slots__ = ("_fallback", "_plain")

    def __init__(self, logger: logging.Logger, log_format: str = ACCESS_LOG_FORMAT) -> None:
        super().__init__(logger, log_format)
        self._fallback = None if log_format == ACCESS_LOG_FORMAT else web_log.AccessLogger(logger, log_format)
        self._plain = _plain_handlers(logger)  # one look per connection: logging is configured before serving

    @property
    def enabled(self) -> bool:
        """Whether the line would be written at all."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Log one answered request that took `time` seconds."""
        try:
            if self._fallback is not None:
                self._fallback.log(request, response, time)
            elif self._plain:
                answered = Answered(request, response, time)
                for handler in self._plain:
                    handler.write_answered(answered)
            else:
                self.logger.handle(_record(self.logger.name, request, response, time))
        except Exception:
            self.logger.exception("Error in logging")


def _plain_handlers(logger: logging.Logger) -> tuple[BufferedStreamHandler, ...]:
    """The logger's handlers when a line may go straight into them: all BufferedStreamHandlers writing the message
    alone, no filter but the redactor on the logger and the request-id filter on the handlers, nothing propagated."""
    handlers = logger.handlers
    if logger.propagate or not handlers or not logger.isEnabledFor(logging.INFO):
        return ()
    if not all(isinstance(f, AccessLogRedactor) for f in logger.filters):
        return ()
    for handler in handlers:
        if not isinstance(handler, BufferedStreamHandler) or handler.level > logging.INFO:
            return ()
        formatter = handler.formatter
        if type(formatter) is not logging.Formatter or formatter._fmt != "%(message)s":
            return ()
        if not all(isinstance(f, RequestIdFilter) for f in handler.filters):
            return ()
    return tuple(handler for handler in handlers if isinstance(handler, BufferedStreamHandler))


class Answered:
    """An answered request whose access line is made when the handler writes its batch: the lines of a batch made one
    after another cost a worker a fraction of what each made between two requests did (measured: docs/performance.md).
    Nothing the line reads changes once the answer is sent."""

    __slots__ = ("_line", "elapsed", "request", "response", "started")

    def __init__(self, request: BaseRequest, response: StreamResponse, elapsed: float) -> None:
        self.request = request
        self.response = response
        self.elapsed = elapsed
        self.started = time.time() - elapsed
        self._line: str | None = None

    def line(self) -> str:
        """ACCESS_LOG_FORMAT's line, redacted (made once, for however many handlers write it)."""
        if self._line is None:
            try:
                self._line = _line(self.request, self.response, self.elapsed, self.started)
            except Exception:
                logger.exception("Error in logging")
                self._line = "-"
        return self._line


def _line(request: BaseRequest, response: StreamResponse, elapsed: float, started: float) -> str:
    """ACCESS_LOG_FORMAT's line, redacted as AccessLogRedactor redacts it."""
    version = request.version
    first_line = f"{request.method} {request.path_qs} HTTP/{version.major}.{version.minor}"
    user_agent = request.headers.get(hdrs.USER_AGENT, "-")
    line = (
        f'{request.remote or "-"} {_start_time(started)} "{first_line}" {response.status} {response.body_length}'
        f' {elapsed:06f} "{user_agent}" rid={response.headers.get(REQUEST_ID_HEADER, "-")}'
    )
    return redact_access_line(line, first_line) if "?" in line else line


def _record(name: str, request: BaseRequest, response: StreamResponse, elapsed: float) -> logging.LogRecord:
    """A record of ACCESS_LOG_FORMAT's line with the fields aiohttp's AccessLogger gives, by the same names."""
    remote = request.remote or "-"
    version = request.version
    first_line = f"{request.method} {request.path_qs} HTTP/{version.major}.{version.minor}"
    user_agent = request.headers.get(hdrs.USER_AGENT, "-")
    request_id = response.headers.get(REQUEST_ID_HEADER, "-")
    started = _start_time(time.time() - elapsed)
    duration = f"{elapsed:06f}"
    status, size = response.status, response.body_length
    record = _new_record(name)
    record.msg = f'{remote} {started} "{first_line}" {status} {size} {duration} "{user_agent}" rid={request_id}'
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


def _start_time(started: float) -> str:
    second = int(started)
    text = _start_times.get(second)
    if text is None:
        if len(_start_times) > 4:
            _start_times.clear()
        moment = datetime.datetime.fromtimestamp(second).astimezone()
        text = _start_times[second] = moment.strftime("[%d/%b/%Y:%H:%M:%S %z]")
    return text


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes its lines in batches: the lines logged in one iteration of the running event loop
    go out together at the start of the next (so a busy loop answering many requests at once writes once for all of
    them, and an idle one as soon as it has answered), at once when FLUSH_SIZE characters wait, and at flush() and
    close() (logging does both at exit). Outside an event loop it writes each line at once, as StreamHandler does."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._buffer: list[str | Answered] = []
        self._size = 0
        self._pending: asyncio.Handle | None = None  # the flush the event loop will run
        os.register_at_fork(after_in_child=self._forget_pending)  # the parent's loop is not the child's

    def _forget_pending(self) -> None:
        self._pending = None

    def emit(self, record: logging.LogRecord) -> None:
        """Format the record and put its line in the buffer (the handler's lock is held)."""
        try:
            text = self.format(record) + self.terminator
            self._add(text, len(text))
        except Exception:
            self.handleError(record)

    def write_line(self, line: str) -> None:
        """Put a line already formatted as this handler would format it into the buffer."""
        self.acquire()
        try:
            text = line + self.terminator
            self._add(text, len(text))
        finally:
            self.release()

    def write_answered(self, answered: Answered) -> None:
        """Put an answered request's access line into the buffer, to be made when the buffer is written."""
        self.acquire()
        try:
            self._add(answered, LINE_SIZE)
        finally:
            self.release()

    def _add(self, item: str | Answered, size: int) -> None:
        self._buffer.append(item)
        self._size += size
        if self._size >= FLUSH_SIZE:
            self._write()
        elif self._pending is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._write()
                return
            self._pending = loop.call_soon(self.flush)

    def _write(self) -> None:
        lines, self._buffer, self._size = self._buffer, [], 0
        if lines and self.stream is not None:
            end = self.terminator
            self.stream.write("".join([item if isinstance(item, str) else item.line() + end for item in lines]))
            self.stream.flush()

    def close(self) -> None:
        """Write whatever is waiting, then close as StreamHandler does."""
        self.flush()
        super().close()

    def flush(self) -> None:
        """Write whatever is waiting."""
        self.acquire()
        try:
            if self._pending is not None:
                self._pending.cancel()
                self._pending = None
            self._write()
        finally:
            self.release()
