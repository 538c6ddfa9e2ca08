"""The issuance record of one (learner, template): what the provider (Credly or Accredible) did.

The Credly sink (``agents/sink.py``) is the only writer; it does the I/O (load, call, save) and
every change of a record is one of the pure transitions below, so the state machine can be read,
and tested, on its own:

    (none) --plan_intent--> intent: in flight --issued--------> ISSUED ----revoked---> REVOKED
                                              \\-issue_failed--> FAILED                    ^
              ISSUED --plan_intent(revoke)--> \\-revoke_failed-> REVOKE_FAILED -(retry)---/
              (none) / FAILED --not_issued--> REVOKED   (nothing in the provider to take back)

Three facts make it exactly once:

* **The intent is durable before the call.** ``plan_intent`` marks an award ``in_flight`` and keeps
  the decisions in ``pending``; the sink flushes that write before it calls the provider. A record
  found ``in_flight`` (or ``outcome_unknown``) after a crash means "the provider may hold the
  badge": the next try looks it up before any new POST.
* **Only outcomes decide whether to call** (``needs_call``), never intents: the batch that recorded
  an award's and a revoke's intents is delivered again after a crash, and its award must still be
  issued before the revoke takes it back.
* **Versions.** Each decision carries the version of the badge record in the progress table that
  it carries out (award v1, revoke v2, a renewal v3, ...). ``applied_v`` is the highest version
  carried out; a lower or equal one is a duplicate whatever the status says.

The stored form is a JSON object (``to_dict`` / ``from_dict``); fields this version does not
know are kept as they are, so that a record written by a newer worker survives a rollback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, Literal

Action = Literal["award", "revoke"]


class Status(StrEnum):
    """The outcome last recorded; a record without one has never had an outcome."""

    ISSUED = "issued"
    FAILED = "failed"  # an award that failed after all retries (``badges retry-failed``)
    REVOKED = "revoked"  # taken back, or never issued when the revocation came
    REVOKE_FAILED = "revoke_failed"


@dataclass(frozen=True)
class IssuanceRecord:
    """One (learner, template)'s issuance record; every field is optional in the stored form."""

    status: Status | None = None
    applied_v: int = 0  # the highest decision version carried out
    # The intent: an award's call may have been made and its outcome not recorded yet.
    in_flight: bool = False
    desired: Literal["awarded", "revoked"] | None = None
    pending: tuple[dict[str, Any], ...] = ()  # the decisions of the intent (Decision.to_dict)
    intent_at: float | None = None  # epoch seconds
    # A call ended without knowing whether the provider stored the badge (timeout, 5xx).
    outcome_unknown: bool = False
    # The provider's badge (Credly badge id / Accredible credential id) and its state.
    credly_id: str | None = None
    credly_state: str | None = None
    reconciled: bool = False  # found by a lookup instead of issued by this call
    attempts: int = 0
    last_error: str | None = None
    error_type: str | None = None
    # The award carried out: whom, for what, when.
    organization: str | None = None
    learner: dict[str, Any] | None = None
    badge_uuid: str | None = None
    completed_at: str | None = None
    decided_by: str | None = None  # the event id of the award
    decided_by_type: str | None = None
    expires_at: str | None = None
    cause: str | None = None  # "manual" for an operator's award or revocation
    reason: str | None = None
    issued_at: str | None = None
    revoked_by: str | None = None  # the event id of the revocation
    updated: str | None = None
    forgotten: bool = False  # the learner's identity was erased (``badges learner forget``)
    other: dict[str, Any] = field(default_factory=dict)  # fields this version does not know

    # --- stored form ---------------------------------------------------------------------------

    @staticmethod
    def from_dict(data: dict[str, Any]) -> IssuanceRecord:
        known = {k: v for k, v in data.items() if k in _FIELDS and v is not None}
        if "status" in known:
            known["status"] = Status(known["status"])
        if "pending" in known:
            known["pending"] = tuple(known["pending"])
        other = {k: v for k, v in data.items() if k not in _FIELDS}
        return IssuanceRecord(**known, other=other)

    def to_dict(self) -> dict[str, Any]:
        """The stored form: only fields that differ from their defaults, plus unknown ones."""
        out: dict[str, Any] = dict(self.other)
        for f in fields(self):
            if f.name == "other":
                continue
            value = getattr(self, f.name)
            if value == _DEFAULTS[f.name]:
                continue
            if f.name == "status":
                value = str(value)
            elif f.name == "pending":
                value = list(value)
            out[f.name] = value
        return out

    @property
    def may_hold_badge(self) -> bool:
        """Whether the provider may hold a badge this record does not know the id of."""
        return self.credly_id is None and (self.in_flight or self.outcome_unknown) and self.learner is not None


