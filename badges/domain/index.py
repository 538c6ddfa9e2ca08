"""Compiling the configuration and indexing it so that an event never scans every template.

Each requirement and penalty of an active template is filed under its event type and, when it
has one, under one of its equality rules: ``course.course_key = course-v1:...`` files it in a
dict keyed by that value. An event then probes, for its type, each indexed key path once (a
handful: course keys, master course keys, ...) and gets exactly the entries filed under its own
values, plus the type's fallback list (entries with no equality rule: "any course", "any course
except X"). The cost of one event stays flat as templates for other courses are added.

Index choice per entry: an equality rule on a non-boolean field, preferring the most selective
key path (fewest entries per expected value across the type: a course key rather than a
``mode = verified`` that every entry shares), then the path most entries share (fewer paths to
probe per event); failing that an equality rule on a boolean field (still halves the
candidates); failing that the fallback list.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence, Union, cast

from badges.domain.dependencies import find_cycles
from badges.domain.findings import Finding, FindingCode, Place
from badges.domain.matching import all_match, render, resolve
from badges.domain.model import (
    CompiledConfig,
    CompiledGroup,
    CompiledPenalty,
    CompiledRequirement,
    CompiledRule,
    CompiledTemplate,
)
from badges.domain.rule_language import (
    FREQUENT_EVENT_TYPES, check_event_type, check_rule, parse_boolean_word,
)
from badges.domain.timespan import parse_duration, parse_instant

if TYPE_CHECKING:
    from badges.config.entities import ConfigSnapshot, DataRule, Template
    from badges.schemas.catalog import Catalog, EventSpec

Entry = Union[CompiledRequirement, CompiledPenalty]


@dataclass(slots=True)
class _Slot:
    """Entries of one event type filed under the value of one key path."""

    path: tuple[str, ...]
    boolean: bool
    by_value: dict[Any, tuple[Entry, ...]]


@dataclass(slots=True)
class _Bucket:
    """Everything of one kind (requirements or penalties) for one event type."""

    slots: tuple[_Slot, ...]
    fallback: tuple[Entry, ...]

    def candidates(self, payload: Any) -> list[Entry]:
        found = list(self.fallback)
        for slot in self.slots:
            value = resolve(payload, slot.path)
            if value is None:
                continue
            if slot.boolean:
                if type(value) is not bool:
                    text = render(value)
                    value = True if text == "true" else False if text == "false" else None
                    if value is None:
                        continue
                hit = slot.by_value.get(value)
            else:
                hit = slot.by_value.get(value if type(value) is str else render(value))
            if hit:
                found.extend(hit)
        return found


_EMPTY = _Bucket((), ())


class RuleIndex:
    """Requirements and penalties of the active templates, by event type and key value."""

    __slots__ = ("_requirements", "_penalties", "event_types", "size")

    def __init__(self, requirements: Iterable[CompiledRequirement], penalties: Iterable[CompiledPenalty]) -> None:
        reqs = list(requirements)
        pens = list(penalties)
        self._requirements = _build(reqs)
        self._penalties = _build(pens)
        self.event_types = frozenset(self._requirements) | frozenset(self._penalties)
        self.size = len(reqs) + len(pens)

    def candidates(self, event_type: str, payload: Any) -> tuple[list[Entry], list[Entry]]:
        """Entries whose index key fits the event; their rules are not evaluated yet."""
        return (
            self._requirements.get(event_type, _EMPTY).candidates(payload),
            self._penalties.get(event_type, _EMPTY).candidates(payload),
        )

    def match(self, event_type: str, payload: Any) -> tuple[list[CompiledRequirement], list[CompiledPenalty]]:
        """Requirements and penalties whose every rule matches the event."""
        bucket = self._requirements.get(event_type)
        reqs = [r for r in bucket.candidates(payload) if all_match(r.rules, payload)] if bucket else []
        bucket = self._penalties.get(event_type)
        pens = [p for p in bucket.candidates(payload) if all_match(p.rules, payload)] if bucket else []
        return reqs, pens  # type: ignore[return-value]  # a bucket holds one kind of entry

    def stats(self) -> dict[str, Any]:
        """Shape of the index (for the web view and for tests)."""
        out: dict[str, Any] = {}
        for kind, table in (("requirements", self._requirements), ("penalties", self._penalties)):
            for event_type, bucket in table.items():
                entry = out.setdefault(event_type, {})
                entry[kind] = {
                    "fallback": len(bucket.fallback),
                    "keyed": {
                        ".".join(s.path): sum(len(v) for v in s.by_value.values())
                        for s in bucket.slots
                    },
                }
        return out


def _index_rule(
    entry: Entry, path_weight: Counter[tuple[str, ...]], path_values: dict[tuple[str, ...], set[Any]]
) -> CompiledRule | None:
    best: CompiledRule | None = None
    best_rank: tuple[int, float, int, str] | None = None
    for rule in entry.rules:
        if rule.op != "eq":
            continue
        per_value = path_weight[rule.path] / len(path_values[rule.path])
        rank = (0 if rule.boolean else 1, -per_value, path_weight[rule.path], rule.key_path)
        if best_rank is None or rank > best_rank:
            best, best_rank = rule, rank
    return best


def _build(entries: Sequence[Entry]) -> dict[str, _Bucket]:
    by_type: dict[str, list[Entry]] = {}
    for entry in entries:
        by_type.setdefault(entry.event_type, []).append(entry)
    out: dict[str, _Bucket] = {}
    for event_type, group in by_type.items():
        weight: Counter[tuple[str, ...]] = Counter(
            r.path for e in group for r in {r.path: r for r in e.rules if r.op == "eq"}.values()
        )
        values: dict[tuple[str, ...], set[Any]] = {}
        for e in group:
            for r in e.rules:
                if r.op == "eq":
                    values.setdefault(r.path, set()).add(r.expected)
        slots: dict[tuple[tuple[str, ...], bool], dict[Any, list[Entry]]] = {}
        fallback: list[Entry] = []
        for entry in group:
            rule = _index_rule(entry, weight, values)
            if rule is None:
                fallback.append(entry)
                continue
            slots.setdefault((rule.path, rule.boolean), {}).setdefault(rule.expected, []).append(entry)
        out[event_type] = _Bucket(
            slots=tuple(
                _Slot(path, boolean, {k: tuple(v) for k, v in values.items()})
                for (path, boolean), values in slots.items()
            ),
            fallback=tuple(fallback),
        )
    return out


# --- compiling ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Report:
    """Where one template's findings go, so that each check says only what it found."""

    template: str
    findings: list[Finding]

    def add(self, code: FindingCode, subject: str, place: Place, message: str, *, effect: str = "",
            warning: bool = False, related: Place | None = None, ref: str | None = None) -> None:
        self.findings.append(Finding(code, self.template, subject, place, message, effect,
                                     "warning" if warning else "error", related, ref))


