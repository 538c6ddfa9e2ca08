"""The configuration file (docs/CONTRACT.md "Interfaces"): parse, validate with YAML paths and lines, merge, export.

The YAML is *composed* (not just loaded) so that every value keeps its line: an error reads
``templates[0].requirements[1].rules[0].key_path (line 14): unknown key path ...``. Scalars are
taken as the text written (``value: yes`` is the string ``yes``, ``active: +`` is ``+``), because
the boolean words of the rules (``true True yes Yes +`` / ``false False no No -``) are not YAML's.

Validation reports every error, not the first: structural checks run through pydantic (its
errors are mapped back to YAML paths), a few checks of what only a file can get wrong run on the
raw tree (duplicate uuids, the keys of a badge requirement), and what the rules mean (event
types, key paths, boolean words, ids, penalty targets, groups, windows, activation) is checked by
compilation, the worker's own check: each template is normalised into the entity the
configuration topic would hold and compiled, and each finding is reported at the YAML path of its
place. One bad field does not hide the others.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import (
    Annotated,
    Any,
    Iterable,
    Iterator,
    Literal,
    Sequence,
    Union,
    get_args,
    get_origin,
)

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, SecretStr
from pydantic import ValidationError

from badges.domain.dependencies import find_cycles
from badges.domain.findings import Finding
from badges.domain.index import compile_template
from badges.domain.rule_language import OPERATOR_SIGNS, parse_boolean_word, parse_operator
from badges.domain.timespan import parse_duration, parse_instant
from badges.config.entities import (
    BooleanWord,
    ConfigSnapshot,
    DataRule,
    Duration,
    Entity,
    EnvVarName,
    Instant,
    NonBlank,
    Operator,
    Organization,
    Penalty,
    Provider,
    Requirement,
    Template,
    Text,
    UuidStr,
)

Loc = tuple[Union[str, int], ...]

# --- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigError:
    path: str  # YAML path, e.g. templates[0].requirements[1].rules[0].key_path ("" = the file)
    line: int | None  # 1-based line in the file, None when unknown
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.path or "(file)"
        if self.line is not None:
            where += f" (line {self.line})"
        return f"{where}: {self.message}"


def format_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Collector:
    def __init__(self, lines: dict[Loc, int]) -> None:
        self.lines = lines
        self.errors: list[ConfigError] = []
        self.warnings: list[ConfigError] = []
        self.error_locs: set[Loc] = set()  # where an error is (compilation's findings under it are left out)

    def line(self, loc: Loc) -> int | None:
        loc = tuple(loc)
        while True:
            if loc in self.lines:
                return self.lines[loc]
            if not loc:
                return None
            loc = loc[:-1]

    def error(self, loc: Loc, message: str) -> None:
        self.errors.append(ConfigError(format_path(loc), self.line(loc), message))
        self.error_locs.add(tuple(loc))

    def warn(self, loc: Loc, message: str) -> None:
        self.warnings.append(ConfigError(format_path(loc), self.line(loc), message, "warning"))


def _sorted(errors: Iterable[ConfigError]) -> list[ConfigError]:
    unique = dict.fromkeys(errors)
    return sorted(unique, key=lambda e: (e.line if e.line is not None else 1 << 30, e.path))


# --- file models (what the file may say; unknown fields are errors) -----------------------------

_FILE = ConfigDict(extra="forbid", hide_input_in_errors=True)


def _none_as_empty(value: object) -> object:
    return [] if value is None else value


def _blank_as_none(value: object) -> object:
    return None if value == "" else value


EmptyList = BeforeValidator(_none_as_empty)


class FileRule(BaseModel):
    model_config = _FILE

    key_path: NonBlank
    operator: Operator
    value: str


class FileRequirement(BaseModel):
    model_config = _FILE

    id: NonBlank
    event_type: NonBlank | None = None  # required unless `badge` (checked with the semantics)
    description: Text = ""
    group: Annotated[str | None, BeforeValidator(_blank_as_none)] = None
    rules: Annotated[list[FileRule], EmptyList] = Field(default_factory=list)
    badge: UuidStr | None = None
    not_before: Instant | None = None
    not_after: Instant | None = None


class FilePenalty(BaseModel):
    model_config = _FILE

    id: NonBlank
    event_type: NonBlank
    description: Text = ""
    requirements: Annotated[list[NonBlank], EmptyList] = Field(default_factory=list)
    rules: Annotated[list[FileRule], EmptyList] = Field(default_factory=list)


class FileOrganization(BaseModel):
    model_config = _FILE

    uuid: UuidStr
    name: str | None = None  # used only while Credly has not told us the name
    # None: the provider the organization was added with (credly for a new one)
    provider: Provider | None = None
    api_key_env: EnvVarName | None = None
    api_key: SecretStr | None = None


class FileGroup(BaseModel):
    model_config = _FILE

    min: int = 1  # bounds checked with the semantics (they depend on the requirements)


class FileTemplate(BaseModel):
    model_config = _FILE

    uuid: UuidStr
    # None: keep the template's current activation (as `badges template activate` left it).
    active: BooleanWord | None = None
    groups: Annotated[dict[str, FileGroup], BeforeValidator(lambda v: {} if v is None else v)] = (
        Field(default_factory=dict)
    )
    complete_within: Duration | None = None
    expires_after: Duration | None = None
    requirements: Annotated[list[FileRequirement], EmptyList] = Field(default_factory=list)
    penalties: Annotated[list[FilePenalty], EmptyList] = Field(default_factory=list)


class ConfigDocument(BaseModel):
    model_config = _FILE

    organizations: Annotated[list[FileOrganization], EmptyList] = Field(default_factory=list)
    templates: Annotated[list[FileTemplate], EmptyList] = Field(default_factory=list)

    _lines: dict[Loc, int] = PrivateAttr(default_factory=dict)
    _warnings: list[ConfigError] = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> list[ConfigError]:
        return list(self._warnings)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        return _Collector(self._lines).line(tuple(loc))


@dataclass
class FileCheck:
    """The result of checking a file. Unpacks as ``(document, errors)``; ``warnings`` by name."""

    document: ConfigDocument | None
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.document is not None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.document, self.errors))

    def __getitem__(self, index: int) -> Any:
        return (self.document, self.errors)[index]

    def __len__(self) -> int:
        return 2


# --- YAML with lines ---------------------------------------------------------------------------

_NULL_TAG = "tag:yaml.org,2002:null"


def _to_data(node: yaml.Node, loc: Loc, out: _Collector) -> Any:
    if isinstance(node, yaml.MappingNode):
        data: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                out.lines.setdefault(loc + ("?",), key_node.start_mark.line + 1)
                out.error(loc + ("?",), "a mapping key must be a plain name")
                continue
            key = key_node.value
            sub = loc + (key,)
            if key in data:
                out.errors.append(
                    ConfigError(format_path(sub), key_node.start_mark.line + 1,
                                f"duplicate key {key!r}")
                )
                out.error_locs.add(sub)
                continue
            out.lines[sub] = key_node.start_mark.line + 1
            data[key] = _to_data(value_node, sub, out)
        return data
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            out.lines[loc + (i,)] = item.start_mark.line + 1
            items.append(_to_data(item, loc + (i,), out))
        return items
    if node.tag == _NULL_TAG and node.style is None:  # type: ignore[attr-defined]  # null-tagged: a ScalarNode  # plain ~, null, or nothing
        return None
    return node.value  # the text as written: the engine compares strings


# --- pydantic errors -> YAML paths -------------------------------------------------------------

_MESSAGES = {
    "string_type": "expected a text value",
    "list_type": "expected a list",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
}


def _model_at(loc: Loc) -> type[BaseModel] | None:
    model: Any = ConfigDocument
    keyed = False  # the previous field is a mapping: this part is one of its keys
    for part in loc:
        if isinstance(part, int) or keyed:
            keyed = False
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        info = model.model_fields.get(part)
        if info is None:
            return None
        ann = info.annotation
        while True:
            origin = get_origin(ann)
            if origin is Annotated:
                ann = get_args(ann)[0]
            elif origin is list:
                ann = get_args(ann)[0]
            elif origin is dict:
                ann = get_args(ann)[1]
                keyed = True
            else:
                break
        model = ann
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _map_pydantic(exc: ValidationError, out: _Collector) -> None:
    for err in exc.errors(include_url=False, include_input=False):
        loc: Loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
        kind = err["type"]
        if kind == "extra_forbidden":
            model = _model_at(loc[:-1])
            valid = ", ".join(model.model_fields) if model else ""
            out.error(loc, f"unknown field {loc[-1]!r}" + (f"; valid: {valid}" if valid else ""))
        elif kind == "missing":
            out.error(loc, f"required field {loc[-1]!r} is missing")
        elif kind in _MESSAGES:
            out.error(loc, _MESSAGES[kind])
        else:
            msg = err["msg"]
            out.error(loc, msg[len("Value error, "):] if msg.startswith("Value error, ") else msg)


# --- the file's own checks on the raw tree -----------------------------------------------------
# What only a file can get wrong (duplicate uuids, which keys a badge requirement may have, a
# missing event type); what the rules *mean* is compilation's to check (below).


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _canonical_uuid(value: Any) -> str | None:
    import uuid as uuid_mod

    try:
        return str(uuid_mod.UUID(value.strip()))
    except (ValueError, AttributeError):
        return None


def badge_cycles(refs: dict[str, list[tuple[str, Loc]]], out: _Collector) -> None:
    """Report every cycle of badge requirements at the requirement that closes it."""
    graph = {uuid: [target for target, _ in targets] for uuid, targets in refs.items()}
    for cycle in find_cycles(graph):
        places = [
            next(loc for t, loc in refs[owner] if t == target)
            for owner, target in zip(cycle, cycle[1:])
        ]
        # a place in the file when the cycle has one (edges of the topic have no line)
        where = next((p for p in reversed(places) if len(p) > 1), places[-1])
        out.error(where + ("badge",) if len(where) > 1 else where,
                  "badge requirements form a cycle: " + " -> ".join(cycle))


class _Shape:
    """The checks of what a file may say that compilation never sees."""

    def __init__(self, out: _Collector) -> None:
        self.out = out

    def organizations(self, orgs: Any) -> None:
        seen: dict[str, int] = {}
        for i, org in enumerate(_listed(orgs)):
            if not isinstance(org, dict):
                continue
            loc: Loc = ("organizations", i)
            uuid = _canonical_uuid(org.get("uuid"))
            if uuid is not None:
                if uuid in seen:
                    self.out.error(loc + ("uuid",), f"duplicate organization {uuid} "
                                   f"(also organizations[{seen[uuid]}])")
                else:
                    seen[uuid] = i
            has_env = org.get("api_key_env") not in (None, "")
            has_key = org.get("api_key") not in (None, "")
            if has_env and has_key:
                self.out.error(loc, "set api_key_env or api_key, not both")
            elif not has_env and not has_key:
                self.out.error(
                    loc, "needs api_key_env (the name of the environment variable that holds the "
                    "Credly token) or api_key"
                )
            if has_key:
                self.out.warn(
                    loc + ("api_key",),
                    "an inline api_key is stored in the configuration topic; prefer api_key_env",
                )

    def templates(self, templates: Any) -> None:
        seen_uuids: dict[str, int] = {}
        badge_refs: dict[str, list[tuple[str, Loc]]] = {}
        for i, tpl in enumerate(_listed(templates)):
            if not isinstance(tpl, dict):
                continue
            loc: Loc = ("templates", i)
            uuid = _canonical_uuid(tpl.get("uuid"))
            if uuid is not None:
                if uuid in seen_uuids:
                    self.out.error(loc + ("uuid",), f"duplicate template {uuid} "
                                   f"(also templates[{seen_uuids[uuid]}])")
                else:
                    seen_uuids[uuid] = i
            for j, req in enumerate(_listed(tpl.get("requirements"))):
                if isinstance(req, dict):
                    badge = self.requirement(req, loc + ("requirements", j))
                    if badge is not None and uuid is not None:
                        badge_refs.setdefault(uuid, []).append((badge, loc + ("requirements", j)))
        badge_cycles(badge_refs, self.out)

    def requirement(self, req: dict[str, Any], loc: Loc) -> str | None:
        """Which keys a requirement of each kind has; the template its badge names, if any."""
        if req.get("badge") is not None:
            for key in ("event_type", "rules", "not_before", "not_after"):
                if key in req:
                    self.out.error(
                        loc + (key,),
                        f"a badge requirement has no {key}: it is fulfilled while the learner "
                        "holds the named template's badge",
                    )
            return _canonical_uuid(req.get("badge"))
        if "badge" in req:
            self.out.error(loc + ("badge",), "expected the uuid of a badge template")
        if req.get("event_type") is None:
            self.out.error(loc + ("event_type",), "required field 'event_type' is missing "
                           "(or 'badge': the template whose badge fulfills it)")
        return None


# --- compilation's findings at YAML paths ------------------------------------------------------
# Every template of the file is normalised into a template entity, as the configuration topic
# would hold it, and compiled: compilation is the one place that checks ids, penalty targets,
# groups, windows, activation, event types and key paths. A part that is structurally wrong is
# stood in for by a placeholder at the same index (so that every place keeps its YAML path), and
# a finding at or under a place that already has a structural error is left out: one error per
# mistake.

_PLACEHOLDER_UUID = "00000000-0000-0000-0000-000000000000"
_PLACEHOLDER = "(missing)"


def _parsed(value: Any, parse: Any) -> str | None:
    """A duration or instant as written when it parses (else the structural check said why)."""
    if not isinstance(value, str):
        return None
    try:
        parse(value)
    except ValueError:
        return None
    return value


def _entity_rule(rule: Any) -> dict[str, Any]:
    rule = rule if isinstance(rule, dict) else {}
    return {
        "key_path": _text(rule.get("key_path")) or _PLACEHOLDER,
        "operator": parse_operator(rule.get("operator")) or "eq",
        "value": rule.get("value") if isinstance(rule.get("value"), str) else "",
    }


def _entity_requirement(req: Any, j: int) -> dict[str, Any]:
    req = req if isinstance(req, dict) else {}
    rid = _text(req.get("id")) or f"\0requirement {j}"  # no file can name it
    badge = _canonical_uuid(req.get("badge"))
    if badge is not None:
        return {"id": rid, "badge": badge, "group": _text(req.get("group"))}
    return {
        "id": rid,
        "event_type": _text(req.get("event_type")) or _PLACEHOLDER,
        "group": _text(req.get("group")),
        "rules": [_entity_rule(r) for r in _listed(req.get("rules"))],
        "not_before": _parsed(req.get("not_before"), parse_instant),
        "not_after": _parsed(req.get("not_after"), parse_instant),
    }


def _entity_penalty(pen: Any, k: int) -> dict[str, Any]:
    pen = pen if isinstance(pen, dict) else {}
    return {
        "id": _text(pen.get("id")) or f"\0penalty {k}",
        "event_type": _text(pen.get("event_type")) or _PLACEHOLDER,
        "requirements": [t if isinstance(t, str) else "" for t in _listed(pen.get("requirements"))],
        "rules": [_entity_rule(r) for r in _listed(pen.get("rules"))],
    }


def _group_min(settings: Any) -> int:
    raw = settings.get("min", 1) if isinstance(settings, dict) else 1
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 1


def _entity_template(tpl: dict[str, Any]) -> Template:
    """The template entity a file's template stands for (placeholders where it is broken)."""
    groups = tpl.get("groups")
    return Template.model_validate({
        "uuid": _canonical_uuid(tpl.get("uuid")) or _PLACEHOLDER_UUID,
        "organization": _PLACEHOLDER_UUID,
        "is_active": parse_boolean_word(tpl.get("active")) is True,
        "groups": {name: {"min": _group_min(settings)}
                   for name, settings in (groups.items() if isinstance(groups, dict) else ())},
        "complete_within": _parsed(tpl.get("complete_within"), parse_duration),
        "expires_after": _parsed(tpl.get("expires_after"), parse_duration),
        "requirements": [_entity_requirement(r, j) for j, r in enumerate(_listed(tpl.get("requirements")))],
        "penalties": [_entity_penalty(p, k) for k, p in enumerate(_listed(tpl.get("penalties")))],
    })