_FIELDS = {f.name for f in fields(IssuanceRecord)} - {"other"}
_DEFAULTS = {k: v for k, v in asdict(IssuanceRecord()).items() if k != "other"}


# --- deciding ----------------------------------------------------------------------------------

def needs_call(rec: IssuanceRecord | None, action: Action, renewal_of: str | None = None,
               version: int = 0) -> bool:
    """Whether the provider must still be called for an award/revoke, from the outcomes recorded.

    A revoke carried out (``REVOKED``) or failed makes every later award of the badge a no-op,
    except a renewal (``renewal_of``: its event id; an award after an expiry or a manual award
    after a revocation) not carried out yet.
    """
    if rec is None:
        return True
    if version and rec.applied_v >= version:
        return False  # this version, or a later one, has been carried out
    if action == "award":
        if renewal_of is not None and rec.decided_by != renewal_of:
            return True
        return rec.status not in (Status.ISSUED, Status.REVOKED, Status.REVOKE_FAILED)
    return rec.status is not Status.REVOKED


def previous_missing(rec: IssuanceRecord | None, version: int) -> bool:
    """Whether a decision of version ``version`` comes before the one it follows (``version - 1``)
    was carried out: that one's notification was lost (a crash after the progress write). A
    revocation alone would take back nothing, a renewal alone would leave the revoked badge live:
    the missing version is carried out first, as it happened."""
    return version >= 2 and (rec.applied_v if rec is not None else 0) < version - 1


def takes_hand_off(rec: IssuanceRecord | None, version: int) -> bool:
    """Whether a decision handed to the sink in process, ahead of its copy on the decisions topic,
    may be carried out at once: only as the next step of a settled record, every lower version
    carried out and no intent open.

    Otherwise a lower version may still be on its way on the topic (after a takeover, the
    previous owner's decisions not read yet) or its outcome is unknown, and carrying this one out
    first would reorder the badge's history: a revocation before the award it takes back finds
    nothing to take back, and the award then counts as carried out. The copy on the topic is
    carried out in its turn instead, as without a hand-off. An unversioned decision (0) is never
    taken this way."""
    if version < 1:
        return False
    if rec is None:
        return version == 1
    return rec.applied_v == version - 1 and not rec.pending and not rec.in_flight


# --- the intent --------------------------------------------------------------------------------

def plan_intent(rec: IssuanceRecord, action: Action, decision: dict[str, Any], now: float) -> IssuanceRecord:
    """The record with this decision added to its intent (written and flushed before the call)."""
    return replace(
        rec,
        in_flight=rec.in_flight or action == "award",
        desired="awarded" if action == "award" else "revoked",
        pending=(*rec.pending, decision),
        intent_at=now,
    )


def intent_done(rec: IssuanceRecord) -> IssuanceRecord:
    """The record once every decision of its intent has an outcome recorded."""
    return replace(rec, pending=(), intent_at=None)


def applied(rec: IssuanceRecord, version: int) -> IssuanceRecord:
    """Version ``version`` carried out, whatever its outcome (a failure is re-driven by
    ``retry-failed``, not by delivering the decision again)."""
    return replace(rec, applied_v=version) if version > rec.applied_v else rec


# --- awards ------------------------------------------------------------------------------------

def start_award(rec: IssuanceRecord, *, organization: str, learner: dict[str, Any], badge_uuid: str,
                completed_at: str, decided_by: str, decided_by_type: str, expires_at: str | None,
                manual: bool, reason: str, renewal: bool) -> IssuanceRecord:
    """What an award is for, recorded with its outcome. A renewal forgets the earlier badge's id:
    that badge (expired or revoked) stays as it was and a new one is issued."""
    return replace(
        rec,
        credly_id=None if renewal and rec.decided_by != decided_by else rec.credly_id,
        organization=organization, learner=learner, badge_uuid=badge_uuid, completed_at=completed_at,
        decided_by=decided_by, decided_by_type=decided_by_type, expires_at=expires_at,
        cause="manual" if manual else None, reason=reason or None,
    )