def _compile_rule(rule: DataRule, spec: EventSpec | None, report: _Report, subject: str,
                  place: Place) -> CompiledRule:
    """A rule entity (operator already normalised) with its path split and, on a boolean field,
    its expected value as a bool."""
    key_path, value = rule.key_path, rule.value
    boolean = False
    expected: str | bool = value
    if spec is not None:
        finding = check_rule(key_path, value, spec)
        if finding is not None:
            report.add(_RULE_CODES[finding.field], subject, place + (finding.field,), finding.message)
        elif spec.is_boolean(key_path):
            boolean, expected = True, parse_boolean_word(value) is True
    return CompiledRule(key_path=key_path, path=tuple(key_path.split(".")), op=rule.operator,
                        expected=expected, boolean=boolean)


_RULE_CODES: dict[str, FindingCode] = {
    "event_type": "event_type_refused", "key_path": "key_path_unknown", "value": "value_not_boolean",
}


def _event_spec(event_type: str, catalog: Catalog | None, report: _Report, subject: str,
                place: Place) -> EventSpec | None:
    """The spec that rules are checked against; None without a catalog or when the event type
    cannot drive requirements (reported: no event of it ever reaches the rules)."""
    if catalog is None:
        return None
    spec, finding = check_event_type(event_type, catalog)
    if finding is not None:
        report.add("event_type_refused", subject, place + ("event_type",), finding.message)
    return cast("EventSpec | None", spec)


def _rule_less(spec: EventSpec | None, rules: Sequence[DataRule], report: _Report, subject: str,
               place: Place, what: str) -> None:
    """A warning: without a rule, every event of a frequent type matches (``what`` it does)."""
    if spec is not None and not rules and spec.event_type in FREQUENT_EVENT_TYPES:
        report.add("rule_less_frequent", subject, place + ("rules",),
                   f"{subject} has no rules: every {spec.event_type} event {what}", warning=True)


