"""Builders for badges configuration files in tests (the YAML of SPEC §6)."""

from __future__ import annotations

from typing import Any, Iterable

import yaml

from tests.support.openedx import COURSE_PASSING
from tests.support.stack import ORG, TOKEN_ENV

Doc = dict[str, Any]


def rule(key_path: str, value: str, operator: str = "=") -> dict[str, str]:
    return {"key_path": key_path, "operator": operator, "value": value}


def passing(course: str, key_path: str = "course.course_key") -> list[dict[str, str]]:
    return [rule("is_passing", "true"), rule(key_path, course)]


def failing(course: str, key_path: str = "course.course_key") -> list[dict[str, str]]:
    return [rule("is_passing", "false"), rule(key_path, course)]


def requirement(id: str, rules: Iterable[dict[str, str]] = (), *, event_type: str = COURSE_PASSING,
                group: str | None = None, description: str | None = None) -> Doc:
    doc: Doc = {"id": id, "event_type": event_type, "rules": list(rules)}
    if group is not None:
        doc["group"] = group
    if description is not None:
        doc["description"] = description
    return doc


def penalty(id: str, targets: Iterable[str], rules: Iterable[dict[str, str]] = (), *,
            event_type: str = COURSE_PASSING) -> Doc:
    return {"id": id, "event_type": event_type, "requirements": list(targets), "rules": list(rules)}


def template(uuid: str, requirements: Iterable[Doc], penalties: Iterable[Doc] = (), *, active: bool = True) -> Doc:
    return {"uuid": uuid, "active": active, "requirements": list(requirements), "penalties": list(penalties)}


def config_yaml(*templates: Doc) -> str:
    """A whole configuration file: the test organization (token in its variable) and templates."""
    return yaml.safe_dump({
        "organizations": [{"uuid": ORG, "api_key_env": TOKEN_ENV}],
        "templates": list(templates),
    }, sort_keys=False)


def demo_template(uuid: str, course: str, *, with_penalty: bool = True, active: bool = True) -> Doc:
    """Pass the course; failing it afterwards resets it (the SPEC §6 example)."""
    penalties = [penalty("demo-failed", ["demo"], failing(course))] if with_penalty else []
    return template(uuid, [requirement("demo", passing(course), description="Pass the Demo course")],
                    penalties, active=active)
