"""One log line per event, logfmt or JSON, with secrets kept out.

Fields are passed as keyword arguments (``log.info("poll failed", server="em01",
reason="auth")``). Every value of the line goes through exporter.redact, which replaces every
secret the process has held by ``<redacted>``.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

# Re-exported: the redactor is part of what logging promises.
from exporter.redact import REDACTED as REDACTED
from exporter.redact import redact
from exporter.redact import register_secret as register_secret

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' ="\\\n\t') and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)


class _Formatter(logging.Formatter):
    def __init__(self, style: str) -> None:
        super().__init__()
        self._json = style == "json"

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": "warn" if record.levelno == logging.WARNING else record.levelname.lower(),
            "caller": record.name,
            "msg": record.getMessage(),
        }
        extra: Mapping[str, object] = getattr(record, "fields", {})
        fields.update(extra)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            fields["err"] = f"{type(exc).__name__}: {exc}"
        # Redact each raw value before quoting, so escaping cannot hide a secret's shape.
        clean = {k: _clean(v) for k, v in fields.items()}
        if self._json:
            return json.dumps(clean, ensure_ascii=False)
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in clean.items())


def _clean(value: object) -> object:
    """Numbers and booleans as they are (JSON lines keep their type), anything else redacted."""
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return redact(str(value))


class Logger:
    """A thin structured front to ``logging``: a message plus key/value fields."""

    def __init__(self, name: str, **bound: object) -> None:
        self._logger = logging.getLogger(name)
        self._bound = bound

    def _log(self, level: int, msg: str, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, msg, extra={"fields": {**self._bound, **fields}})

    def debug(self, msg: str, **fields: Any) -> None:
        self._log(logging.DEBUG, msg, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._log(logging.INFO, msg, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._log(logging.WARNING, msg, fields)

    def error(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, fields)


def get_logger(name: str, **bound: object) -> Logger:
    return Logger(f"exporter.{name}" if not name.startswith("exporter") else name, **bound)


def setup(level: str = "info", fmt: str = "logfmt", stream: IO[str] | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # Library chatter (connection pool messages) is noise at info and may name URLs at debug.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