def _requirement_owners(templates: list[Any]) -> dict[str, list[int]]:
    """Requirement id -> the templates of the file that have it (to say where a target is)."""
    owners: dict[str, list[int]] = {}
    for i, tpl in enumerate(templates):
        for req in _listed(tpl.get("requirements")) if isinstance(tpl, dict) else ():
            rid = _text(req.get("id")) if isinstance(req, dict) else None
            if rid is not None and i not in owners.setdefault(rid, []):
                owners[rid].append(i)
    return owners


@dataclass
class _Findings:
    """Compilation's findings of the templates of one file, said at their YAML paths."""

    out: _Collector
    owners: dict[str, list[int]] = field(default_factory=dict)
    active_in_file: dict[int, bool] = field(default_factory=dict)  # template -> says `active:`

    def report(self, index: int, finding: Finding) -> None:
        tloc: Loc = ("templates", index)
        loc = tloc + finding.place
        if finding.code == "active_without_requirements" and not self.active_in_file.get(index, True):
            loc = tloc  # activation kept from the configuration topic: no line says it
        if self._hidden(loc, finding.is_error):
            return
        message = self._message(index, finding)
        if finding.is_error:
            self.out.error(loc, message)
        else:
            self.out.warn(loc, message)

    def _hidden(self, loc: Loc, error: bool) -> bool:
        """A finding at or under a structural error is that error's consequence; a warning is
        also left out when a part of its place is wrong."""
        for bad in self.out.error_locs:
            if loc[:len(bad)] == bad or (not error and bad[:len(loc)] == loc):
                return True
        return False

    def _message(self, index: int, finding: Finding) -> str:
        tloc: Loc = ("templates", index)
        if finding.related is not None:
            first = tloc + finding.related
            return f"{finding.message} (also {format_path(first)}, line {self.out.line(first)})"
        if finding.code == "penalty_target_unknown" and finding.ref is not None:
            others = [t for t in self.owners.get(finding.ref, []) if t != index]
            if others:
                return (f"requirement {finding.ref!r} belongs to templates[{others[0]}]; a penalty "
                        "targets requirements of its own template")
        if finding.code == "active_without_requirements" and not self.active_in_file.get(index, True):
            return ("the template is active in the configuration topic and needs at least one "
                    "requirement")
        return finding.message