def issued(rec: IssuanceRecord, *, badge_id: str, state: str | None, reconciled: bool, attempts: int,
           now: str) -> IssuanceRecord:
    return replace(rec, status=Status.ISSUED, credly_id=badge_id, credly_state=state, reconciled=reconciled,
                   attempts=rec.attempts + attempts, in_flight=False, outcome_unknown=False,
                   last_error=None, error_type=None, issued_at=now, updated=now)


def issue_failed(rec: IssuanceRecord, *, error: str | None, error_type: str | None, attempts: int,
                 outcome_unknown: bool, now: str) -> IssuanceRecord:
    """An award that failed after all retries; ``outcome_unknown`` when the provider may hold it."""
    return replace(rec, status=Status.FAILED, last_error=error, error_type=error_type,
                   attempts=rec.attempts + attempts, in_flight=False, outcome_unknown=outcome_unknown,
                   updated=now)


# --- revocations -------------------------------------------------------------------------------

def start_revoke(rec: IssuanceRecord, *, revoked_by: str, reason: str, now: str) -> IssuanceRecord:
    rec = replace(rec, revoked_by=revoked_by, updated=now)
    return replace(rec, cause="manual", reason=reason) if reason else rec


def not_issued(rec: IssuanceRecord) -> IssuanceRecord:
    """A revocation of a badge the provider never held: nothing to take back."""
    return replace(rec, status=Status.REVOKED, credly_state=None, in_flight=False, outcome_unknown=False)


def revoked(rec: IssuanceRecord, *, badge_id: str, state: str | None, attempts: int) -> IssuanceRecord:
    return replace(rec, status=Status.REVOKED, credly_id=badge_id, credly_state=state or "revoked",
                   attempts=rec.attempts + attempts, in_flight=False, outcome_unknown=False,
                   last_error=None, error_type=None)


def revoke_failed(rec: IssuanceRecord, *, badge_id: str, error: str | None, error_type: str | None,
                  attempts: int) -> IssuanceRecord:
    return replace(rec, status=Status.REVOKE_FAILED, credly_id=badge_id, last_error=error,
                   error_type=error_type, attempts=rec.attempts + attempts)


def call_refused(rec: IssuanceRecord, action: Action, *, error: str, error_type: str, now: str) -> IssuanceRecord:
    """The call could not be made at all (no API token for the organization)."""
    if action == "award":
        return replace(rec, status=Status.FAILED, last_error=error, error_type=error_type, updated=now,
                       in_flight=False)
    return replace(rec, status=Status.REVOKE_FAILED, last_error=error, error_type=error_type, updated=now)


# --- recovery ----------------------------------------------------------------------------------

def newer_records(current: dict[str, dict[str, Any]], incoming: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Which of two changelog writes of one learner's records (stored form, by template) a table
    recovery keeps, template by template.

    The sink writes a record's versions in order (``applied`` only goes up), so the incoming
    write is the newer one, except when it comes from a worker that lost the partition and does
    not know it yet (an evicted member finishing the batch it had: Kafka fences its offset
    commits, not its produce calls). Its write carries a lower ``applied_v`` (or the same one
    and fewer provider ``attempts``; both only go up), or the identity a ``forget`` erased
    since: the recovery keeps the current record. A template that only the current write has
    (the evicted worker's copy is older than the template's first decision) is kept too: the
    sink never removes one. A stale copy that differs only in its intent (same version and
    attempts) still wins, as the last write; at worst a call's "look the badge up first" is
    lost, and the provider's refusal of a duplicate (Credly's 422, then a lookup) covers it.
    """
    merged = dict(current)
    for template, new in incoming.items():
        old = current.get(template)
        if old is None or not _supersedes(IssuanceRecord.from_dict(old), IssuanceRecord.from_dict(new)):
            merged[template] = new
    return merged


def _supersedes(old: IssuanceRecord, new: IssuanceRecord) -> bool:
    if (old.applied_v, old.attempts) != (new.applied_v, new.attempts):
        return (old.applied_v, old.attempts) > (new.applied_v, new.attempts)
    return old.forgotten and not new.forgotten
