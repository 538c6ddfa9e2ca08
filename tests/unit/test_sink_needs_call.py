"""Which decisions the Credly sink still carries out, from the issuance record (outcomes only)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from badges.agents.sink import needs_call as _needs_call
from badges.domain.issuance import IssuanceRecord


def needs_call(rec: dict[str, Any] | None, *args: Any, **kwargs: Any) -> bool:  # the records as stored
    return _needs_call(IssuanceRecord.from_dict(rec) if rec is not None else None, *args, **kwargs)


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


async def test_a_poison_decision_is_set_aside_and_the_rest_of_its_batch_carried_out() -> None:
    """One decision that fails every time (a bug its records trigger) must not hold every learner
    of its partitions: the batch is carried out learner by learner, then one by one, and only
    the decision that fails alone is set aside; each learner's decisions keep their order."""
    from badges.agents.sink import POISON_AFTER, until_done

    done: list[str] = []
    aside: list[tuple[str, str]] = []

    async def process(items: list[str]) -> None:
        if "b2" in items:
            raise KeyError("b2's records")
        done.extend(items)

    async def set_aside(item: str, exc: BaseException) -> None:
        aside.append((item, type(exc).__name__))

    await until_done(process, ["a1", "b1", "c1", "b2", "a2", "b3"], stop=lambda: False, set_aside=set_aside,
                     key_of=lambda item: item[0], first_wait_s=0)
    assert aside == [("b2", "KeyError")]
    assert done == ["a1", "a2", "b1", "b3", "c1"]  # by learner; b's in order, around the poison one
    assert POISON_AFTER >= 2  # a one-off failure is retried as a whole first


async def test_the_brokers_errors_never_set_a_decision_aside() -> None:
    from aiokafka.errors import KafkaTimeoutError

    from badges.agents.sink import POISON_AFTER, until_done

    calls = 0

    async def process(items: list[str]) -> None:
        nonlocal calls
        calls += 1
        if calls <= 3 * POISON_AFTER:
            raise KafkaTimeoutError() if calls % 2 else ConnectionResetError("broker gone")
    aside: list[str] = []

    async def set_aside(item: str, exc: BaseException) -> None:
        aside.append(item)

    await until_done(process, ["a1"], stop=lambda: False, set_aside=set_aside, first_wait_s=0)
    assert aside == [] and calls == 3 * POISON_AFTER + 1


def _state(learner: int, template: str, status: str, version: int) -> dict:
    event = {"event_id": f"e-{learner}", "event_type": "t", "time": "2024-01-01T00:00:00+00:00",
             "time_us": 1, "origin": "o"}
    badge = {"status": status, **event, "v": version}
    if status == "revoked":
        badge["revoked_by"] = {**event, "event_id": f"r-{learner}"}
    return {"v": 1, "learner": {"id": learner, "username": "u", "email": "u@example.com", "name": "U", "time_us": 1},
            "templates": {template: {"fulfilled": {"req": {**event, "latest_us": 1}}, "resets": {}, "badge": badge}}}


