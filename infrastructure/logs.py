"""Structured logs: one line per record, each naming the component that wrote it.

``configure(LogFormat.JSON)`` writes JSON lines (``time``, ``level``, ``component``,
``logger``, ``message``, any ``extra`` fields, and ``error``/``traceback`` for an
exception); ``LogFormat.TEXT`` writes ``<time> <LEVEL> <component>: <message> key=value``.
Either way a record is exactly one line: newlines inside a message or a traceback are
escaped.

The component is the one the current thread (or asyncio task) runs under
(:func:`component`, set by the supervisor for each component it runs), else the
process's own (``configure(component=...)``, e.g. ``tradewatch run relay``), else
``tradewatch``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum
from typing import IO, Any

DEFAULT_COMPONENT = "tradewatch"
_current: ContextVar[str | None] = ContextVar("tradewatch_component", default=None)
_process = {"component": DEFAULT_COMPONENT, "format": "text"}
_write_lock = threading.Lock()
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "component"}
_TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+ [A-Z]+ \S+: ")


class LogFormat(StrEnum):
    """How log records are written: ``text`` for people, ``json`` for machines."""

    TEXT = "text"
    JSON = "json"


@contextmanager
def component(name: str) -> Iterator[None]:
    """Records logged inside (this thread, and the asyncio tasks and ``to_thread`` calls it
    starts) name ``name`` as their component."""
    token = _current.set(name)
    try:
        yield
    finally:
        _current.reset(token)


def current_component() -> str:
    """The component records logged here would name."""
    return _current.get() or _process["component"]


class _ComponentFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "component", None):
            record.component = current_component()
        return True


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _stamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    fields = record.__dict__.items()
    return {k: v for k, v in fields if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _stamp(record),
            "level": record.levelname.lower(),
            "component": record.__dict__.get("component") or current_component(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_extras(record))
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["error"] = f"{type(error).__name__}: {error}"
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <component>: <message> key=value …`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        name = record.__dict__.get("component") or current_component()
        text = f"{_stamp(record)} {record.levelname} {name}: {record.getMessage()}"
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        if extras:
            text += f" {extras}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" | {self.formatException(record.exc_info)}"
        return _one_line(text)


class _LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes whole lines under one lock shared with :func:`write_line`."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be formatted must not kill its writer
            self.handleError(record)
            return
        write_line(line, self.stream)


def write_line(line: str, stream: IO[str] | None = None) -> None:
    """Write one already-formatted line (a child process's record, passed through)."""
    out = stream or _handler_stream()
    with _write_lock:
        out.write(line.rstrip("\n") + "\n")
        out.flush()


def _handler_stream() -> IO[str]:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _LineHandler):
            return handler.stream  # type: ignore[no-any-return]
    return sys.stderr


def configured_format() -> LogFormat:
    """The format :func:`configure` last set (text before it is called)."""
    return LogFormat(_process["format"])


def is_record(line: str, log_format: LogFormat) -> bool:
    """Whether ``line`` is already a record in ``log_format`` (naming its component)."""
    if log_format is LogFormat.TEXT:
        return _TEXT_LINE.match(line) is not None
    try:
        parsed = json.loads(line)
    except ValueError:
        return False
    return isinstance(parsed, dict) and bool(parsed.get("component"))


def configure(
    log_format: LogFormat | str = LogFormat.TEXT,
    *,
    level: int | str = logging.INFO,
    component: str | None = None,
    stream: IO[str] | None = None,
) -> None:
    """Send every record to ``stream`` (stderr) as one line in ``log_format``.

    tradewatch's own loggers (``tradewatch.*``) log at ``level``; other libraries' at
    WARNING and above. Calling it again replaces the previous set-up.
    """
    fmt = LogFormat(log_format)
    _process["format"] = fmt.value
    if component is not None:
        _process["component"] = component
    handler = _LineHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else TextFormatter())
    handler.addFilter(_ComponentFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _LineHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("tradewatch").setLevel(level)
