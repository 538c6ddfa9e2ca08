"""The data-rule language (SPEC §2): operators, boolean words, and what a rule may say of an
event type.

One definition for every reader of rules: the configuration entities normalise operators and
boolean words with it (``config.entities``), compilation checks rules against the event catalog
with it (``domain.index``), whose findings the configuration file's validator reports at their
YAML paths (``config.file``). Before, each kept its own word lists and its own checks, and they
drifted apart.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["eq", "ne"]
# How an operator may be written -> what it means.
OPERATORS: dict[str, Op] = {"=": "eq", "eq": "eq", "!=": "ne", "ne": "ne"}
# How an operator is shown (exports, the web view, explanations).
OPERATOR_SIGNS: dict[Op, str] = {"eq": "=", "ne": "!="}
TRUE_WORDS = ("true", "True", "yes", "Yes", "+")
FALSE_WORDS = ("false", "False", "no", "No", "-")
BOOLEAN_WORDS_TEXT = " ".join(TRUE_WORDS) + " / " + " ".join(FALSE_WORDS)

# Event types the LMS emits many times per learner (every grade change, every enrollment
# change): without a rule, a requirement or penalty on them reacts to all of them, which
# compilation warns about (docs/CONTRACT.md "Rules beyond the reference", warnings).
FREQUENT_EVENT_TYPES = frozenset({
    "org.openedx.learning.course.passing.status.updated.v1",
    "org.openedx.learning.ccx.course.passing.status.updated.v1",
    "org.openedx.learning.course.enrollment.changed.v1",
})


def parse_operator(value: object) -> Op | None:
    """The meaning of an operator as written; None when it is no operator."""
    return OPERATORS.get(value.strip()) if isinstance(value, str) else None


def parse_boolean_word(value: object) -> bool | None:
    """The SPEC §2 boolean words (and bools); None when ``value`` is not one of them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in TRUE_WORDS:
            return True
        if value in FALSE_WORDS:
            return False
    return None


@dataclass(frozen=True)
class RuleFinding:
    """Why (part of) a requirement or penalty cannot mean what it says, and which of its fields
    is at fault, so that each reader can say where: a YAML path, a template in the web view."""

    field: Literal["event_type", "key_path", "value"]
    message: str


def check_event_type(event_type: str, catalog: Any) -> tuple[Any, RuleFinding | None]:
    """The catalog's spec of an event type that can drive requirements and penalties, or the
    finding that it cannot (unknown, this worker's own output, or no UserData to name a learner)."""
    spec = catalog.get(event_type)
    if spec is None:
        valid = catalog.rule_event_types
        close = difflib.get_close_matches(event_type, valid, n=1, cutoff=0.8)
        hint = f"did you mean {close[0]}?" if close else f"valid: {', '.join(valid)}"
        return None, RuleFinding("event_type", f"unknown event type {event_type!r}; {hint}")
    if not spec.can_drive_requirements:
        why = "it is this worker's own output" if spec.own_output else "it carries no UserData"
        return None, RuleFinding("event_type", f"event type {event_type} cannot drive requirements: {why}")
    return spec, None


def check_rule(key_path: str, value: object, spec: Any) -> RuleFinding | None:
    """Whether a rule's key path exists in the event type's data and, on a boolean field, its
    value is a boolean word."""
    if key_path not in spec.key_paths:
        close = difflib.get_close_matches(key_path, list(spec.key_paths), n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return RuleFinding(
            "key_path",
            f"unknown key path {key_path!r} for {spec.event_type}{hint}; "
            f"valid: {', '.join(sorted(spec.key_paths))}",
        )
    if spec.is_boolean(key_path) and isinstance(value, str) and parse_boolean_word(value) is None:
        return RuleFinding(
            "value",
            f"{key_path!r} is a boolean field: the value must be one of {BOOLEAN_WORDS_TEXT}, "
            f"got {value!r}",
        )
    return None
