"""The rules engine: one learner event applied to one learner's progress (docs/CONTRACT.md "Rules").

Pure and synchronous: state in, state and decisions out. The input state is never mutated;
the touched templates are copied on write, the rest is shared. Semantics:

- only requirements/penalties of active templates are considered (the index holds no others);
- requirements first, then penalties, within one event;
- a requirement event fulfills its requirement when it is not fulfilled yet and is newer than
  the last penalty that reset it (older events are stale: duplicates and replays are no-ops);
- a penalty resets each targeted requirement unless a matching event newer than the penalty
  fulfilled it, and remembers its time per requirement (so an older event arriving later stays
  stale, whatever order partitions and topics deliver in);
- a template is complete when every group has a fulfilled requirement; the badge is awarded
  once, by the event that makes it complete; a penalty that makes an awarded template
  incomplete revokes it; a revoked badge is never awarded again by processing;
- the event that awarded (or revoked) a badge, applied again, re-emits the same decision with
  ``replayed=True``, the award even once the badge is revoked: a crash between the state write
  and the decision send loses nothing, and the sink deduplicates (it never issues a badge whose
  revocation it has seen).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from badges.domain.events import Learner, LearnerEvent
from badges.domain.matching import render, resolve
from badges.domain.model import CompiledConfig, CompiledPenalty, CompiledRequirement, CompiledTemplate
from badges.domain.progress import (
    STATE_VERSION,
    BadgeRecord,
    EarlierVersion,
    EventRecord,
    LearnerState,
    TemplateProgress,
    as_learner,
    event_record,
    fulfillment,
    merge_identity,
)
from badges.wire.timeparse import us_to_iso

# Event types of operator commands (never on the event bus: the CLI and the admin API publish
# them onto the learner-events topic). Payload: {"template": uuid, "reason": text}.
MANUAL_AWARD = "badges.manual.award"
MANUAL_REVOKE = "badges.manual.revoke"
MANUAL_TYPES = (MANUAL_AWARD, MANUAL_REVOKE)

# Payload paths worth recording with a badge even when no rule names them.
_KEY_FIELD_PATHS = (
    ("course", "course_key"),
    ("course", "ccx_course_key"),
    ("course", "master_course_key"),
    ("program", "uuid"),
)


@dataclass(frozen=True, slots=True)
class EventRef:
    """The event a decision stems from; ``time`` (ce_time) becomes Credly's ``issued_at``."""

    event_id: str
    event_type: str
    time: str
    time_us: int
    origin: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    action: ClassVar[Literal["award", "revoke"]]
    learner: Learner  # the latest identity known for the learner
    template: str  # Credly template uuid
    organization: str  # Credly organization uuid
    event: EventRef
    replayed: bool = False  # re-emitted for an event already applied (the sink deduplicates)
    # Award: the requirements this event fulfilled; revoke: the penalties that matched.
    cause: tuple[str, ...] = ()
    key_fields: dict[str, str] = field(default_factory=dict)
    # docs/CONTRACT.md "Rules beyond the reference": when the badge expires (ISO 8601), the operator's reason of a manual command, and
    # whether this award follows an expired or revoked badge of the same template (the sink
    # then issues again instead of taking the earlier issue for this one).
    expires_at: str | None = None
    reason: str = ""
    renewal: bool = False
    # The version of the badge record this decision carries out (``badge_version``): the sink
    # records the highest version it has applied per (learner, template) and skips lower ones.
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "learner": {
                "id": self.learner.id,
                "username": self.learner.username,
                "email": self.learner.email,
                "name": self.learner.name,
            },
            "template": self.template,
            "organization": self.organization,
            "event": {
                "event_id": self.event.event_id,
                "event_type": self.event.event_type,
                "time": self.event.time,
                "time_us": self.event.time_us,
                "origin": self.event.origin,
            },
            "replayed": self.replayed,
            "cause": list(self.cause),
            "key_fields": dict(self.key_fields),
            "expires_at": self.expires_at,
            "reason": self.reason,
            "renewal": self.renewal,
            "version": self.version,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> "Decision":
        cls = {"award": Award, "revoke": Revoke}[data["action"]]
        return cls(
            learner=Learner(**data["learner"]),
            template=data["template"],
            organization=data["organization"],
            event=EventRef(**data["event"]),
            replayed=bool(data.get("replayed", False)),
            cause=tuple(data.get("cause", ())),
            key_fields=dict(data.get("key_fields") or {}),
            expires_at=data.get("expires_at"),
            reason=data.get("reason") or "",
            renewal=bool(data.get("renewal", False)),
            version=int(data.get("version") or 0),
        )