def compile_template(entity: Template, catalog: Catalog | None, findings: list[Finding]) -> CompiledTemplate:
    """One template entity as the engine reads it, checked whole: every problem goes to
    ``findings`` (``None`` as catalog: event types and key paths are not checked). A duplicate
    is checked like the others, then left out."""
    uuid = entity.uuid
    report = _Report(uuid, findings)
    requirements: list[CompiledRequirement] = []
    first_requirement: dict[str, int] = {}
    for j, raw in enumerate(entity.requirements):
        subject, place = f"requirement {raw.id!r}", ("requirements", j)
        duplicate = raw.id in first_requirement
        if duplicate:
            report.add("duplicate_requirement", subject, place + ("id",),
                       f"duplicate requirement id {raw.id!r}", effect="ignored",
                       related=("requirements", first_requirement[raw.id]))
        else:
            first_requirement[raw.id] = j
        badge = raw.badge
        spec = None if badge else _event_spec(raw.event_type, catalog, report, subject, place)
        not_before_us = _timespan(parse_instant, raw.not_before, report, subject, place + ("not_before",))
        not_after_us = _timespan(parse_instant, raw.not_after, report, subject, place + ("not_after",))
        if not_before_us is not None and not_after_us is not None and not_before_us > not_after_us:
            report.add("window_reversed", subject, place + ("not_after",),
                       "not_after is before not_before: no event can match")
        rules = () if badge else tuple(
            _compile_rule(r, spec, report, f"{subject} rule {i}", place + ("rules", i))
            for i, r in enumerate(raw.rules)
        )
        if not badge:
            _rule_less(spec, raw.rules, report, subject, place, "fulfills it")
        if duplicate:
            continue
        requirements.append(
            CompiledRequirement(
                id=raw.id,
                template=uuid,
                event_type="" if badge else raw.event_type,
                description=raw.description,
                group=f"group:{raw.group}" if raw.group else f"requirement:{raw.id}",
                group_name=raw.group or None,
                rules=rules,
                badge=badge or None,
                not_before_us=not_before_us,
                not_after_us=not_after_us,
            )
        )
    badges = {r.id for r in requirements if r.badge}
    valid_targets = ", ".join(first_requirement) or "(none)"
    penalties: list[CompiledPenalty] = []
    first_penalty: dict[str, int] = {}
    for k, pen in enumerate(entity.penalties):
        subject, place = f"penalty {pen.id!r}", ("penalties", k)
        duplicate = pen.id in first_penalty
        if duplicate:
            report.add("duplicate_penalty", subject, place + ("id",), f"duplicate penalty id {pen.id!r}",
                       effect="ignored", related=("penalties", first_penalty[pen.id]))
        else:
            first_penalty[pen.id] = k
        for m, target in enumerate(pen.requirements):
            if target not in first_requirement:
                report.add("penalty_target_unknown", subject, place + ("requirements", m),
                           f"unknown requirement {target!r}; requirements of this template: "
                           f"{valid_targets}", effect="ignored", ref=target)
            elif target in badges:
                # a badge requirement follows its badge: a penalty never resets it
                report.add("penalty_target_badge", subject, place + ("requirements", m),
                           f"requirement {target!r} is a badge requirement: it follows that badge, "
                           "a penalty cannot reset it", effect="ignored", ref=target)
        if not pen.requirements:
            report.add("penalty_without_target", subject, place + ("requirements",),
                       "targets no requirement: a penalty targets at least one requirement of "
                       "its template", effect="never applied")
        spec = _event_spec(pen.event_type, catalog, report, subject, place)
        rules = tuple(
            _compile_rule(r, spec, report, f"{subject} rule {i}", place + ("rules", i))
            for i, r in enumerate(pen.rules)
        )
        _rule_less(spec, pen.rules, report, subject, place, "resets its requirements")
        if duplicate:
            continue
        penalties.append(
            CompiledPenalty(
                id=pen.id,
                template=uuid,
                event_type=pen.event_type,
                description=pen.description,
                targets=tuple(dict.fromkeys(
                    t for t in pen.requirements if t in first_requirement and t not in badges)),
                rules=rules,
            )
        )
    groups: dict[str, list[str]] = {}
    names: dict[str, str | None] = {}
    for req in requirements:
        groups.setdefault(req.group, []).append(req.id)
        names[req.group] = req.group_name
    mins: dict[str, int] = {}
    named = sorted(n for n in names.values() if n is not None)
    for name, settings in entity.groups.items():
        key, n, subject = f"group:{name}", settings.min, f"group {name!r}"
        size = len(groups.get(key, ()))
        if not size:
            report.add("group_without_requirement", subject, ("groups", name),
                       f"no requirement is in group {name!r}; groups: {', '.join(named) or '(none)'}",
                       effect="ignored")
        elif not 1 <= n <= size:
            report.add("group_min_out_of_range", subject, ("groups", name, "min"),
                       f"min must be between 1 and {size} (the requirements of group {name!r}), "
                       f"got {n}", effect="the group cannot complete" if n > size else "taken as 1")
        mins[key] = max(1, n)
    active = entity.is_active
    if active and not requirements:
        report.add("active_without_requirements", "", ("active",),
                   "an active template needs at least one requirement", effect="not processed")
        active = False
    # Credly cannot issue a template it no longer has active: such a template is inactive here
    # even before the webhook that deactivates it is processed.
    active = active and entity.credly_state == "active"
    return CompiledTemplate(
        uuid=uuid,
        organization=entity.organization,
        name=entity.name,
        description=entity.description,
        image_url=entity.image_url,
        active=active,
        credly_state=entity.credly_state,
        requirements=tuple(requirements),
        penalties=tuple(penalties),
        groups=tuple(CompiledGroup(k, names[k], tuple(v), mins.get(k, 1)) for k, v in groups.items()),
        complete_within_us=_timespan(parse_duration, entity.complete_within, report, "",
                                     ("complete_within",)),
        expires_after_us=_timespan(parse_duration, entity.expires_after, report, "",
                                   ("expires_after",)),
        complete_within=entity.complete_within,
        expires_after=entity.expires_after,
        badge_requirements=tuple(r for r in requirements if r.badge),
    )


