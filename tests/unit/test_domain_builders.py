"""Builders shared by the rules-engine tests (no tests here): entities, events, a runner."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any, Iterable

from badges.config.entities import ConfigSnapshot, Organization, Template
from badges.domain.engine import MANUAL_AWARD, MANUAL_REVOKE, Decision, apply_event
from badges.domain.events import Learner, LearnerEvent
from badges.domain.index import compile_config
from badges.domain.model import CompiledConfig
from badges.schemas.catalog import load_catalog

CATALOG = load_catalog()
ORG = "0b8a3f0e-0000-4000-8000-000000000001"
PASSING = "org.openedx.learning.course.passing.status.updated.v1"
CCX_PASSING = "org.openedx.learning.ccx.course.passing.status.updated.v1"
CERT_CREATED = "org.openedx.learning.certificate.created.v1"

DEMO = "course-v1:edX+DemoX+Demo_Course"
OTHER = "course-v1:edX+DemoX+OTHER_Course"
THIRD = "course-v1:edX+DemoX+Third_Course"
FOURTH = "course-v1:edX+DemoX+Fourth_Course"
CCX1 = "ccx-v1:edX+DemoX+Demo_Course+ccx@1"
CCX2 = "ccx-v1:edX+DemoX+Demo_Course+ccx@2"
CCX3 = "ccx-v1:edX+DemoX+Demo_Course+ccx@3"
OTHER_CCX = "ccx-v1:edX+DemoX+OTHER_Course+ccx@1"

_template_seq = itertools.count(1)


def tpl_uuid(n: int | None = None) -> str:
    n = next(_template_seq) if n is None else n
    return f"7d4f6a52-0000-4000-8000-{n:012x}"


def rule(key_path: str, operator: str, value: str) -> dict[str, str]:
    return {"key_path": key_path, "operator": operator, "value": value}


def passing_rule(value: str = "true") -> dict[str, str]:
    return rule("is_passing", "=", value)


def course_rule(course_key: str, operator: str = "=") -> dict[str, str]:
    return rule("course.course_key", operator, course_key)


def req(rid: str, event_type: str = PASSING, *rules: dict[str, str], group: str | None = None,
        description: str = "") -> dict[str, Any]:
    return {"id": rid, "event_type": event_type, "group": group, "rules": list(rules),
            "description": description}


def pen(pid: str, targets: list[str], event_type: str = PASSING, *rules: dict[str, str]
        ) -> dict[str, Any]:
    return {"id": pid, "event_type": event_type, "requirements": targets, "rules": list(rules)}


def badge_req(rid: str, target: str, group: str | None = None) -> dict[str, Any]:
    """A badge-of-badges requirement (SPEC §8): fulfilled while the learner holds ``target``."""
    return {"id": rid, "badge": target, "group": group}


def window(requirement: dict[str, Any], not_before: int | None = None,
           not_after: int | None = None) -> dict[str, Any]:
    """``requirement`` with a window on ce_time, in the seconds of ``t`` of the event builders."""
    out = dict(requirement)
    if not_before is not None:
        out["not_before"] = _iso(BASE_US + not_before * 1_000_000)
    if not_after is not None:
        out["not_after"] = _iso(BASE_US + not_after * 1_000_000)
    return out


def template(requirements: list[dict[str, Any]], penalties: list[dict[str, Any]] | None = None,
             *, uuid: str | None = None, active: bool = True, credly_state: str = "active",
             name: str = "A badge", **rules: Any) -> Template:
    """``rules``: the SPEC §8 template keys (groups={"A": {"min": 2}}, complete_within="P1D",
    expires_after="PT10S")."""
    return Template(
        uuid=uuid or tpl_uuid(), organization=ORG, name=name, description="desc",
        image_url="https://example.test/badge.png", credly_state=credly_state, is_active=active,
        requirements=requirements, penalties=penalties or [], **rules,  # type: ignore[arg-type]  # pydantic builds the entities from dicts
    )


def organization() -> Organization:
    return Organization(uuid=ORG, name="Acme", api_key_env="CREDLY_TOKEN_ACME")


def compile_templates(*templates: Template) -> CompiledConfig:
    return compile_config(ConfigSnapshot.from_entities([organization(), *templates]), CATALOG)


# --- events ------------------------------------------------------------------------------------

_event_seq = itertools.count(1)
BASE_US = 1_700_000_000_000_000


def _iso(time_us: int) -> str:
    return datetime.fromtimestamp(time_us / 1e6, tz=timezone.utc).isoformat()


def _user(learner: int, username: str | None = None, email: str | None = None,
          name: str | None = None) -> dict[str, Any]:
    return {
        "id": learner,
        "is_active": True,
        "pii": {
            "username": username or f"learner{learner}",
            "email": email or f"learner{learner}@example.test",
            "name": name or f"Learner {learner}",
        },
    }


def make_event(event_type: str, payload: dict[str, Any], learner: int, t: int,
               event_id: str | None = None) -> LearnerEvent:
    pii = payload["user"]["pii"]
    time_us = BASE_US + t * 1_000_000
    return LearnerEvent(
        event_type=event_type,
        event_id=event_id or f"00000000-0000-4000-8000-{next(_event_seq):012d}",
        time=_iso(time_us),
        time_us=time_us,
        source="openedx/lms/web",
        learner=Learner(learner, pii["username"], pii["email"], pii["name"]),
        payload=payload,
        origin=f"test/0/{t}",
    )


def passing(learner: int, course_key: str, is_passing: bool = True, t: int = 0,
            event_id: str | None = None, **identity: str) -> LearnerEvent:
    payload = {
        "user": _user(learner, **identity),
        "course": {"course_key": course_key, "display_name": "A course", "start": None,
                   "end": None},
        "is_passing": is_passing,
    }
    return make_event(PASSING, payload, learner, t, event_id)


def ccx_passing(learner: int, ccx_key: str, master_key: str, is_passing: bool = True, t: int = 0,
                event_id: str | None = None) -> LearnerEvent:
    payload = {
        "user": _user(learner),
        "course": {"ccx_course_key": ccx_key, "master_course_key": master_key,
                   "display_name": "A CCX", "coach_email": "coach@example.test",
                   "start": None, "end": None, "max_students_allowed": 200},
        "is_passing": is_passing,
    }
    return make_event(CCX_PASSING, payload, learner, t, event_id)


def certificate_created(learner: int, course_key: str, t: int = 0) -> LearnerEvent:
    payload = {
        "user": _user(learner),
        "course": {"course_key": course_key, "display_name": "A course", "start": None,
                   "end": None},
        "mode": "verified", "grade": "0.9", "current_status": "downloadable",
        "download_url": "", "name": "", "previous_status": None,
    }
    return make_event(CERT_CREATED, payload, learner, t)


def manual(learner: int, template_uuid: str, action: str = "award", reason: str = "", t: int = 0,
           event_id: str | None = None) -> LearnerEvent:
    """An operator's command as the CLI and admin API publish it (no identity, no bus)."""
    time_us = BASE_US + t * 1_000_000
    return LearnerEvent(
        event_type=MANUAL_AWARD if action == "award" else MANUAL_REVOKE,
        event_id=event_id or f"00000000-0000-4000-9000-{next(_event_seq):012d}",
        time=_iso(time_us), time_us=time_us, source="badges/cli", learner=Learner(learner),
        payload={"template": template_uuid, "reason": reason}, origin="manual",
    )


