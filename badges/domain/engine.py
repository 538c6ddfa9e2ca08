"""The rules engine: one learner event applied to one learner's progress (SPEC §2).

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
from badges.domain.model import CompiledConfig, Penalty, Requirement
from badges.domain.progress import (
    STATE_VERSION,
    BadgeRecord,
    LearnerState,
    TemplateProgress,
    as_learner,
    event_record,
    fulfillment,
    merge_identity,
)

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


def _key_fields(event: LearnerEvent, reqs: list[Requirement]) -> dict[str, str]:
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


def apply_event(
    state: LearnerState | None, config: CompiledConfig, event: LearnerEvent
) -> Outcome:
    """Apply one event to one learner's progress. Never mutates ``state``."""
    reqs, pens = config.index.match(event.event_type, event.payload)
    old_identity = state["learner"] if state is not None else None
    if not reqs and not pens:
        if state is None:
            return Outcome(None, [], False)
        identity = merge_identity(old_identity, event.learner, event.time_us)
        if identity is old_identity:
            return Outcome(state, [], False)
        return Outcome({**state, "learner": identity}, [], True)

    # Touched templates, each with its matched requirements and penalties.
    touched: dict[str, tuple[list[Requirement], list[Penalty]]] = {}
    for req in reqs:
        touched.setdefault(req.template, ([], []))[0].append(req)
    for pen in pens:
        touched.setdefault(pen.template, ([], []))[1].append(pen)

    identity = merge_identity(old_identity, event.learner, event.time_us)
    templates_in = state["templates"] if state is not None else {}
    updates: dict[str, TemplateProgress] = {}
    decisions: list[Decision] = []
    already_applied = False
    added = 0
    t = event.time_us
    eid = event.event_id
    learner = as_learner(identity)

    for uuid, (treqs, tpens) in touched.items():
        tpl = config.templates[uuid]
        old = templates_in.get(uuid)
        fulfilled = old["fulfilled"] if old is not None else {}
        resets = old["resets"] if old is not None else {}
        badge: BadgeRecord | None = old.get("badge") if old is not None else None
        new_f: dict[str, Any] | None = None  # copy-on-write of fulfilled / resets
        new_r: dict[str, int] | None = None
        newly: list[Requirement] = []
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
        complete = tpl.is_complete(final_f)
        new_badge: BadgeRecord | None = None

        # 3. decisions
        if badge is None:
            completing = [r for r in newly if r.id in final_f]
            if completing and complete:
                key_fields = _key_fields(event, completing)
                new_badge = {"status": "awarded", **event_record(event)}  # type: ignore[typeddict-item]
                if key_fields:
                    new_badge["key_fields"] = key_fields
                decisions.append(
                    Award(learner, uuid, tpl.organization, _event_ref(new_badge), False,
                          tuple(r.id for r in completing), key_fields)
                )
        elif badge["status"] == "awarded" and reset_any and not complete:
            new_badge = {**badge, "status": "revoked", "revoked_by": event_record(event)}
            decisions.append(
                Revoke(learner, uuid, tpl.organization, _event_ref(event_record(event)), False,
                       tuple(p.id for p in tpens), dict(badge.get("key_fields", {})))
            )
        else:  # awarded, or revoked (never awarded again by processing): re-emission only
            unchanged = new_f is None and new_r is None
            if badge["event_id"] == eid:
                # The awarding event applied again, re-emitted even once the badge is revoked:
                # a crash may have lost both decisions after the state holding them was written
                # (the revoke follows with its own event); the sink skips what it carried out.
                seen_before = True
                if unchanged:
                    decisions.append(
                        Award(learner, uuid, tpl.organization, _event_ref(badge), True,
                              tuple(r.id for r in treqs), dict(badge.get("key_fields", {})))
                    )
            revoked_by = badge.get("revoked_by") if badge["status"] == "revoked" else None
            if revoked_by is not None and revoked_by["event_id"] == eid:
                seen_before = True
                if unchanged:
                    decisions.append(
                        Revoke(learner, uuid, tpl.organization, _event_ref(revoked_by), True,
                               tuple(p.id for p in tpens), dict(badge.get("key_fields", {})))
                    )

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

    if not updates:
        if identity is old_identity or state is None:
            return Outcome(state, decisions, False, len(reqs), len(pens), already_applied)
        return Outcome({**state, "learner": identity}, decisions, True, len(reqs), len(pens),
                       already_applied)
    new_state: LearnerState = {
        "v": STATE_VERSION,
        "learner": identity,
        "templates": {**templates_in, **updates},
    }
    return Outcome(new_state, decisions, True, len(reqs), len(pens), False, added)
