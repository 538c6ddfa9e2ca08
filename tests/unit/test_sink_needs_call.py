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


async def test_a_failing_batch_is_processed_again_until_it_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    # Faust's take_events acks a batch even when its consumer raises: the sink must not let go
    from badges.agents.sink import until_done

    calls: list[list[int]] = []

    async def flaky(items: list[int]) -> None:
        calls.append(list(items))
        if len(calls) < 3:
            raise RuntimeError("broker hiccup")

    await until_done(flaky, [1, 2], stop=lambda: False, first_wait_s=0)
    assert calls == [[1, 2]] * 3
    assert caplog.text.count("retrying") == 2


async def test_a_failing_batch_is_given_up_only_when_the_worker_stops() -> None:
    from badges.agents.sink import until_done

    async def broken(items: list[int]) -> None:
        raise RuntimeError("still broken")

    with pytest.raises(RuntimeError):
        await until_done(broken, [1], stop=lambda: True, first_wait_s=0)


def test_stale_intents_are_those_left_pending_long_enough_on_owned_partitions() -> None:
    import orjson

    from badges.agents.sink import stale_intents
    from badges.wire.envelope import learner_partition

    def award(learner: int, template: str) -> dict:
        return {"action": "award", "learner": {"id": learner, "username": "u", "email": "u@example.com", "name": "U"},
                "template": template, "organization": "org",
                "event": {"event_id": "e", "event_type": "t", "time": "2024-01-01T00:00:00+00:00", "time_us": 1,
                          "origin": "o"}}

    n = 4
    learners = [1, 2, 3, 4, 5, 6, 7, 8]
    owned = {learner_partition(learners[0], n)}
    records = []
    for lid in learners:
        records.append((str(lid).encode(), orjson.dumps({
            "old": {"pending": [award(lid, "old")], "intent_at": 100.0},
            "new": {"pending": [award(lid, "new")], "intent_at": 200.0},
            "done": {"status": "issued"},
        })))
    records.append((b"not-a-learner", b"{}"))
    work, younger = stale_intents(records, owned, n, older_than=150.0)
    mine = [lid for lid in learners if learner_partition(lid, n) in owned]
    assert younger == len(mine)  # the "new" intents: not stale yet
    assert sorted(int(k) for k in work) == mine
    for key, (partition, decisions) in work.items():
        assert partition in owned
        assert [(d.action, d.template, d.learner.id) for d in decisions] == [("award", "old", int(key))]


@pytest.mark.parametrize("status", ["issued", "revoked", "revoke_failed"])
def test_a_renewal_is_issued_once_after_an_expired_or_revoked_badge(status: str) -> None:
    # SPEC §8: a new completion after the expiry, or a manual award after a revocation
    earlier = {"status": status, "decided_by": "ev-1"}
    assert needs_call(earlier, "award", renewal_of="ev-2")
    assert not needs_call({"status": "issued", "decided_by": "ev-2"}, "award", renewal_of="ev-2")
    assert not needs_call(earlier, "award")  # the earlier award delivered again: still skipped
