"""Which decisions the Credly sink still carries out, from the issuance record (outcomes only)."""

from __future__ import annotations

import pytest

from badges.agents.sink import needs_call


def test_a_fresh_badge_is_awarded_and_revoked() -> None:
    assert needs_call(None, "award") and needs_call({}, "award")
    assert needs_call(None, "revoke")


def test_intents_of_a_redelivered_batch_do_not_skip_its_award() -> None:
    # a batch recorded the intents of an award and the revoke after it, then the worker died:
    # delivered again, the award is still issued (the revoke follows), as without the crash
    intents = {"in_flight": True, "desired": "revoked"}
    assert needs_call(intents, "award")
    assert needs_call(intents, "revoke")


@pytest.mark.parametrize("status", ["issued", "revoked", "revoke_failed"])
def test_an_award_carried_out_or_taken_back_is_never_issued_again(status: str) -> None:
    assert not needs_call({"status": status}, "award")


def test_a_failed_award_is_retried_and_a_revoke_happens_once() -> None:
    assert needs_call({"status": "failed"}, "award")
    assert needs_call({"status": "issued"}, "revoke")
    assert needs_call({"status": "revoke_failed"}, "revoke")
    assert not needs_call({"status": "revoked"}, "revoke")