def _compile_templates(templates: Any, catalog: Any, out: _Collector) -> None:
    """Compile every template of the file and report its findings where the file says them."""
    items = _listed(templates)
    findings = _Findings(out, _requirement_owners(items))
    for i, tpl in enumerate(items):
        if not isinstance(tpl, dict):
            continue
        try:
            entity = _entity_template(tpl)
        except ValidationError as exc:  # a placeholder missing above: say so, never pass silently
            if not any(bad[:2] == ("templates", i) for bad in out.error_locs):
                out.error(("templates", i), f"cannot check this template's rules: {exc.error_count()} "
                          "unreadable parts")
            continue
        found: list[Finding] = []
        compile_template(entity, catalog, found)
        for finding in found:
            findings.report(i, finding)


# --- public API --------------------------------------------------------------------------------


def check_file(text: str, catalog: Any) -> FileCheck:
    """Validate a configuration file alone: every error and every warning, with lines."""
    out = _Collector({(): 1})
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        return FileCheck(None, [ConfigError("", line, f"YAML syntax error: {problem}")])
    except yaml.YAMLError as exc:
        return FileCheck(None, [ConfigError("", None, f"YAML error: {exc}")])
    if root is None:
        return FileCheck(None, [ConfigError("", None, "the file is empty")])
    data = _to_data(root, (), out)
    if not isinstance(data, dict):
        out.error((), "the file must be a mapping with 'organizations' and 'templates'")
        return FileCheck(None, _sorted(out.errors))
    document: ConfigDocument | None = None
    try:
        document = ConfigDocument.model_validate(data)
    except ValidationError as exc:
        _map_pydantic(exc, out)
    shape = _Shape(out)
    shape.organizations(data.get("organizations"))
    shape.templates(data.get("templates"))
    _compile_templates(data.get("templates"), catalog, out)
    errors = _sorted(out.errors)
    warnings = _sorted(out.warnings)
    if errors:
        return FileCheck(None, errors, warnings)
    assert document is not None
    document._lines = out.lines
    document._warnings = warnings
    return FileCheck(document, [], warnings)


