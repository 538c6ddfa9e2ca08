"""The per-learner progress record: plain JSON data (stored via orjson in a Faust table).

Shape (``LearnerState``)::

    {"v": 1,
     "learner": {"id", "username", "email", "name", "time_us", "forgotten_us"?},
     "templates": {template_uuid: {
         "fulfilled": {req_id: {"event_id", "event_type", "time", "time_us", "origin",
                                "latest_us"}},
         "resets": {req_id: time_us of the latest penalty that targeted it},
         "badge": {"status": "awarded" | "revoked", "event_id", "event_type", "time",
                   "time_us", "origin", "key_fields"?, "revoked_by"?: {event record},
                   "expires_at"?, "expires_us"?, "cause"?: "manual", "reason"?,
                   "v": version, one more at each award or revocation,
                   "earlier"?: [{"v", "status", "event", ...}: the last versions before]}}},
     "at": the learner-events offset of the envelope that wrote the record}

A fulfillment keeps the event that fulfilled the requirement first (its ``time`` becomes
``issued_at``) and ``latest_us``, the newest matching event seen since: a penalty only undoes a
requirement when no matching event is newer than the penalty, which makes the final fulfilled
set independent of the order events arrive in (replays, several input topics).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from badges.domain.events import Learner, LearnerEvent

STATE_VERSION = 1


class LearnerIdentity(TypedDict):
    id: int
    username: str
    email: str
    name: str
    time_us: int  # time of the event the identity was last taken from
    forgotten_us: NotRequired[int]  # set by `badges learner forget` (``domain.forget``)


class EventRecord(TypedDict):
    event_id: str
    event_type: str
    time: str  # ce_time as sent
    time_us: int
    origin: str


class Fulfillment(EventRecord):
    latest_us: int


class BadgeRecord(TypedDict):
    status: Literal["awarded", "revoked"]
    event_id: str
    event_type: str
    time: str
    time_us: int
    origin: str
    key_fields: NotRequired[dict[str, str]]
    revoked_by: NotRequired[EventRecord]
    expires_at: NotRequired[str]  # expires_after: issued_at + the duration
    expires_us: NotRequired[int]
    cause: NotRequired[Literal["manual"]]  # the latest change came from an operator
    reason: NotRequired[str]  # the operator's reason
    v: NotRequired[int]  # how many times this badge changed (engine.badge_version)
    # The versions before this one, oldest first (at most engine.EARLIER_KEPT): the Credly sink
    # rebuilds from them the versions whose notifications were lost (engine.rebuilt_versions).
    earlier: NotRequired[list[EarlierVersion]]
    # Records written before ``earlier``: an award after a revocation kept that revocation's event.
    after_revocation: NotRequired[EventRecord]


class EarlierVersion(TypedDict):
    """One earlier version of a badge record: what its decision carried out."""

    v: int
    status: Literal["awarded", "revoked"]
    event: EventRecord  # the award's event, or the revocation's
    key_fields: NotRequired[dict[str, str]]
    expires_at: NotRequired[str]
    cause: NotRequired[Literal["manual"]]
    reason: NotRequired[str]


class TemplateProgress(TypedDict):
    fulfilled: dict[str, Fulfillment]
    resets: dict[str, int]
    badge: NotRequired[BadgeRecord]


class LearnerState(TypedDict):
    v: int
    learner: LearnerIdentity
    templates: dict[str, TemplateProgress]
    # The learner-events offset of the envelope that wrote this record last (its partition is the
    # learner's): which of two writes of the record is newer (``newer_of``).
    at: NotRequired[int]


def newer_of(current: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    """Which of two changelog writes of one learner's record a table recovery keeps.

    One worker writes a learner's record in the order of the envelopes it applies, so the
    incoming write is the newer one, except when it comes from a worker that lost the partition
    and does not know it yet (an evicted member still applying the envelopes it fetched: Kafka
    fences its offset commits, not its produce calls). Its write carries an older envelope's
    offset and would take the learner back in time: the recovery keeps the current record.
    Records without an offset (written before it existed) keep the last-write-wins order.
    """
    if current.get("at", -1) > incoming.get("at", -1):
        return current
    return incoming


def event_record(event: LearnerEvent) -> EventRecord:
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "time": event.time,
        "time_us": event.time_us,
        "origin": event.origin,
    }


def fulfillment(event: LearnerEvent) -> Fulfillment:
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "time": event.time,
        "time_us": event.time_us,
        "origin": event.origin,
        "latest_us": event.time_us,
    }


def new_identity(learner: Learner, time_us: int) -> LearnerIdentity:
    return {
        "id": learner.id,
        "username": learner.username,
        "email": learner.email,
        "name": learner.name,
        "time_us": time_us,
    }


def merge_identity(old: LearnerIdentity | None, learner: Learner, time_us: int) -> LearnerIdentity:
    """The latest identity: fields of the newest event win; a blank field never erases one.

    Returns ``old`` itself when nothing changes (callers test identity with ``is``).
    """
    if old is None:
        return new_identity(learner, time_us)
    if time_us <= old.get("forgotten_us", -1):
        return old  # an event from before the learner was forgotten (a replay) brings nothing back
    newer = time_us >= old["time_us"]
    updated: dict[str, Any] | None = None
    for name in ("username", "email", "name"):
        value = getattr(learner, name)
        if value and value != old[name] and (newer or not old[name]):
            if updated is None:
                updated = dict(old)
            updated[name] = value
    if newer and time_us != old["time_us"] and updated is not None:
        updated["time_us"] = time_us
    return old if updated is None else updated  # type: ignore[return-value]  # a copy of old with fields changed


def as_learner(identity: LearnerIdentity) -> Learner:
    return Learner(
        id=identity["id"],
        username=identity["username"],
        email=identity["email"],
        name=identity["name"],
    )


def template_progress(state: LearnerState | None, template_uuid: str) -> TemplateProgress | None:
    if state is None:
        return None
    return state["templates"].get(template_uuid)
