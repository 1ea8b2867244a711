"""A request aiohttp cannot parse (a NUL byte in a header, a malformed request line) is a 400
and leaves at most one line in the server log: no traceback per hostile request, so a client
cannot flood the log. A real handler failure keeps its traceback (see the unit test)."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from aiohttp.http_exceptions import BadHttpMessage

from opencomfy.server import BadRequestLogFilter
from tests.harness import Server

BAD_REQUESTS = [
    b"GET /api/system_stats HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",   # NUL in a header
    b"GET /api/system_stats HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",      # space in a name
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",                                  # NUL in the target
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(base_dir=tmp_path_factory.mktemp("bad-requests")).start()
    yield srv
    srv.stop()


def _raw(server, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_unparsable_requests_are_400_without_a_traceback(server):
    before = server.log()
    for data in BAD_REQUESTS:
        answer = _raw(server, data)
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.") and status_line.split()[1] == b"400", (data, answer[:200])
    time.sleep(0.3)  # the log line is written after the answer
    log = server.log()
    new = log[len(before):] if log.startswith(before) else log
    assert "Traceback" not in log and "BadHttpMessage" not in log, log
    # One line at most per bad request.
    assert sum("bad HTTP request" in line for line in new.splitlines()) <= len(BAD_REQUESTS), new
    assert server.get("/api/system_stats").status == 200


def test_filter_shortens_parse_errors_only():
    filt = BadRequestLogFilter()
    try:
        raise BadHttpMessage("Invalid header value char: 'a\\x00b'")
    except BadHttpMessage as exc:
        parse_error = exc
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
                               ("127.0.0.1",), (BadHttpMessage, parse_error, None))
    assert filt.filter(record)
    assert record.exc_info is None and record.levelno == logging.INFO
    text = record.getMessage()
    assert "\n" not in text and "\x00" not in text and "127.0.0.1" in text, text
    # Any other failure is left as it was, traceback included.
    other = RuntimeError("boom")
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
                               ("127.0.0.1",), (RuntimeError, other, None))
    assert filt.filter(record) and record.exc_info is not None and record.levelno == logging.ERROR