# --- running -----------------------------------------------------------------------------------


class Run:
    """Feeds events one by one, keeping each learner's state and every decision."""

    def __init__(self, config: CompiledConfig) -> None:
        self.config = config
        self.states: dict[int, Any] = {}
        self.decisions: list[Decision] = []

    def feed(self, *events: LearnerEvent) -> list[Decision]:
        out: list[Decision] = []
        for event in events:
            outcome = apply_event(self.states.get(event.learner.id), self.config, event)
            if outcome.state is not None:
                self.states[event.learner.id] = outcome.state
            out.extend(outcome.decisions)
        self.decisions.extend(out)
        return out

    def awards(self) -> list[tuple[int, str]]:
        return [(d.learner.id, d.template) for d in self.decisions
                if d.action == "award" and not d.replayed]

    def revokes(self) -> list[tuple[int, str]]:
        return [(d.learner.id, d.template) for d in self.decisions
                if d.action == "revoke" and not d.replayed]

    def fulfilled(self, learner: int, template_uuid: str) -> set[str]:
        state = self.states.get(learner)
        if state is None or template_uuid not in state["templates"]:
            return set()
        return set(state["templates"][template_uuid]["fulfilled"])


def run(config: CompiledConfig, events: Iterable[LearnerEvent]) -> Run:
    r = Run(config)
    r.feed(*events)
    return r