def _timespan(parse: Any, text: str | None, report: _Report, subject: str, place: Place) -> int | None:
    """A configured duration or instant in microseconds; None when unset or unreadable (the
    setting is then ignored and the web view says why)."""
    if not text:
        return None
    try:
        return int(parse(text))
    except ValueError as exc:
        report.add("timespan_unreadable", subject, place, str(exc), effect="ignored")
        return None


def _dependents(templates: dict[str, CompiledTemplate], findings: list[Finding]) -> dict[str, tuple[str, ...]]:
    """Template -> the active templates with a badge requirement on it. Edges of a cycle (which
    the validator refuses) are left out, so that the engine's award cascade always ends."""
    graph = {
        t.uuid: [r.badge for r in t.badge_requirements if r.badge]
        for t in templates.values() if t.active
    }
    cut: set[tuple[str, str]] = set()
    for cycle in find_cycles(graph):
        findings.append(Finding("badge_cycle", "", "", (), "badge requirements form a cycle: "
                                + " -> ".join(cycle), effect="not followed"))
        cut.update(zip(cycle, cycle[1:]))
    out: dict[str, list[str]] = {}
    for uuid, targets in graph.items():
        for target in targets:
            if (uuid, target) not in cut and uuid not in out.get(target, []):
                out.setdefault(target, []).append(uuid)
    return {k: tuple(v) for k, v in out.items()}


def _ranks(dependents: dict[str, tuple[str, ...]]) -> dict[str, int]:
    """Template -> how many badge requirements deep it sits (0: it names no badge). The engine
    applies an event to the templates it touches in this order, so that a badge of badges
    always sees the badges it names as this event leaves them, whatever the configuration's
    order (the cycle-free ``dependents`` graph makes the depth finite)."""
    rank: dict[str, int] = {}
    frontier = [uuid for uuid in dependents if not any(uuid in deps for deps in dependents.values())]
    depth = 0
    while frontier:
        nxt = []
        for uuid in frontier:
            for dep in dependents.get(uuid, ()):
                if rank.get(dep, -1) < depth + 1:
                    rank[dep] = depth + 1
                    nxt.append(dep)
        frontier, depth = nxt, depth + 1
    return rank


def compile_config(snapshot: ConfigSnapshot, catalog: Catalog | None) -> CompiledConfig:
    """Compile the configuration topic's entities against the event catalog.

    Never raises on a bad entity: what cannot match is reported in ``findings``, so a worker
    keeps running on a configuration that a catalog change made partly stale.
    """
    templates_in = list(snapshot.templates.values())
    orgs_in = list(snapshot.organizations.values())
    findings: list[Finding] = []
    templates: dict[str, CompiledTemplate] = {}
    for entity in templates_in:
        templates[entity.uuid] = compile_template(entity, catalog, findings)
    reqs: list[CompiledRequirement] = []
    pens: list[CompiledPenalty] = []
    for tpl in templates.values():
        if tpl.active:
            reqs.extend(r for r in tpl.requirements if not r.badge)
            pens.extend(p for p in tpl.penalties if p.targets)
    dependents = _dependents(templates, findings)
    return CompiledConfig(
        templates=templates,
        index=RuleIndex(reqs, pens),
        organizations={o.uuid: o.name for o in orgs_in},
        findings=tuple(findings),
        dependents=dependents,
        ranks=_ranks(dependents),
    )
