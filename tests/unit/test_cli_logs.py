"""The CLI's log formatters: one sanitised line, a traceback only when debugging."""

from __future__ import annotations

import json
import logging
import sys
import time

import pytest

from worker.cli.logs import (
    BURST,
    JsonLineFormatter,
    OneLineFormatter,
    StderrHandler,
    setup_logging,
)


def _record(message: str, *args: object, failing: bool = False) -> logging.LogRecord:
    exc_info = None
    if failing:
        try:
            raise ValueError("bad header \x1b[2J\nsecond line of the error")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("leadmail.test", logging.WARNING, __file__, 1, message, args, exc_info)


def test_a_hostile_message_id_is_escaped_in_the_line() -> None:
    line = OneLineFormatter("%(levelname)s %(message)s").format(
        _record("created %s [%s]", "<a\x1b]0;pwned\x07@x>", "evil\r\nfake line\x9b")
    )
    assert line == "WARNING created <a\\x1b]0;pwned\\x07@x> [evil\\r\\nfake line\\x9b]"


def test_an_exception_is_one_line_without_debug() -> None:
    line = OneLineFormatter("%(message)s").format(_record("intake failed", failing=True))
    assert line == "intake failed (ValueError: bad header \\x1b[2J)"
    assert "Traceback" not in line and "\n" not in line


def test_the_traceback_shows_with_tracebacks_on_sanitised() -> None:
    text = OneLineFormatter("%(message)s", tracebacks=True).format(
        _record("intake failed", failing=True)
    )
    assert text.startswith("intake failed\nTraceback (most recent call last):")
    assert "ValueError: bad header \\x1b[2J" in text
    assert "\x1b" not in text


def test_json_lines_carry_the_error_not_the_traceback() -> None:
    entry = json.loads(JsonLineFormatter().format(_record("failed %s", "\x1b[2J", failing=True)))
    assert entry["message"] == "failed \x1b[2J"  # exact, and escaped in the JSON text
    assert entry["error"] == "ValueError: bad header \x1b[2J"
    assert "exception" not in entry
    debug = json.loads(JsonLineFormatter(tracebacks=True).format(_record("failed", failing=True)))
    assert debug["exception"].startswith("Traceback")


def test_setup_logging_covers_every_logger_and_replaces_itself(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    try:
        setup_logging("info")
        setup_logging("info")  # a second call replaces, never doubles, the handler
        ours = [h for h in root.handlers if h.get_name() == "leadmail"]
        assert len(ours) == 1
        try:
            raise OSError("disk \x1b[31mfull")
        except OSError:
            logging.getLogger("somebody.else").error("write failed", exc_info=True)
        err = capsys.readouterr().err
        assert err.strip().endswith("write failed (OSError: disk \\x1b[31mfull)")
        assert "Traceback" not in err
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(level)


class _CountingStream:
    """A stderr that counts its writes."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_a_burst_is_written_together_in_order_and_never_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = _CountingStream()
    monkeypatch.setattr(sys, "stderr", stream)
    handler = StderrHandler()
    handler.setFormatter(OneLineFormatter("%(message)s"))
    log = logging.getLogger("leadmail.test.burst")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        for n in range(600):
            log.info("message %d", n, extra={BURST: True})
        # Full holds go out HOLD_LINES at a time; the rest waits.
        assert len(stream.writes) == 600 // StderrHandler.HOLD_LINES
        log.warning("a warning")  # any other line writes what is held first, then itself
        text = "".join(stream.writes)
        assert text.splitlines() == [f"message {n}" for n in range(600)] + ["a warning"]
        log.info("late", extra={BURST: True})
        handler.flush()  # as logging.shutdown does at exit
        assert stream.writes[-1] == "late\n"
    finally:
        log.removeHandler(handler)


def test_a_held_line_is_written_within_the_hold_time(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _CountingStream()
    monkeypatch.setattr(sys, "stderr", stream)
    handler = StderrHandler()
    handler.setFormatter(OneLineFormatter("%(message)s"))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "alone", (), None)
    record.__dict__[BURST] = True
    handler.handle(record)
    assert stream.writes == []
    deadline = time.monotonic() + 30  # the timer's HOLD_SECONDS, with room for a slow machine
    while not stream.writes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.writes == ["alone\n"]