@dataclass(frozen=True, slots=True)
class Award(Decision):
    action: ClassVar[Literal["award", "revoke"]] = "award"


@dataclass(frozen=True, slots=True)
class Revoke(Decision):
    action: ClassVar[Literal["award", "revoke"]] = "revoke"


@dataclass(slots=True)
class Outcome:
    state: LearnerState | None  # None only for a learner without progress that nothing matched
    decisions: list[Decision]
    changed: bool  # the state must be written back
    matched_requirements: int = 0
    matched_penalties: int = 0
    # Nothing changed, but the event is recorded in the state as applied before (a redelivery
    # or replay); decisions tied to it, if any, were re-emitted with replayed=True.
    already_applied: bool = False
    fulfillments_added: int = 0  # requirements this event newly fulfilled (and still holds)
    note: str = ""  # why a manual command changed nothing (logged by the progress agent)


def _key_fields(event: LearnerEvent, reqs: list[CompiledRequirement]) -> dict[str, str]:
    fields: dict[str, str] = {}
    payload = event.payload
    for req in reqs:
        for rule in req.rules:
            if rule.boolean:
                continue
            value = resolve(payload, rule.path)
            if value is not None:
                fields[rule.key_path] = render(value)
    for path in _KEY_FIELD_PATHS:
        value = resolve(payload, path)
        if value is not None:
            fields.setdefault(".".join(path), render(value))
    return fields


def _event_ref(record: Any) -> EventRef:
    return EventRef(
        event_id=record["event_id"],
        event_type=record["event_type"],
        time=record["time"],
        time_us=record["time_us"],
        origin=record.get("origin", ""),
    )


# --- rules beyond the reference: helpers --------------------------------------------------------


def _expired(badge: BadgeRecord, t: int) -> bool:
    expires = badge.get("expires_us")
    return badge["status"] == "awarded" and expires is not None and t >= expires


def _holds(badge: BadgeRecord | None, t: int) -> bool:
    """The learner holds the badge at ``t``: awarded here and not expired."""
    return badge is not None and badge["status"] == "awarded" and not _expired(badge, t)


def held_badges(tpl: CompiledTemplate, view: dict[str, TemplateProgress], t: int) -> dict[str, int]:
    """Badge requirements of ``tpl`` fulfilled at ``t``: requirement id -> the badge's time."""
    out: dict[str, int] = {}
    for req in tpl.badge_requirements:
        progress = view.get(req.badge)  # type: ignore[arg-type]  # a badge requirement names its template
        badge = progress.get("badge") if progress is not None else None
        if badge is not None and _holds(badge, t):
            out[req.id] = badge["time_us"]
    return out


def counted_time(rec: Any, t: int) -> int:
    """The newest matching event of a fulfillment known up to ``t`` (the first one when a newer
    one arrived out of order: only the first and the newest are kept)."""
    latest: int = rec["latest_us"]
    first: int = rec["time_us"]
    return latest if latest <= t else first


def _complete(tpl: CompiledTemplate, fulfilled: dict[str, Any], held: dict[str, int], t: int,
              since: int | None = None, windowed: bool = True) -> bool:
    """Complete at ``t``: every group has enough fulfillments. ``windowed``: only those within
    ``complete_within`` before ``t`` and newer than ``since`` (an expiry) count, and a held
    badge always does; otherwise (revocation) every recorded fulfillment counts."""
    lower = since
    if windowed and tpl.complete_within_us is not None:
        start = t - tpl.complete_within_us
        lower = start if lower is None else max(lower, start)
    if not windowed or lower is None:
        return tpl.is_complete(fulfilled.keys() | held.keys() if held else fulfilled)
    counted = {rid for rid, rec in fulfilled.items() if lower <= counted_time(rec, t) <= t}
    return tpl.is_complete(counted | held.keys())


