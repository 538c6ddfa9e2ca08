"""Log output: plain text, or one JSON object per line (``BADGES_LOG_FORMAT=json``).

Lines about a learner, a template or an event carry ``learner_id``, ``template`` and
``event_id`` as fields: set for a block of work with ``log_context`` (a context variable, so
each concurrent task keeps its own), or per call with ``extra=``. Log aggregation can then
select every line about one learner or one badge without parsing messages. Nothing here adds a
name, an e-mail or a token to a line.

The worker hands the configuration to Faust (``logging_config``), which installs it instead of
its own; the CLI installs it directly.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.config
import sys
from datetime import datetime, timezone
from typing import Any, Iterator, Literal

LogFormat = Literal["text", "json"]
FIELDS = ("learner_id", "template", "event_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR", "crit": "CRITICAL"}

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("badges_log_context", default={})  # noqa: B039 - never mutated: log_context sets a new dict


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add these fields to every line logged inside the block (by this task)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the fields of ``log_context`` onto each record (``extra=`` ones win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def logging_config(level: str, fmt: LogFormat) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the whole process."""
    formatter: dict[str, Any] = {"()": JsonFormatter} if fmt == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"badges": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                 "formatter": "badges", "filters": ["context"]}},
        "root": {"level": LEVELS.get(level, "INFO"), "handlers": ["default"]},
    }


def setup_logging(level: str = "info", fmt: LogFormat = "text") -> None:
    logging.config.dictConfig(logging_config(level, fmt))
    sys.stderr.flush()