def validate_file(text: str, catalog: Any) -> FileCheck:
    """``doc, errors = validate_file(...)``: (document, []) when the file is valid, else
    (None, every error). The result also has ``.document``, ``.errors`` and ``.warnings``."""
    return check_file(text, catalog)


def validate_against(doc: ConfigDocument, snapshot: ConfigSnapshot) -> list[ConfigError]:
    """Checks that need the configuration topic: referenced templates were synced from Credly
    and belong to a configured organization; what ends up active can be."""
    out = _Collector(doc._lines)
    file_orgs = {o.uuid for o in doc.organizations}
    for i, tpl in enumerate(doc.templates):
        loc: Loc = ("templates", i)
        entity = snapshot.templates.get(tpl.uuid)
        if entity is None:
            out.error(
                loc + ("uuid",),
                f"template {tpl.uuid} is not in the configuration topic; sync the organization's "
                "templates from Credly first (badges templates sync)",
            )
            continue
        if entity.organization not in file_orgs and entity.organization not in snapshot.organizations:
            out.error(
                loc + ("uuid",),
                f"template {tpl.uuid} belongs to organization {entity.organization}, which is not "
                "configured; add it under organizations",
            )
        active = tpl.active if tpl.active is not None else entity.is_active
        if active and entity.credly_state != "active":
            out.error(
                loc + ("active",) if tpl.active is not None else loc,
                f"template {tpl.uuid} is {entity.credly_state!r} in Credly; only templates that "
                "are active in Credly can be activated",
            )
    _activation(doc, snapshot, out)
    _badge_references(doc, snapshot, out)
    return _sorted(out.errors)