def badge_version(badge: BadgeRecord | None) -> int:
    """How many times the badge of a (learner, template) has changed: each award (a renewal and
    a manual award included) and each revocation is one version more. Records written before
    versions existed count as the award (1) or the award and its revocation (2)."""
    if badge is None:
        return 0
    return badge.get("v") or (1 if badge["status"] == "awarded" else 2)


# Earlier versions a badge record keeps (``earlier``): more lost notifications of one badge in a
# row than this cannot be rebuilt (``rebuilt_versions``).
EARLIER_KEPT = 8


def _as_earlier(badge: BadgeRecord) -> EarlierVersion:
    """The version ``badge`` is, as its successor keeps it."""
    event = badge.get("revoked_by") if badge["status"] == "revoked" else None
    entry: EarlierVersion = {"v": badge_version(badge), "status": badge["status"],
                             "event": event or _event_fields(badge)}
    for name in ("key_fields", "expires_at", "cause", "reason"):
        if name in badge:
            entry[name] = badge[name]
    return entry


def _event_fields(record: Any) -> EventRecord:
    return {"event_id": record["event_id"], "event_type": record["event_type"], "time": record["time"],
            "time_us": record["time_us"], "origin": record.get("origin", "")}


def _earlier(previous: BadgeRecord) -> list[EarlierVersion]:
    return [*previous.get("earlier", ()), _as_earlier(previous)][-EARLIER_KEPT:]


def _awarded_record(tpl: CompiledTemplate, event: LearnerEvent, previous: BadgeRecord | None) -> BadgeRecord:
    badge: BadgeRecord = {"status": "awarded", **event_record(event),  # type: ignore[typeddict-item]  # the event fields of a BadgeRecord
                          "v": badge_version(previous) + 1}
    if previous is not None:
        badge["earlier"] = _earlier(previous)
    if tpl.expires_after_us is not None:
        expires = event.time_us + tpl.expires_after_us
        badge["expires_us"] = expires
        badge["expires_at"] = us_to_iso(expires)
    return badge


def _revoked_record(badge: BadgeRecord, event: LearnerEvent) -> BadgeRecord:
    """The badge revoked by ``event``; an operator's cause and reason describe only the change
    they made, so a revocation by processing drops them."""
    revoked: BadgeRecord = {**badge, "status": "revoked", "revoked_by": event_record(event),
                            "v": badge_version(badge) + 1, "earlier": _earlier(badge)}
    revoked.pop("cause", None)
    revoked.pop("reason", None)
    revoked.pop("after_revocation", None)
    return revoked


def _configured(templates: dict[str, TemplateProgress], config: CompiledConfig
                ) -> dict[str, TemplateProgress]:
    """The progress of templates still configured: a deleted template's (removal) is
    dropped when the learner's state is next written. Only written states are touched, and only
    after an event matched the configuration, so a worker whose configuration is not loaded
    yet never drops anything."""
    if all(uuid in config.templates for uuid in templates):
        return templates
    return {uuid: p for uuid, p in templates.items() if uuid in config.templates}


