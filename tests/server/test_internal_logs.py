"""The log capture behind /internal/logs: a bounded ring, listeners, stream capture."""

from __future__ import annotations

import io
import logging

from opencomfy.logs import CaptureHandler, LogCapture, _StreamTee


def test_ring_keeps_the_newest_entries_only():
    capture = LogCapture(capacity=3)
    for i in range(10):
        capture.record(f"line {i}\n", timestamp=1000.0 + i)
    entries = capture.entries()
    assert [e["m"] for e in entries] == ["line 7\n", "line 8\n", "line 9\n"]
    assert [e["t"] for e in entries] == [1007.0, 1008.0, 1009.0]


def test_text_is_time_dash_message():
    capture = LogCapture()
    capture.record("hello\n", timestamp=0.0)
    text = capture.text()
    assert text.endswith(" - hello\n")
    assert text.split(" - ")[0].startswith("19")  # an ISO date


def test_listeners_get_each_entry_until_removed():
    capture = LogCapture()
    got: list[str] = []
    remove = capture.add_listener(lambda entry: got.append(entry["m"]))
    capture.record("a\n")
    remove()
    capture.record("b\n")
    assert got == ["a\n"]


def test_a_listener_that_logs_or_fails_breaks_nothing():
    capture = LogCapture()
    logger = logging.getLogger("test.logs.recursion")
    logger.propagate = False
    handler = CaptureHandler(capture)
    logger.addHandler(handler)
    calls: list[str] = []

    def noisy(entry):
        calls.append(entry["m"])
        logger.warning("listener saw %s", entry["m"].strip())  # would recurse forever
        raise RuntimeError("and then fails")

    capture.add_listener(noisy)
    try:
        logger.warning("first")
    finally:
        logger.removeHandler(handler)
    assert calls == ["first\n"]
    assert [e["m"] for e in capture.entries()] == ["first\n", "listener saw first\n"]


def test_handler_records_formatted_lines_with_the_record_time():
    capture = LogCapture()
    handler = CaptureHandler(capture)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %d", (42,), None)
    handler.emit(record)
    [entry] = capture.entries()
    assert entry == {"t": record.created, "m": "value 42\n"}


def test_stream_tee_passes_writes_through_and_records_them():
    capture = LogCapture()
    real = io.StringIO()
    tee = _StreamTee(real, capture)
    print("from a custom node", file=tee)
    assert real.getvalue() == "from a custom node\n"
    assert "".join(e["m"] for e in capture.entries()) == "from a custom node\n"
    assert tee.getvalue() == real.getvalue()  # other attributes reach the real stream


def test_stream_tee_records_whole_lines():
    """print() writes the text and the newline separately: the log holds one entry per line."""
    capture = LogCapture()
    tee = _StreamTee(io.StringIO(), capture)
    print("To see the GUI go to: http://127.0.0.1:8188", file=tee)
    tee.write("partial ")
    assert [e["m"] for e in capture.entries()] == ["To see the GUI go to: http://127.0.0.1:8188\n"]
    tee.write("line\nand more\n")
    assert [e["m"] for e in capture.entries()][1:] == ["partial line\nand more\n"]


def test_stream_tee_reports_the_real_streams_encoding():
    """Packs read sys.stdout.encoding (io.TextIOBase would answer None for the tee itself)."""
    real = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    tee = _StreamTee(real, LogCapture())
    assert tee.encoding == "latin-1"
    assert tee.errors == real.errors
    assert _StreamTee(io.StringIO(), LogCapture()).encoding == "utf-8"  # StringIO has none