def _activation(doc: ConfigDocument, snapshot: ConfigSnapshot, out: _Collector) -> None:
    """Compilation's findings on each template as the file leaves it in the topic (its
    activation may come from there); the file alone was checked by ``check_file``."""
    findings = _Findings(out, active_in_file={i: t.active is not None for i, t in enumerate(doc.templates)})
    for i, tpl in enumerate(doc.templates):
        synced = snapshot.templates.get(tpl.uuid)
        if synced is None:
            continue  # reported: not synced
        found: list[Finding] = []
        compile_template(_merged_template(tpl, synced), None, found)
        for finding in found:
            if finding.is_error:
                findings.report(i, finding)


def _badge_references(doc: ConfigDocument, snapshot: ConfigSnapshot, out: _Collector) -> None:
    """Badge requirements name known templates and form no cycle once the file is applied
    (its templates replace theirs in the topic; the others keep their requirements)."""
    in_file = {tpl.uuid for tpl in doc.templates}
    refs: dict[str, list[tuple[str, Loc]]] = {}
    for uuid, entity in snapshot.templates.items():
        if uuid not in in_file:
            refs[uuid] = [(r.badge, ("templates",)) for r in entity.requirements if r.badge]
    for i, tpl in enumerate(doc.templates):
        refs[tpl.uuid] = []
        for j, req in enumerate(tpl.requirements):
            if req.badge is None:
                continue
            loc: Loc = ("templates", i, "requirements", j)
            if req.badge not in in_file and req.badge not in snapshot.templates:
                out.error(loc + ("badge",), f"unknown template {req.badge}: neither in this file "
                          "nor in the configuration topic")
            refs[tpl.uuid].append((req.badge, loc))
    badge_cycles({u: r for u, r in refs.items()}, out)


