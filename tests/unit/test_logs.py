"""JSON log lines carry the learner, template and event they are about."""

from __future__ import annotations

import json
import logging

import pytest

from badges.logs import ContextFilter, JsonFormatter, log_context


def _line(record: logging.LogRecord) -> dict:
    ContextFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def _record(msg: str = "issued", **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("badges.sink", logging.INFO, __file__, 1, msg, (), None)
    record.__dict__.update(extra)
    return record


def test_context_fields_reach_the_json_line() -> None:
    with log_context(learner_id=42, template="t-1", event_id="e-9"):
        line = _line(_record())
    assert line["learner_id"] == 42 and line["template"] == "t-1" and line["event_id"] == "e-9"
    assert line["level"] == "info" and line["logger"] == "badges.sink" and line["message"] == "issued"
    assert "learner_id" not in _line(_record())  # the context ends with the block


def test_extra_wins_over_the_context_and_exceptions_are_kept() -> None:
    with log_context(learner_id=1):
        line = _line(_record(learner_id=2))
    assert line["learner_id"] == 2
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in _line(record)["exception"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_worker_hands_its_format_to_faust(fmt: str) -> None:
    from badges.config.settings import load_settings
    from badges.workers.app import faust_settings

    config = faust_settings(load_settings(log_format=fmt))["logging_config"]
    formatter = config["formatters"]["badges"]
    assert (formatter.get("()") is JsonFormatter) == (fmt == "json")
