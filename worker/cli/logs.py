"""The CLI's logging: one sanitised line per record, tracebacks only when debugging.

Log messages carry Message-IDs, subjects and reasons from strangers' mail, and exceptions
whose text quotes raw input; a record is therefore formatted, then passed through the one
sanitiser. A record with ``exc_info`` keeps to one line, ``message (ExcType: first line)``,
unless tracebacks were asked for (``--debug`` or level debug). The formatters are installed
on the root logger, so they cover every logger: ours, SQLAlchemy's, imapclient's.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

from worker.cli.sanitize import json_text, printable, printable_block

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# mail-parser logs every content type it does not render; we handle them.
_QUIET = ("imapclient", "mailparser", "sqlalchemy", "alembic")
_MAX_EXCEPTION_TEXT = 500


def exception_line(exc_info: Any) -> str:
    """``ExcType: first line of its message``: what went wrong, without the traceback."""
    exc_type, exc, _ = exc_info
    name = getattr(exc_type, "__name__", "Exception")
    lines = str(exc).strip().splitlines() if exc is not None else []
    first = lines[0][:_MAX_EXCEPTION_TEXT] if lines else ""
    return f"{name}: {first}" if first else name


class OneLineFormatter(logging.Formatter):
    """Text lines: the formatted record sanitised; the traceback only with ``tracebacks``."""

    def __init__(
        self, fmt: str = TEXT_FORMAT, datefmt: str = DATE_FORMAT, *, tracebacks: bool = False
    ) -> None:
        super().__init__(fmt, datefmt)
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = printable(self.formatMessage(record))
        if record.exc_info and record.exc_info[0] is not None:
            if not self.tracebacks:
                return f"{line} ({printable(exception_line(record.exc_info))})"
            line += "\n" + printable_block(self.formatException(record.exc_info))
        if record.stack_info and self.tracebacks:
            line += "\n" + printable_block(self.formatStack(record.stack_info))
        return line


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record (``[logging] format = "json"``), exact and terminal-safe."""

    def __init__(self, *, tracebacks: bool = False) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = exception_line(record.exc_info)
            if self.tracebacks:
                entry["exception"] = self.formatException(record.exc_info)
        return json_text(entry)


BURST = "leadmail_burst"
"""``extra={BURST: True}`` marks a record as one of a burst (a line per message of a backlog):
it may wait up to ``StderrHandler.HOLD_SECONDS`` to be written with the next ones."""


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the moment (a test runner swaps it), and keeps
    quiet when the reader of stderr went away.

    Lines of a burst are written together, up to ``HOLD_LINES`` at a time and never more than
    ``HOLD_SECONDS`` late: one write per message of a 5,000-message poll cost ~0.2 ms each, as
    every write hands the GIL to the parse pool's threads. Any other record first writes the
    held lines, so the order on stderr is the order of the records.
    """

    HOLD_SECONDS = 0.5
    HOLD_LINES = 256

    def __init__(self) -> None:
        super().__init__()
        self._held: list[str] = []
        self._timer: threading.Timer | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        if getattr(record, BURST, False):
            self._held.append(text)
            if len(self._held) >= self.HOLD_LINES:
                self._write(record)
            elif self._timer is None:
                self._timer = threading.Timer(self.HOLD_SECONDS, self.flush)
                self._timer.daemon = True
                self._timer.start()
            return
        self._held.append(text)
        self._write(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write(None)

    def _write(self, record: logging.LogRecord | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        text, self._held = "".join(self._held), []
        if not text:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            if record is not None:
                self.handleError(record)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            return
        super().handleError(record)


def setup_logging(
    level: int | str, *, debug: bool = False, json_lines: bool = False, fmt: str = TEXT_FORMAT
) -> None:
    """Install leadmail's handler on the root logger, replacing one installed before.

    Handlers others installed (a test runner's) stay. Tracebacks are shown with ``debug``
    or when the level is DEBUG.
    """
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        numeric = logging.WARNING
    if debug:
        numeric = logging.DEBUG
    tracebacks = numeric <= logging.DEBUG
    handler = StderrHandler()
    handler.set_name("leadmail")
    handler.setFormatter(
        JsonLineFormatter(tracebacks=tracebacks)
        if json_lines
        else OneLineFormatter(fmt, tracebacks=tracebacks)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == "leadmail":
            old.flush()
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("mailparser").setLevel(logging.DEBUG if debug else logging.ERROR)