def document_to_entities(doc: ConfigDocument, snapshot: ConfigSnapshot) -> list[Entity]:
    """The entities to publish: file settings merged onto the synced templates.

    Credly's fields (name, description, image, state, organization) come from the snapshot; the
    file decides requirements, penalties and (when it says so) activation. Organizations come
    from the file; a name Credly already gave is kept.
    """
    missing = [t.uuid for t in doc.templates if t.uuid not in snapshot.templates]
    if missing:
        raise ValueError(f"templates not in the configuration topic: {', '.join(missing)}")
    entities: list[Entity] = []
    for org in doc.organizations:
        known = snapshot.organizations.get(org.uuid)
        name = known.name if known is not None and known.name else (org.name or "")
        provider = org.provider or (known.provider if known is not None else "credly")
        entities.append(
            Organization(uuid=org.uuid, name=name, provider=provider, api_key_env=org.api_key_env,
                         api_key=org.api_key)
        )
    entities.extend(_merged_template(tpl, snapshot.templates[tpl.uuid]) for tpl in doc.templates)
    return entities


def _merged_template(tpl: FileTemplate, synced: Template) -> Template:
    """One template of the file merged onto the template synced from the provider."""
    data = synced.model_dump()
    data["is_active"] = tpl.active if tpl.active is not None else synced.is_active
    data["groups"] = {name: g.model_dump() for name, g in tpl.groups.items()}
    data["complete_within"] = tpl.complete_within
    data["expires_after"] = tpl.expires_after
    data["requirements"] = [Requirement.model_validate(r.model_dump()) for r in tpl.requirements]
    data["penalties"] = [Penalty.model_validate(p.model_dump()) for p in tpl.penalties]
    return Template.model_validate(data)


