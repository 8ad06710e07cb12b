"""Request ids, JSON-lines logging and a redacted access log; nothing here imports prometheus_client."""

from __future__ import annotations

import contextvars
import datetime
import logging
import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from aiohttp.http_exceptions import HttpProcessingError
from multidict import istr

REQUEST_ID_HEADER = istr("X-Request-ID")  # an istr: header look-ups need no case folding
# What aiohttp's access logger writes: the request line has the query string, so the redactor rewrites it.
ACCESS_LOG_FORMAT = '%a %t "%r" %s %b %Tf "%{User-Agent}i" rid=%{X-Request-ID}o'
# Query parameters whose values are safe to keep in logs; every other value is replaced.
SAFE_QUERY_KEYS = frozenset({"limit", "after"})
REDACTED = "REDACTED"

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A request line inside a longer message. The query runs to " HTTP/x.y", else to the next blank: a raw `"` (which
# aiohttp lets through and logs as it came) does not end it, so it cannot hide the values after it.
_REQUEST_LINE = re.compile(r"(?P<head>\b[A-Z]+ [^ ?]*)\?(?P<query>.*?)(?P<rest> HTTP/[0-9.]+|(?=\s)|$)")
# Query keys kept as they are; any other key (a bare `?<token>` is a key) is replaced too.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,32}")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def sane_request_id(value: str | None) -> str | None:
    """The client's request id when it is 1..64 characters of [A-Za-z0-9._-], else None."""
    if value is not None and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return None


class _RandomIds:
    """Unguessable ids of 128 bits from the system's generator, read 4 KiB at a time rather than once per request, and
    turned into hex digits 4 KiB at a time too."""

    SIZE = 32  # hex digits: 16 bytes
    BATCH = 256

    def __init__(self) -> None:
        self._pool = ""
        self._offset = 0
        # A forked process (a gunicorn worker) must not hand out what its parent had read.
        os.register_at_fork(after_in_child=self.forget)

    def forget(self) -> None:
        """Drop what was read; the next id reads afresh."""
        self._pool, self._offset = "", 0

    def next(self) -> str:
        """A fresh id, as 32 hex digits."""
        start = self._offset
        if start >= len(self._pool):
            self._pool, start = os.urandom(self.SIZE // 2 * self.BATCH).hex(), 0
        self._offset = end = start + self.SIZE
        return self._pool[start:end]


new_request_id = _RandomIds().next


class RequestIdFilter(logging.Filter):
    """Put the current request's id (or "-") on every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops it."""
        if getattr(record, "request_id", None) is None:
            # The access line is written after the handler returned: its id comes from the response header.
            headers = getattr(record, "response_header", None)
            from_response = headers.get(REQUEST_ID_HEADER) if isinstance(headers, dict) else None
            record.request_id = request_id_var.get() or sane_request_id(from_response) or "-"
        return True


def redact_query(query: str) -> str:
    """The query string with every value but the known-harmless ones (limit, after) replaced, and odd keys too."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode(
        [(k if _PLAIN_KEY.fullmatch(k) else REDACTED, v if k in SAFE_QUERY_KEYS else REDACTED) for k, v in pairs],
        safe="",
    )


def redact_first_line(line: str) -> str:
    """A request line exactly as aiohttp logs it ("METHOD target HTTP/x.y"), its query redacted, whatever it holds."""
    method, _, rest = line.partition(" ")
    target, _, version = rest.rpartition(" ")
    if not version.startswith("HTTP/"):
        target, version = rest, ""
    path, question, query = target.partition("?")
    if not question:
        return line
    return f"{method} {path}?{redact_query(query)}" + (f" {version}" if version else "")


def redact_request_line(line: str) -> str:
    """A request line ("GET /path?q HTTP/1.1", possibly inside a longer message) with its query redacted."""
    return _REQUEST_LINE.sub(lambda m: f"{m['head']}?{redact_query(m['query'])}{m['rest']}", line)


class AccessLogRedactor(logging.Filter):
    """Keep tokens in query strings out of the access log (it never contains headers but the ones its format names)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message and its request-line field; never drops it."""
        line = getattr(record, "first_request_line", None)
        if not (isinstance(line, str) and "?" in line):
            line = None
        if isinstance(record.msg, str) and "?" in record.msg:
            message = record.msg % record.args if record.args else record.msg
            record.msg, record.args = redact_access_line(message, line), None
        if line is not None:
            record.first_request_line = redact_first_line(line)
        return True


def redact_access_line(message: str, first_request_line: str | None) -> str:
    """An access line with the query of its request line (given exactly, when known) and of anything else in it
    that looks like a request line redacted."""
    if first_request_line is not None and "?" in first_request_line:
        # aiohttp hands over the exact request line: replace it as a whole, whatever characters it holds.
        message = message.replace(first_request_line, redact_first_line(first_request_line))
    return redact_request_line(message)


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs each request it cannot parse at ERROR with the raw bytes: make that one DEBUG line without them.

    Anyone can send garbage, so at ERROR it would flood the log and bury real errors, and the bytes (which may be
    someone's mistyped credentials, or crafted to forge log lines) would be written as they came.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite a parser refusal; keep every other record (a handler's own error stays an ERROR)."""
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "-"
        record.msg, record.args = "malformed HTTP request from %s refused (%s)", (remote, type(exc).__name__)
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        record.exc_info, record.exc_text = None, None
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


# LogRecord attributes that are not "extra" fields; everything else a caller passed in `extra` is emitted.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# aiohttp's access-log extras, renamed for the JSON line.
_ACCESS_FIELDS = {
    "remote_address": "remote",
    "first_request_line": "request",
    "response_status": "status",
    "response_size": "size",
    "request_time_frac": "duration",
}
_DROPPED_EXTRAS = frozenset({"request_header", "response_header", "request_start_time", "request_time"})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, pid, request_id, message, and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise the record; access records get their fields (status, duration, …) as keys."""
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "request_id": getattr(record, "request_id", None) or request_id_var.get() or "-",
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STANDARD_ATTRS or key in _DROPPED_EXTRAS or key == "request_id":
                continue
            if key == "request_time_frac" and isinstance(value, str):
                value = float(value)  # aiohttp hands it over as text
            line[_ACCESS_FIELDS.get(key, key)] = value
        headers = getattr(record, "request_header", None)
        if isinstance(headers, dict) and "User-Agent" in headers:
            line["user_agent"] = headers["User-Agent"]
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


PLAIN_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s [%(request_id)s]: %(message)s"
ACCESS_LOGGERS = ("aiohttp.access", "gunicorn.access")
# Where aiohttp reports requests it could not parse: its own logger, or gunicorn's error log under gunicorn's worker.
SERVER_LOGGERS = ("aiohttp.server", "gunicorn.error")


def configure_logconfig(config: dict[str, Any], *, json_lines: bool) -> dict[str, Any]:
    """Add the request-id filter to every handler, the redactor to the access loggers, and JSON formatters if asked."""
    config.setdefault("filters", {})
    config["filters"]["request_id"] = {"()": RequestIdFilter}
    config["filters"]["redact_access"] = {"()": AccessLogRedactor}
    config["filters"]["malformed_requests"] = {"()": MalformedRequestFilter}
    for handler in config.get("handlers", {}).values():
        handler["filters"] = [*handler.get("filters", []), "request_id"]
    for name in ACCESS_LOGGERS:
        logger = config.setdefault("loggers", {}).setdefault(name, {})
        logger["filters"] = [*logger.get("filters", []), "redact_access"]
    for name in SERVER_LOGGERS:
        logger = config.setdefault("loggers", {}).setdefault(name, {})
        logger["filters"] = [*logger.get("filters", []), "malformed_requests"]
    formatters = config.setdefault("formatters", {})
    if json_lines:
        for name in list(formatters) or ["plain"]:
            formatters[name] = {"()": JsonFormatter}
    elif "plain" in formatters:
        formatters["plain"] = {"format": PLAIN_FORMAT}
    return config


def install_access_redactor(logger_names: Iterable[str] = ACCESS_LOGGERS) -> None:
    """Put the redactor on the access loggers however logging was configured (adev, tests); idempotent."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, AccessLogRedactor) for f in logger.filters):
            logger.addFilter(AccessLogRedactor())


def install_malformed_request_filter(logger_names: Iterable[str] = SERVER_LOGGERS) -> None:
    """Put MalformedRequestFilter on the loggers aiohttp reports parse errors to, however logging was configured."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
            logger.addFilter(MalformedRequestFilter())
