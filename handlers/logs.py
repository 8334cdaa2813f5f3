"""Structured JSON logs with the request and connection ids.

Never log message bodies, tokens or email addresses (patient data): log message types, counts
and error codes. `extra=` fields are written as JSON keys; `bind()` sets the ids for one event.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "log_context", default=MappingProxyType({})
)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update(_context.get())
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def bind(**fields: Any) -> None:
    """Ids for every log line of the current event (requestId, connectionId, route)."""
    _context.set({k: v for k, v in fields.items() if v is not None})


class StdoutHandler(logging.Handler):
    """Writes to whatever sys.stdout is at the time (Lambda sends stdout to CloudWatch)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
        except Exception:  # a log line must never break a handler
            self.handleError(record)


def setup(level: int = logging.INFO) -> logging.Logger:
    logger = logging.getLogger("handlers")
    if not any(isinstance(h, StdoutHandler) for h in logger.handlers):
        handler = StdoutHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    return logger