# --- export ------------------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def _dq(text: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are YAML's), non-printables escaped."""
    out = []
    for ch in json.dumps(text, ensure_ascii=False)[1:-1]:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _scalar(text: str) -> str:
    if _PLAIN.fullmatch(text) and yaml.safe_load(text) == text:
        return text
    return _dq(text)


def _comment(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _rules_yaml(rules: Sequence[DataRule], indent: str) -> list[str]:
    if not rules:
        return [f"{indent}rules: []  # matches every event of this type"]
    lines = [f"{indent}rules:"]
    for r in rules:
        op = OPERATOR_SIGNS[r.operator]
        lines.append(
            f"{indent}  - {{key_path: {_scalar(r.key_path)}, operator: {_dq(op)}, "
            f"value: {_dq(r.value)}}}"
        )
    return lines


def export_document(snapshot: ConfigSnapshot) -> str:
    """The configuration topic as a configuration file (the form ``config validate`` reads).

    Tokens are never printed: an organization with an inline ``api_key`` is listed as a comment
    (applying the exported file leaves it unchanged). A template that Credly moved out of
    ``active`` shows ``active: false``.
    """
    lines = [
        "# Badges configuration exported from the configuration topic.",
        "# Names and states in comments come from Credly. Tokens are never printed.",
    ]
    orgs = sorted(snapshot.organizations.values(), key=lambda o: o.uuid)
    listed = [o for o in orgs if o.api_key_env is not None]
    lines.append("organizations:" if listed else "organizations: []")
    for org in orgs:
        name = f"  # {_comment(org.name)}" if org.name else ""
        if org.api_key_env is not None:
            lines.append(f"  - uuid: {org.uuid}{name}")
            if org.provider != "credly":
                lines.append(f"    provider: {org.provider}")
            lines.append(f"    api_key_env: {_scalar(org.api_key_env)}")
        else:
            lines.append(
                f"  # - uuid: {org.uuid}{'  (' + _comment(org.name) + ')' if org.name else ''}"
            )
            lines.append("  #   api_key: an inline token is set in the configuration topic "
                         "(not printed; left unchanged by applying this file)")
    templates = sorted(
        snapshot.templates.values(), key=lambda t: (t.organization, t.name.lower(), t.uuid)
    )
    lines.append("templates:" if templates else "templates: []")
    for tpl in templates:
        issuer = snapshot.organizations.get(tpl.organization)
        provider = "Accredible state" if issuer is not None and issuer.provider == "accredible" else "Credly state"
        about = _comment(f"{tpl.name} - {provider}: {tpl.credly_state}")
        active = tpl.is_active and tpl.credly_state == "active"
        lines.append(f"  - uuid: {tpl.uuid}  # {about}")
        lines.append(f"    active: {'true' if active else 'false'}")
        if tpl.groups:
            lines.append("    groups:")
            for name, group in tpl.groups.items():
                lines.append(f"      {_scalar(name)}: {{min: {group.min}}}")
        if tpl.complete_within:
            lines.append(f"    complete_within: {_scalar(tpl.complete_within)}")
        if tpl.expires_after:
            lines.append(f"    expires_after: {_scalar(tpl.expires_after)}")
        if not tpl.requirements:
            lines.append("    requirements: []")
        else:
            lines.append("    requirements:")
        for req in tpl.requirements:
            lines.append(f"      - id: {_scalar(req.id)}")
            if req.badge:
                lines.append(f"        badge: {req.badge}")
            else:
                lines.append(f"        event_type: {_scalar(req.event_type)}")
            if req.description:
                lines.append(f"        description: {_dq(req.description)}")
            if req.group:
                lines.append(f"        group: {_scalar(req.group)}")
            for bound in ("not_before", "not_after"):
                if getattr(req, bound):
                    lines.append(f"        {bound}: {_dq(getattr(req, bound))}")
            if not req.badge:
                lines.extend(_rules_yaml(req.rules, "        "))
        if tpl.penalties:
            lines.append("    penalties:")
        for pen in tpl.penalties:
            lines.append(f"      - id: {_scalar(pen.id)}")
            lines.append(f"        event_type: {_scalar(pen.event_type)}")
            if pen.description:
                lines.append(f"        description: {_dq(pen.description)}")
            targets = ", ".join(_scalar(t) for t in pen.requirements)
            lines.append(f"        requirements: [{targets}]")
            lines.extend(_rules_yaml(pen.rules, "        "))
    return "\n".join(lines) + "\n"