def test_reconciliation_finds_every_badge_version_not_applied_on_owned_partitions() -> None:
    import orjson

    from badges.agents.sink import reconcile_work
    from badges.kafka.offsets import applied_offset_key
    from badges.wire.envelope import learner_partition

    config = SimpleNamespace(templates={"T": SimpleNamespace(organization="org")})
    n = 4
    learners = list(range(1, 13))
    owned = {learner_partition(learners[0], n)}
    progress = [(str(lid).encode(), orjson.dumps(_state(lid, "T", "awarded" if lid % 3 else "revoked", 1 if lid % 3 else 2)))
                for lid in learners]
    progress += [(applied_offset_key(0), b"17"), (b"99", orjson.dumps({"v": 1, "learner": {}, "templates": {}}))]
    issuance: dict[bytes, dict[str, dict[str, Any]]] = {
        b"1": {"T": {"status": "issued", "applied_v": 1}},  # applied
        b"2": {"T": {"in_flight": True}},  # an intent, its outcome never recorded
        b"3": {"T": {"status": "issued", "applied_v": 1}},  # revoked (v2) since: to carry out
    }
    records = {k: {t: IssuanceRecord.from_dict(r) for t, r in v.items()} for k, v in issuance.items()}
    work = reconcile_work(progress, lambda k: records.get(k, {}), owned, n, config)  # type: ignore[arg-type]  # a namespace for the config
    mine = [lid for lid in learners if learner_partition(lid, n) in owned]
    expected = {lid for lid in mine if lid != 1}
    assert {int(k) for k in work} == expected
    for key, (partition, decisions) in work.items():
        d = decisions[-1]
        lid = int(key)
        assert partition in owned and d.template == "T" and d.organization == "org"
        got = [(x.action, x.version) for x in decisions]
        if lid % 3:
            assert got == [("award", 1)]
        elif key == b"3":  # its award (v1) was applied: only the revocation is left
            assert got == [("revoke", 2)]
        else:  # never applied: issued, then revoked, as it happened
            assert got == [("award", 1), ("revoke", 2)]


def test_a_version_applied_is_never_carried_out_again_and_a_later_one_is() -> None:
    assert not needs_call({"status": "issued", "applied_v": 1}, "award", version=1)
    assert not needs_call({"status": "revoked", "applied_v": 2}, "award", version=1)  # superseded
    assert needs_call({"status": "issued", "applied_v": 1}, "revoke", version=2)
    assert needs_call({"status": "revoked", "applied_v": 2, "decided_by": "a"}, "award", renewal_of="b", version=3)


@pytest.mark.parametrize("status", ["issued", "revoked", "revoke_failed"])
def test_a_renewal_is_issued_once_after_an_expired_or_revoked_badge(status: str) -> None:
    # SPEC §8: a new completion after the expiry, or a manual award after a revocation
    earlier = {"status": status, "decided_by": "ev-1"}
    assert needs_call(earlier, "award", renewal_of="ev-2")
    assert not needs_call({"status": "issued", "decided_by": "ev-2"}, "award", renewal_of="ev-2")
    assert not needs_call(earlier, "award")  # the earlier award delivered again: still skipped


def _revoke_of(state: dict, template: str, version: int):
    from badges.domain.engine import desired_decision

    d = desired_decision(state, template, "org")  # type: ignore[arg-type]  # a plain dict for the progress record
    assert d is not None and d.action == "revoke" and d.version == version
    return d


def test_a_revocation_whose_award_message_was_lost_is_preceded_by_the_award() -> None:
    # the award's message was lost in a crash after the progress write; the revocation arrives
    # through the topic before any reconciliation: the badge is issued, then revoked
    from badges.agents.sink import with_missed_versions

    state = _state(7, "T", "revoked", 2)
    revoke = _revoke_of(state, "T", 2)
    got = with_missed_versions([revoke], {}, state)
    assert [(d.action, d.version) for d in got] == [("award", 1), ("revoke", 2)]
    assert got[0].event.event_id == "e-7" and got[1].event.event_id == "r-7"


def test_a_revocation_whose_award_was_applied_or_is_in_the_batch_stays_alone() -> None:
    from badges.agents.sink import with_missed_versions

    state = _state(7, "T", "revoked", 2)
    revoke = _revoke_of(state, "T", 2)
    applied = {"T": IssuanceRecord.from_dict({"status": "issued", "applied_v": 1})}
    assert with_missed_versions([revoke], applied, state) == [revoke]
    award = with_missed_versions([revoke], {}, state)[0]
    assert with_missed_versions([award, revoke], {}, state) == [award, revoke]
    later = _state(7, "T", "revoked", 4)  # the progress moved on: v4 is reconciled on its own
    assert with_missed_versions([revoke], {}, later) == [revoke]
    assert with_missed_versions([revoke], {}, None) == [revoke]
