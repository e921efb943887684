"""Logging: one JSON object per line in production, readable lines in development."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
}


_base_factory = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.request_id = request_id_var.get()
    return record


def _record_with_trace_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    from opentelemetry import trace

    record = _record_with_request_id(*args, **kwargs)
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        record.trace_id = format(context.trace_id, "032x")
        record.span_id = format(context.span_id, "016x")
    return record


def include_trace_ids() -> None:
    """Log lines written inside a span carry its ``trace_id`` and ``span_id`` from now on
    (turned on with tracing: ``resources/tracing.py``)."""
    logging.setLogRecordFactory(_record_with_trace_id)


logging.setLogRecordFactory(_record_with_request_id)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and key != "request_id" and not key.startswith("_")
    }


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_LINE_BREAKS = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r"})


def one_line(value: object) -> str:
    """``value`` as text with line breaks (and backslashes) escaped: whatever a client
    typed, it cannot start a line of its own that looks like another log entry."""
    return str(value).translate(_LINE_BREAKS)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` for a person reading a terminal.

    The message and the values are escaped (``one_line``); a traceback follows on lines
    of its own."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 -- logging's name
        record.message = one_line(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        request_id = getattr(record, "request_id", None)
        if request_id:
            extras["request_id"] = request_id
        if extras:
            line += " " + " ".join(f"{key}={one_line(value)}" for key, value in extras.items())
        return line


_HANDLER_NAME = "fastapi_server"


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Route the root logger (and uvicorn's) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    # Replace our own handler (configure_logging may run again); keep anyone else's.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        switched_off = not logger.handlers and not logger.propagate  # uvicorn --no-access-log
        logger.handlers[:] = []
        logger.propagate = not switched_off
