"""Structured logging: ``key=value`` text or JSON lines, with a request/trace id.

The trace id lives in a ``contextvars.ContextVar`` so it follows a request through
``await`` chains and tasks; the RPC layer copies it into every call it sends and restores
it on the receiving side, so one id can be followed across roles.
Usage: ``log = get_logger(__name__); log.info("shard written", chunk=cid, bytes=n)``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = [
    "StructuredLogger",
    "configure_logging",
    "current_trace_id",
    "get_logger",
    "new_trace_id",
    "trace_context",
]

_trace_id: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="")
_FIELDS = "_fields"


def new_trace_id() -> str:
    """A fresh 16-hex-digit id (also used as the S3 ``x-amz-request-id``)."""
    return secrets.token_hex(8).upper()


def current_trace_id() -> str:
    return _trace_id.get()


@contextmanager
def trace_context(trace_id: str | None = None) -> Iterator[str]:
    """Run a block under ``trace_id`` (a new one if None)."""
    tid = trace_id or new_trace_id()
    token = _trace_id.set(tid)
    try:
        yield tid
    finally:
        _trace_id.reset(token)


def _fmt_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n\t'):
        return json.dumps(text)
    return text


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={ts}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_fmt_value(record.getMessage())}",
        ]
        tid = getattr(record, "trace_id", "")
        if tid:
            parts.append(f"trace_id={tid}")
        for key, value in getattr(record, _FIELDS, {}).items():
            parts.append(f"{key}={_fmt_value(value)}")
        if record.exc_info:
            parts.append(f"exc={_fmt_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        tid = getattr(record, "trace_id", "")
        if tid:
            doc["trace_id"] = tid
        doc.update({k: v for k, v in getattr(record, _FIELDS, {}).items() if k not in doc})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class _TraceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "trace_id", ""):
            record.trace_id = _trace_id.get()
        return True


class StructuredLogger:
    """A thin wrapper over ``logging.Logger`` taking keyword fields."""

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def _log(self, level: int, msg: str, exc: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, msg, extra={_FIELDS: fields}, exc_info=exc, stacklevel=3)

    def debug(self, msg: str, **fields: Any) -> None:
        self._log(logging.DEBUG, msg, False, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._log(logging.INFO, msg, False, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._log(logging.WARNING, msg, False, fields)

    def error(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, False, fields)

    def exception(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, True, fields)


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(logging.getLogger(name))


def configure_logging(
    fmt: str = "text", level: str = "info", stream: TextIO | None = None
) -> logging.Handler:
    """Install one structured handler on the root logger (replacing earlier ones)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    handler.addFilter(_TraceFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
