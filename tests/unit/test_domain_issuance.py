"""The issuance record's state machine (badges/domain/issuance.py), without the sink's I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from badges.domain import issuance
from badges.domain.issuance import IssuanceRecord, Status


def test_the_stored_form_round_trips_and_keeps_fields_it_does_not_know() -> None:
    stored = {"status": "issued", "applied_v": 1, "credly_id": "b-1", "in_flight": False, "cause": None,
              "learner": {"id": 7, "username": "u", "email": "u@example.com", "name": "U"},
              "pending": [{"action": "award"}], "intent_at": 12.5, "from_a_newer_worker": {"x": 1}}
    rec = IssuanceRecord.from_dict(stored)
    assert rec.status is Status.ISSUED and rec.pending == ({"action": "award"},)
    assert rec.other == {"from_a_newer_worker": {"x": 1}}
    assert rec.to_dict() == {k: v for k, v in stored.items() if k not in ("in_flight", "cause")}
    assert IssuanceRecord.from_dict(rec.to_dict()) == rec
    assert IssuanceRecord().to_dict() == {}


def test_an_intent_marks_an_award_in_flight_until_its_outcome() -> None:
    rec = issuance.plan_intent(IssuanceRecord(), "award", {"action": "award"}, now=1.0)
    assert rec.in_flight and rec.desired == "awarded" and rec.intent_at == 1.0
    assert issuance.needs_call(rec, "award")  # only outcomes count, never intents
    rec = issuance.plan_intent(rec, "revoke", {"action": "revoke"}, now=2.0)
    assert rec.in_flight and rec.desired == "revoked" and len(rec.pending) == 2
    rec = issuance.issued(rec, badge_id="b", state="pending", reconciled=False, attempts=1, now="t")
    assert not rec.in_flight and rec.status is Status.ISSUED
    rec = issuance.intent_done(rec)
    assert rec.pending == () and rec.intent_at is None


def test_a_failed_issue_whose_outcome_is_unknown_makes_a_revocation_look_it_up() -> None:
    rec = issuance.start_award(IssuanceRecord(), organization="o", learner={"id": 1}, badge_uuid="u",
                               completed_at="t", decided_by="e1", decided_by_type="x", expires_at=None,
                               manual=False, reason="", renewal=False)
    rec = issuance.issue_failed(rec, error="timeout", error_type="CredlyUnavailable", attempts=3,
                                outcome_unknown=True, now="t")
    assert rec.status is Status.FAILED and rec.attempts == 3 and rec.may_hold_badge
    assert not issuance.not_issued(rec).may_hold_badge


def test_a_renewal_forgets_the_earlier_badge_and_a_redelivered_award_does_not() -> None:
    held = IssuanceRecord(status=Status.REVOKED, credly_id="b-1", decided_by="e1")
    args = dict(organization="o", learner={"id": 1}, badge_uuid="u", completed_at="t", decided_by_type="x",
                expires_at=None, manual=False, reason="")
    assert issuance.start_award(held, decided_by="e2", renewal=True, **args).credly_id is None  # type: ignore[arg-type]  # the shared keywords
    assert issuance.start_award(held, decided_by="e1", renewal=True, **args).credly_id == "b-1"  # type: ignore[arg-type]  # the shared keywords


def test_a_refused_call_is_a_failure_of_its_kind() -> None:
    award = issuance.call_refused(IssuanceRecord(in_flight=True), "award", error="no token", error_type="MissingToken", now="t")
    assert award.status is Status.FAILED and not award.in_flight
    assert issuance.call_refused(IssuanceRecord(), "revoke", error="e", error_type="x", now="t").status is Status.REVOKE_FAILED


# --- a model: the sink's steps on one record, crashes anywhere, decisions redelivered ----------

@dataclass
class Provider:
    """What the provider holds: badge id -> (the completion's event id, state)."""

    badges: dict[str, tuple[str, str]] = field(default_factory=dict)

    def find(self, event_id: str | None) -> str | None:
        return next((b for b, (e, _) in self.badges.items() if e == event_id), None)


def carry_out(stored: IssuanceRecord, version: int, provider: Provider, crash_at: str | None,
              rebuild_missing: bool = True) -> IssuanceRecord:
    """The sink's sequence for one decision (intent written, call, outcome, applied); returns
    what is stored when the process dies at ``crash_at`` (or when it is done). Odd versions
    award (v3 and later: a renewal, with its own completion event), even ones revoke."""
    act: issuance.Action = "award" if version % 2 else "revoke"
    event = f"e{version}"
    renewal = event if act == "award" and version > 1 else None
    if rebuild_missing and issuance.previous_missing(stored, version):
        # the sink's with_missed_versions: every version before not applied yet, rebuilt from the
        # progress record, which keeps the badge's earlier versions (engine.rebuilt_versions)
        for missing in range(stored.applied_v + 1, version):
            stored = carry_out(stored, missing, provider, None, rebuild_missing=False)
    if not issuance.needs_call(stored, act, renewal, version):
        return stored
    unknown = stored.in_flight or stored.outcome_unknown
    stored = issuance.plan_intent(stored, act, {"action": act, "version": version}, now=0.0)
    if crash_at == "after_intent":
        return stored
    rec = stored
    if act == "award":
        rec = issuance.start_award(rec, organization="o", learner={"id": 1}, badge_uuid="u", completed_at="t",
                                   decided_by=event, decided_by_type="x", expires_at=None, manual=False,
                                   reason="", renewal=renewal is not None)
        badge = provider.find(event) if unknown else None  # a retried call looks the badge up first
        if badge is None:
            badge = f"b{len(provider.badges) + 1}"
            provider.badges[badge] = (event, "accepted")
        if crash_at == "after_call":
            return stored
        rec = issuance.issued(rec, badge_id=badge, state="accepted", reconciled=unknown, attempts=1, now="t")
    else:
        rec = issuance.start_revoke(rec, revoked_by=event, reason="", now="t")
        badge = rec.credly_id if rec.credly_id is not None else (
            provider.find(rec.decided_by) if rec.may_hold_badge else None)
        if badge is None:
            rec = issuance.not_issued(rec)
        else:
            provider.badges[badge] = (provider.badges[badge][0], "revoked")
            if crash_at == "after_call":
                return stored
            rec = issuance.revoked(rec, badge_id=badge, state="revoked", attempts=1)
    return issuance.intent_done(issuance.applied(rec, version))


@settings(max_examples=400, deadline=None)
@given(n=st.integers(min_value=1, max_value=5), data=st.data())
def test_redelivered_lost_and_crashed_decisions_end_as_one_clean_pass(n: int, data: st.DataObject) -> None:
    # Each version's notification is delivered in order: crashes (after the intent, after the
    # call) make the sink get it again, since its offset is not committed past a batch not
    # carried out; then it is carried out, delivered twice, or lost (a crash between the progress
    # write and the send), any number in a row (the progress record keeps the badge's earlier
    # versions). The reconciliation then carries out the latest version, as the sink does after
    # every assignment.
    provider, rec = Provider(), IssuanceRecord()
    for version in range(1, n + 1):
        crashes = data.draw(st.lists(st.sampled_from(["after_intent", "after_call"]), max_size=2))
        for crash in crashes:
            rec = carry_out(rec, version, provider, crash)
        fate = data.draw(st.sampled_from(["once", "twice", "lost"]))
        for _ in range({"once": 1, "twice": 2, "lost": 0}[fate]):
            rec = carry_out(rec, version, provider, None)
    rec = carry_out(rec, n, provider, None)  # the reconciliation: the desired (latest) version
    awards = range(1, n + 1, 2)
    assert sorted(e for e, _ in provider.badges.values()) == sorted(f"e{v}" for v in awards)  # each once
    assert {e: s for e, s in provider.badges.values()} == {
        f"e{v}": "revoked" if v + 1 <= n else "accepted" for v in awards}
    assert rec.applied_v == n and rec.status is (Status.REVOKED if n % 2 == 0 else Status.ISSUED)
    assert rec.pending == () and not rec.in_flight
