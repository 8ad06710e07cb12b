"""The access log: the same line and fields as aiohttp's own access logger gives for the project's format, written in
batches that still go out on their own, on flush and at close."""

from __future__ import annotations

import io
import logging

from aiohttp import web, web_log
from aiohttp.test_utils import make_mocked_request

from core.access_log import FLUSH_SIZE, AccessLogger, Answered, BufferedStreamHandler
from core.observability import (
    ACCESS_LOG_FORMAT,
    REQUEST_ID_HEADER,
    AccessLogRedactor,
    JsonFormatter,
    RequestIdFilter,
)
from tests.support.common import wait_for


class Captured(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def logged(access_logger_class: type, request: web.Request, response: web.StreamResponse) -> logging.LogRecord:
    logger = logging.getLogger("test.access")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    captured = Captured()
    logger.addHandler(captured)
    try:
        access_logger_class(logger, ACCESS_LOG_FORMAT).log(request, response, 0.0123)
    finally:
        logger.removeHandler(captured)
    (record,) = captured.records
    return record


def a_request() -> tuple[web.Request, web.StreamResponse]:
    request = make_mocked_request(
        "GET", "/getchatts/?limit=5&token=abc", headers={"User-Agent": 'curl/8 "quoted"'}, client_max_size=1024
    )
    response = web.Response(text="[]", status=200)
    response.headers[REQUEST_ID_HEADER] = "rid-7"
    return request, response


def test_the_line_and_fields_are_aiohttps_for_the_same_format():
    request, response = a_request()
    ours = logged(AccessLogger, request, response)
    theirs = logged(web_log.AccessLogger, request, response)
    assert ours.getMessage() == theirs.getMessage()
    fields = [
        "remote_address",
        "request_start_time",
        "first_request_line",
        "response_status",
        "response_size",
        "request_time_frac",
        "request_header",
        "response_header",
    ]
    assert {name: getattr(ours, name) for name in fields} == {name: getattr(theirs, name) for name in fields}
    formatter = JsonFormatter()
    mine, aiohttps = (formatter.format(record) for record in (ours, theirs))
    assert mine.split(",", 1)[1] == aiohttps.split(",", 1)[1]  # all but the time, which is each record's own
    assert ours.levelno == logging.INFO and ours.name == theirs.name and ours.process == theirs.process


def test_another_format_is_left_to_aiohttp():
    request, response = a_request()
    logger = logging.getLogger("test.access.other")
    captured = Captured()
    logger.addHandler(captured)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        AccessLogger(logger, "%s %r").log(request, response, 0.5)
    finally:
        logger.removeHandler(captured)
    assert [record.getMessage() for record in captured.records] == ["200 GET /getchatts/?limit=5&token=abc HTTP/1.1"]


def test_a_plain_line_goes_straight_to_the_buffer_redacted_as_the_filters_would():
    """As gunicorn.conf.py configures the access log by default: the redactor on the logger, the request-id filter
    on a BufferedStreamHandler writing the message alone. The line must be the one a record through them gives."""
    request = make_mocked_request(
        "GET",
        "/getchatts/?limit=5&token=abc",
        headers={"User-Agent": "GET /x?jwt=from-the-agent HTTP/1.1"},
        client_max_size=1024,
    )
    response = web.Response(text="[]", status=200)
    response.headers[REQUEST_ID_HEADER] = "rid-8"
    lines = {}
    for name, handler_class in [("fast", BufferedStreamHandler), ("record", logging.StreamHandler)]:
        stream = io.StringIO()
        handler = handler_class(stream)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(RequestIdFilter())
        logger = logging.getLogger(f"test.access.{name}")
        logger.handlers, logger.filters, logger.propagate = [handler], [AccessLogRedactor()], False
        logger.setLevel(logging.INFO)
        AccessLogger(logger, ACCESS_LOG_FORMAT).log(request, response, 0.25)
        handler.flush()
        lines[name] = stream.getvalue()
    assert lines["fast"] == lines["record"]
    assert "token=REDACTED" in lines["fast"] and "jwt=REDACTED" in lines["fast"]
    assert "abc" not in lines["fast"] and "from-the-agent" not in lines["fast"]


def make_handler(stream: io.StringIO) -> BufferedStreamHandler:
    handler = BufferedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("test.buffered", logging.INFO, "", 0, message, None, None)


async def test_buffered_lines_go_out_by_themselves():
    stream = io.StringIO()
    handler = make_handler(stream)
    try:
        handler.handle(record("first line"))

        async def written() -> bool:
            return stream.getvalue() == "first line\n"

        await wait_for(written, timeout=5, what="the buffered line to be written by the handler's thread")
    finally:
        handler.close()


async def test_flush_close_and_a_full_buffer_write_everything_in_order():
    stream = io.StringIO()
    handler = make_handler(stream)
    handler.handle(record("waits"))
    assert stream.getvalue() == "", "in an event loop a line waits for the others"
    lines = ["waits", *(f"line {i} " + "x" * 100 for i in range(FLUSH_SIZE // 100 + 10))]
    for line in lines[1:]:
        handler.handle(record(line))
    assert stream.getvalue(), "a full buffer is written at once"
    assert stream.getvalue() != "".join(line + "\n" for line in lines), "and the lines after it wait"
    handler.flush()
    assert stream.getvalue() == "".join(line + "\n" for line in lines)
    handler.handle(record("the last"))
    handler.close()
    assert stream.getvalue().endswith("the last\n")


async def test_answered_requests_are_written_in_order_with_the_lines_of_records():
    """An answered request's line is made when its batch is written, in its place among the others, exactly the line
    made at once, and once for every handler that writes it."""
    request, response = a_request()
    answered = Answered(request, response, 0.0123)
    first, second = io.StringIO(), io.StringIO()
    handlers = [make_handler(first), make_handler(second)]
    for handler in handlers:
        handler.handle(record("before"))
        handler.write_answered(answered)
        handler.handle(record("after"))
    assert first.getvalue() == "", "in an event loop the lines wait for the batch"
    for handler in handlers:
        handler.close()
    line = answered.line()
    assert line.startswith("- [") and '"GET /getchatts/?limit=5&token=REDACTED HTTP/1.1" 200 ' in line
    assert line.endswith(' "curl/8 "quoted"" rid=rid-7')
    assert first.getvalue() == second.getvalue() == f"before\n{line}\nafter\n"