class _Pass:
    """One event's decisions: each (template, action) at most once, new or re-emitted."""

    __slots__ = ("config", "event", "learner", "templates_in", "updates", "decisions", "emitted")

    def __init__(self, config: CompiledConfig, event: LearnerEvent, learner: Learner,
                 templates_in: dict[str, TemplateProgress]) -> None:
        self.config = config
        self.event = event
        self.learner = learner
        self.templates_in = templates_in
        self.updates: dict[str, TemplateProgress] = {}
        self.decisions: list[Decision] = []
        self.emitted: set[tuple[str, str]] = set()

    def view(self) -> dict[str, TemplateProgress]:
        return {**self.templates_in, **self.updates} if self.updates else self.templates_in

    def emit(self, decision: Decision) -> None:
        self.decisions.append(decision)
        self.emitted.add((decision.template, decision.action))

    def award(self, tpl: CompiledTemplate, badge: BadgeRecord, cause: tuple[str, ...],
              renewal: bool, reason: str = "") -> None:
        self.emit(Award(self.learner, tpl.uuid, tpl.organization, _event_ref(badge), False, cause,
                        dict(badge.get("key_fields", {})), badge.get("expires_at"), reason,
                        renewal, badge_version(badge)))

    def revoke(self, tpl: CompiledTemplate, revoked: BadgeRecord, cause: tuple[str, ...],
               reason: str = "") -> None:
        """``revoked``: the badge record as this revocation leaves it."""
        self.emit(Revoke(self.learner, tpl.uuid, tpl.organization,
                         _event_ref(event_record(self.event)), False, cause,
                         dict(revoked.get("key_fields", {})), None, reason, False,
                         badge_version(revoked)))

    def re_emit(self, tpl: CompiledTemplate, badge: BadgeRecord, cause: tuple[str, ...]) -> bool:
        """Re-emit (replayed) the decisions this event took on ``tpl`` before; True if any."""
        eid = self.event.event_id
        found = False
        if badge["event_id"] == eid:
            found = True
            if (tpl.uuid, "award") not in self.emitted:
                # the award's version: the record's, or the one before its revocation
                version = badge_version(badge) - (1 if badge["status"] == "revoked" else 0)
                self.emit(Award(self.learner, tpl.uuid, tpl.organization, _event_ref(badge), True,
                                cause, dict(badge.get("key_fields", {})), badge.get("expires_at"),
                                badge.get("reason", "") if badge.get("cause") == "manual" else "",
                                version > 1, version))
        revoked_by = badge.get("revoked_by") if badge["status"] == "revoked" else None
        if revoked_by is not None and revoked_by["event_id"] == eid:
            found = True
            if (tpl.uuid, "revoke") not in self.emitted:
                self.emit(Revoke(self.learner, tpl.uuid, tpl.organization, _event_ref(revoked_by),
                                 True, cause, dict(badge.get("key_fields", {})), None,
                                 badge.get("reason", "") if badge.get("cause") == "manual" else "",
                                 False, badge_version(badge)))
        return found

    def cascade(self) -> None:
        """Follow the awards and revocations of this pass to the templates whose badge
        requirements name them (badge of badges), transitively."""
        dependents = self.config.dependents
        if not dependents:
            return
        t = self.event.time_us
        work = [(d.template, d.action) for d in self.decisions]
        while work:
            source, action = work.pop(0)
            for uuid in dependents.get(source, ()):
                tpl = self.config.templates[uuid]
                view = self.view()
                progress = view.get(uuid)
                fulfilled = progress["fulfilled"] if progress is not None else {}
                badge = progress.get("badge") if progress is not None else None
                held = held_badges(tpl, view, t)
                cause = tuple(r.id for r in tpl.badge_requirements if r.badge == source)
                new_badge: BadgeRecord | None = None
                if action == "award" and (badge is None or _expired(badge, t)):
                    since = badge.get("expires_us") if badge is not None else None
                    if _complete(tpl, fulfilled, held, t, since):
                        new_badge = _awarded_record(tpl, self.event, badge)
                        self.award(tpl, new_badge, cause, badge is not None)
                elif (action == "revoke" and _holds(badge, t)
                      and not _complete(tpl, fulfilled, held, t, windowed=False)):
                    assert badge is not None
                    new_badge = _revoked_record(badge, self.event)
                    self.revoke(tpl, new_badge, cause)
                elif badge is not None and self.re_emit(tpl, badge, cause):
                    work.append((uuid, action))
                if new_badge is not None:
                    self.updates[uuid] = {
                        "fulfilled": fulfilled,
                        "resets": progress["resets"] if progress is not None else {},
                        "badge": new_badge,
                    }
                    work.append((uuid, action))


