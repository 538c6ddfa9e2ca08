"""The compiled configuration the hot path reads: immutable, pre-parsed, free of pydantic.

``compile_config`` (in ``index.py``) builds it once per configuration change; every event then
only walks tuples and dicts. Rules carry their key path already split and their expected value
already normalized (a bool for boolean fields), so matching does no parsing per event.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from badges.domain.findings import Finding
from badges.domain.rule_language import OPERATOR_SIGNS, Op

if TYPE_CHECKING:
    from badges.domain.index import RuleIndex


@dataclass(frozen=True, slots=True)
class CompiledRule:
    key_path: str  # as configured, e.g. "course.course_key"
    path: tuple[str, ...]  # the same, split on dots
    op: Op
    # The configured value; a bool when the field is boolean (docs/CONTRACT.md "Requirements, data rules and groups").
    expected: str | bool
    boolean: bool = False

    def describe(self) -> str:
        value = ("true" if self.expected else "false") if self.boolean else self.expected
        return f"{self.key_path} {OPERATOR_SIGNS[self.op]} {value}"


@dataclass(frozen=True, slots=True)
class CompiledRequirement:
    id: str
    template: str  # template uuid
    event_type: str  # "" for a badge requirement
    description: str
    group: str  # effective group key: the configured group, or the requirement's own
    group_name: str | None  # the configured group (None: the requirement is its own group)
    rules: tuple[CompiledRule, ...]
    badge: str | None = None  # badge of badges: the template whose badge fulfills it
    not_before_us: int | None = None  # window on the event's ce_time (inclusive bounds)
    not_after_us: int | None = None

    def in_window(self, time_us: int) -> bool:
        """An event outside the window does not match the requirement (docs/CONTRACT.md "Rules beyond the reference")."""
        if self.not_before_us is not None and time_us < self.not_before_us:
            return False
        return self.not_after_us is None or time_us <= self.not_after_us


@dataclass(frozen=True, slots=True)
class CompiledPenalty:
    id: str
    template: str
    event_type: str
    description: str
    targets: tuple[str, ...]  # requirement ids of the same template
    rules: tuple[CompiledRule, ...]


@dataclass(frozen=True, slots=True)
class CompiledGroup:
    key: str
    name: str | None  # None for a requirement that is its own group
    requirement_ids: tuple[str, ...]
    min: int = 1  # N of M: fulfilled when at least `min` of its requirements are


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    uuid: str
    organization: str
    name: str
    description: str
    image_url: str
    active: bool
    credly_state: str
    requirements: tuple[CompiledRequirement, ...]
    penalties: tuple[CompiledPenalty, ...]
    groups: tuple[CompiledGroup, ...]
    # docs/CONTRACT.md "Rules beyond the reference" (None: not configured; the template then means what it meant before them)
    complete_within_us: int | None = None
    expires_after_us: int | None = None
    complete_within: str | None = None  # as configured, for display
    expires_after: str | None = None
    badge_requirements: tuple[CompiledRequirement, ...] = ()  # requirements fulfilled by another badge

    def is_complete(self, fulfilled: Container[str]) -> bool:
        """AND across groups, at least ``min`` within each (``fulfilled`` supports ``in`` on
        requirement ids)."""
        if not self.groups:
            return False
        for group in self.groups:
            need = group.min
            for rid in group.requirement_ids:
                if rid in fulfilled:
                    need -= 1
                    if not need:
                        break
            else:
                return False
        return True


@dataclass(frozen=True, slots=True)
class CompiledConfig:
    templates: dict[str, CompiledTemplate]  # every template, active or not (for display)
    index: "RuleIndex"  # requirements and penalties of the active templates only
    organizations: dict[str, str] = field(default_factory=dict)  # uuid -> name
    # What compilation found (stale key paths after a catalog change, ...): what cannot mean
    # what it says never matches, and the web view shows why.
    findings: tuple[Finding, ...] = ()
    # Badge of badges: template -> the active templates with a badge requirement on it.
    dependents: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Template -> its depth in the badge-of-badges graph (absent: 0); see index._ranks.
    ranks: dict[str, int] = field(default_factory=dict)

    @property
    def problems(self) -> tuple[str, ...]:
        """The errors among the findings, one line each (the web view's list)."""
        return tuple(str(f) for f in self.findings if f.is_error)

    @property
    def event_types(self) -> frozenset[str]:
        """Event types some active requirement or penalty uses (ingestion drops the rest)."""
        return self.index.event_types

    @property
    def active_templates(self) -> list[CompiledTemplate]:
        return [t for t in self.templates.values() if t.active]
