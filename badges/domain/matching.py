"""Data-rule matching (docs/CONTRACT.md "Requirements, data rules and groups").

- every rule of a requirement/penalty must match; no rules match every event of the type;
- a boolean field compares as a bool with the normalized expected value;
- any other value compares as a string: strings as they are, numbers with ``str()``, a bool
  (a non-boolean field that happens to hold one) as ``true``/``false``;
- a missing or null payload value never equals anything: ``=`` fails and ``!=`` holds.
"""

from __future__ import annotations

from typing import Any, Iterable

from badges.domain.model import CompiledRule


def resolve(payload: Any, path: tuple[str, ...]) -> Any:
    """The payload value at ``path``; None when any step is missing, null or not a record."""
    value = payload
    for step in path:
        if type(value) is not dict:
            return None
        value = value.get(step)
        if value is None:
            return None
    return value


def render(value: Any) -> str:
    """A payload value as the string a rule's expected value is compared with."""
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    return str(value)


def value_equals(rule: CompiledRule, value: Any) -> bool:
    """Whether a resolved (non-None) payload value equals the rule's expected value."""
    if rule.boolean:
        if type(value) is bool:
            return value is rule.expected
        return render(value) == ("true" if rule.expected else "false")
    return (value if type(value) is str else render(value)) == rule.expected


def rule_matches(rule: CompiledRule, payload: Any) -> bool:
    value = resolve(payload, rule.path)
    if value is None:
        return rule.op == "ne"
    equal = value_equals(rule, value)
    return equal if rule.op == "eq" else not equal


def all_match(rules: Iterable[CompiledRule], payload: Any) -> bool:
    for rule in rules:
        if not rule_matches(rule, payload):
            return False
    return True