def apply_event(
    state: LearnerState | None, config: CompiledConfig, event: LearnerEvent
) -> Outcome:
    """Apply one event to one learner's progress. Never mutates ``state``."""
    if event.event_type in MANUAL_TYPES:
        return apply_manual(state, config, event)
    reqs, pens = config.index.match(event.event_type, event.payload)
    t = event.time_us
    if reqs:
        reqs = [r for r in reqs if r.in_window(t)]
    old_identity = state["learner"] if state is not None else None
    if not reqs and not pens:
        if state is None:
            return Outcome(None, [], False)
        identity = merge_identity(old_identity, event.learner, event.time_us)
        if identity is old_identity:
            return Outcome(state, [], False)
        return Outcome({**state, "learner": identity}, [], True)

    # Touched templates, each with its matched requirements and penalties.
    touched: dict[str, tuple[list[CompiledRequirement], list[CompiledPenalty]]] = {}
    for req in reqs:
        touched.setdefault(req.template, ([], []))[0].append(req)
    for pen in pens:
        touched.setdefault(pen.template, ([], []))[1].append(pen)

    identity = merge_identity(old_identity, event.learner, event.time_us)
    templates_in = state["templates"] if state is not None else {}
    run = _Pass(config, event, as_learner(identity), templates_in)
    updates = run.updates
    already_applied = False
    added = 0
    eid = event.event_id

    ranks = config.ranks
    order = sorted(touched, key=lambda u: ranks.get(u, 0)) if ranks else touched
    for uuid in order:
        treqs, tpens = touched[uuid]
        tpl = config.templates[uuid]
        old = templates_in.get(uuid)
        fulfilled = old["fulfilled"] if old is not None else {}
        resets = old["resets"] if old is not None else {}
        badge: BadgeRecord | None = old.get("badge") if old is not None else None
        new_f: dict[str, Any] | None = None  # copy-on-write of fulfilled / resets
        new_r: dict[str, int] | None = None
        newly: list[CompiledRequirement] = []
        refreshed: list[CompiledRequirement] = []  # fulfilled before, matched again by a newer event
        seen_before = False

        # 1. requirements
        for req in treqs:
            rec = (new_f if new_f is not None else fulfilled).get(req.id)
            if rec is not None:
                if rec["event_id"] == eid:
                    seen_before = True
                if t > rec["latest_us"]:
                    if new_f is None:
                        new_f = dict(fulfilled)
                    new_f[req.id] = {**rec, "latest_us": t}
                    refreshed.append(req)
                continue
            last_reset = resets.get(req.id)
            if last_reset is not None and t <= last_reset:
                continue  # stale: older than the penalty that reset this requirement
            if new_f is None:
                new_f = dict(fulfilled)
            new_f[req.id] = fulfillment(event)
            newly.append(req)

        # 2. penalties
        reset_any = False
        for pen in tpens:
            for rid in pen.targets:
                current = new_f if new_f is not None else fulfilled
                rec = current.get(rid)
                if rec is not None and rec["latest_us"] <= t:
                    if new_f is None:
                        new_f = dict(fulfilled)
                    del new_f[rid]
                    reset_any = True
                last_reset = (new_r if new_r is not None else resets).get(rid)
                if last_reset is None or last_reset < t:
                    if new_r is None:
                        new_r = dict(resets)
                    new_r[rid] = t

        final_f = new_f if new_f is not None else fulfilled
        added += sum(1 for r in newly if r.id in final_f)
        held = held_badges(tpl, run.view(), t) if tpl.badge_requirements else {}
        new_badge: BadgeRecord | None = None

        # 3. decisions
        if badge is None or _expired(badge, t):
            since = badge.get("expires_us") if badge is not None else None
            # Without a span to count in, only a new fulfillment can complete the template;
            # with one, a refreshed fulfillment can bring an aged-out requirement back.
            progressed = newly + refreshed if since is not None or tpl.complete_within_us else newly
            completing = [r for r in progressed if r.id in final_f]
            if completing and _complete(tpl, final_f, held, t, since):
                key_fields = _key_fields(event, completing)
                new_badge = _awarded_record(tpl, event, badge)
                if key_fields:
                    new_badge["key_fields"] = key_fields
                run.award(tpl, new_badge, tuple(r.id for r in completing), badge is not None)
        if new_badge is not None:
            pass  # awarded (or renewed) by this event
        elif (badge is not None and _holds(badge, t) and reset_any
              and not _complete(tpl, final_f, held, t, windowed=False)):
            new_badge = _revoked_record(badge, event)
            run.revoke(tpl, new_badge, tuple(p.id for p in tpens))
        elif badge is not None:  # awarded, or revoked (never awarded again by processing)
            # The awarding event applied again, re-emitted even once the badge is revoked: a
            # crash may have lost both decisions after the state holding them was written (the
            # revoke follows with its own event); the sink skips what it carried out.
            if new_f is None and new_r is None:
                seen_before = run.re_emit(tpl, badge, tuple(r.id for r in treqs)) or seen_before
            elif badge["event_id"] == eid or badge.get("revoked_by", {}).get("event_id") == eid:
                seen_before = True

        if new_f is None and new_r is None and new_badge is None:
            if seen_before:
                already_applied = True
            continue
        progress: TemplateProgress = {"fulfilled": final_f,
                                      "resets": new_r if new_r is not None else resets}
        if new_badge is not None:
            progress["badge"] = new_badge
        elif badge is not None:
            progress["badge"] = badge
        updates[uuid] = progress

    run.cascade()
    decisions = run.decisions
    if not updates:
        if identity is old_identity or state is None:
            return Outcome(state, decisions, False, len(reqs), len(pens), already_applied)
        return Outcome({**state, "learner": identity}, decisions, True, len(reqs), len(pens),
                       already_applied)
    new_state: LearnerState = {
        "v": STATE_VERSION,
        "learner": identity,
        "templates": {**_configured(templates_in, config), **updates},
    }
    return Outcome(new_state, decisions, True, len(reqs), len(pens), False, added)


def apply_manual(state: LearnerState | None, config: CompiledConfig, event: LearnerEvent) -> Outcome:
    """An operator's award or revoke (manual award and revoke), recorded like any decision of the engine, with
    ``cause: manual`` and the reason. A manual revoke is final for processing (a revoked badge
    is never awarded again by events); a manual award may follow a revoked or expired badge."""
    uuid = str(event.payload.get("template", ""))
    reason = str(event.payload.get("reason") or "")
    award = event.event_type == MANUAL_AWARD
    tpl = config.templates.get(uuid)
    if state is None:
        return Outcome(None, [], False, note=f"learner {event.learner.id} has no progress here: "
                       "their identity (name, e-mail) is unknown")
    if tpl is None or tpl.credly_state != "active":
        return Outcome(state, [], False, note=f"template {uuid} is not a configured template "
                       "that is active in Credly")
    t = event.time_us
    templates_in = state["templates"]
    run = _Pass(config, event, as_learner(state["learner"]), templates_in)
    progress = templates_in.get(uuid)
    badge = progress.get("badge") if progress is not None else None
    new_badge: BadgeRecord | None = None
    note = ""
    if badge is not None and run.re_emit(tpl, badge, ("manual",)):
        pass  # this command was applied before: its decision is re-emitted
    elif award and _holds(badge, t):
        note = f"learner {event.learner.id} already holds the badge of {uuid}"
    elif award:
        new_badge = {**_awarded_record(tpl, event, badge), "cause": "manual", "reason": reason}
        run.award(tpl, new_badge, ("manual",), badge is not None, reason)
    elif badge is not None and badge["status"] == "awarded":
        new_badge = {**_revoked_record(badge, event), "cause": "manual", "reason": reason}
        run.revoke(tpl, new_badge, ("manual",), reason)
    else:
        note = f"learner {event.learner.id} has no badge of {uuid} to revoke"
    if new_badge is not None:
        run.updates[uuid] = {
            "fulfilled": progress["fulfilled"] if progress is not None else {},
            "resets": progress["resets"] if progress is not None else {},
            "badge": new_badge,
        }
    run.cascade()
    if not run.updates:
        return Outcome(state, run.decisions, False, already_applied=bool(run.decisions), note=note)
    new_state: LearnerState = {**state, "templates": {**_configured(templates_in, config),
                                                      **run.updates}}
    return Outcome(new_state, run.decisions, True, note=note)


def desired_decision(state: LearnerState, uuid: str, organization: str) -> Decision | None:
    """The decision that brings Credly to what the learner's progress says of a template's
    badge now (its latest version), as if taken again: what the Credly sink reconciles to when a
    decision message was lost. None when the template has no badge record."""
    progress = state["templates"].get(uuid)
    badge = progress.get("badge") if progress is not None else None
    if badge is None:
        return None
    learner = as_learner(state["learner"])
    version = badge_version(badge)
    manual_reason = badge.get("reason", "") if badge.get("cause") == "manual" else ""
    key_fields = dict(badge.get("key_fields", {}))
    if badge["status"] == "awarded":
        assert progress is not None
        cause = ("manual",) if badge.get("cause") == "manual" else tuple(sorted(progress["fulfilled"]))
        return Award(learner, uuid, organization, _event_ref(badge), True, cause, key_fields,
                     badge.get("expires_at"), manual_reason, version > 1, version)
    revoked_by = badge.get("revoked_by") or badge
    return Revoke(learner, uuid, organization, _event_ref(revoked_by), True, (), key_fields, None,
                  manual_reason, False, version)


def rebuilt_versions(state: LearnerState, uuid: str, organization: str, after: int, before: int) -> list[Decision]:
    """The decisions of the versions of a template's badge after ``after`` and before ``before``,
    oldest first, rebuilt from the learner's record as if taken again: the Credly sink carries
    them out first when their notifications were lost (a crash between a progress write and the
    decisions' send), so that Credly sees every award and revocation as it happened: a
    revocation alone would take back nothing, a renewal alone would leave the revoked badge
    live. The record keeps its last ``EARLIER_KEPT`` versions; one it no longer knows is left out.
    """
    progress = state["templates"].get(uuid)
    badge = progress.get("badge") if progress is not None else None
    if badge is None or progress is None:
        return []
    learner = as_learner(state["learner"])
    fulfilled = tuple(sorted(progress["fulfilled"]))
    current = badge_version(badge)
    known: dict[int, Decision] = {}
    for entry in badge.get("earlier", ()):
        v, manual = entry["v"], entry.get("cause") == "manual"
        reason = entry.get("reason", "") if manual else ""
        key_fields = dict(entry.get("key_fields", {}))
        if entry["status"] == "awarded":
            known[v] = Award(learner, uuid, organization, _event_ref(entry["event"]), True,
                             ("manual",) if manual else fulfilled, key_fields, entry.get("expires_at"), reason,
                             v > 1, v)
        else:
            known[v] = Revoke(learner, uuid, organization, _event_ref(entry["event"]), True, (), key_fields, None,
                              reason, False, v)
    # records written before ``earlier``: a revocation keeps its award's event, a renewal its revocation's
    key_fields = dict(badge.get("key_fields", {}))
    if badge["status"] == "revoked" and current >= 2:
        known.setdefault(current - 1, Award(learner, uuid, organization, _event_ref(badge), True, fulfilled,
                                            key_fields, badge.get("expires_at"), "", current > 2, current - 1))
    if "after_revocation" in badge:
        known.setdefault(current - 1, Revoke(learner, uuid, organization, _event_ref(badge["after_revocation"]),
                                             True, (), key_fields, None, "", False, current - 1))
    desired = desired_decision(state, uuid, organization)
    if desired is not None:
        known[current] = desired
    return [known[v] for v in range(after + 1, before) if v in known]
