"""The progress agent's in-process hand-off to the Credly sink (issue 20): the sink's queue takes
an envelope's decisions a broker hop before their copy on the decisions topic; the copy stays
the durable one and is dropped only once the hand-off was carried out; a hand-off never
overtakes an earlier version of its badge or a forget request."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from badges.agents.sink import (HANDED_MAX, HANDED_OFF, HandedOff, PipelinedBatches, Sink, SinkItem, in_version_order,
                                with_missed_versions)
from badges.domain import issuance
from badges.domain.engine import Decision
from badges.domain.issuance import IssuanceRecord, Status



def decision(learner: int, template: str = "t1", version: int = 1, action: str = "award") -> Decision:
    return Decision.from_dict({
        "action": action, "template": template, "organization": "org", "version": version,
        "learner": {"id": learner, "username": f"u{learner}", "email": f"u{learner}@example.com", "name": "N"},
        "event": {"event_id": f"e{learner}", "event_type": "t", "time": "2026-01-01T00:00:00+00:00",
                  "time_us": 0, "origin": "test"},
    })


def handed(learner: int, **kw: Any) -> SinkItem:
    return SinkItem(0, HANDED_OFF, decision(learner, **kw))


def copy(learner: int, offset: int = 7, **kw: Any) -> SinkItem:
    return SinkItem(0, offset, decision(learner, **kw))


def test_a_copy_is_dropped_only_after_its_hand_off_was_carried_out() -> None:
    h = HandedOff()
    assert h.without_copies([handed(1)], rebalances=0) == [handed(1)]
    # not carried out (its batch failed, or was dropped): the copy is carried out
    assert h.without_copies([copy(1)], rebalances=0) == [copy(1)]
    h.carried_out([handed(1)])
    # another version, action or learner is not its copy
    others = [copy(1, version=2), copy(1, action="revoke"), copy(2)]
    assert h.without_copies([copy(1), *others], rebalances=0) == others
    # dropped once: a second delivery of the copy (a re-read after a crash) is carried out as before
    assert h.without_copies([copy(1)], rebalances=0) == [copy(1)]


def test_a_hand_off_and_its_copy_in_one_batch_are_carried_out_once() -> None:
    h = HandedOff()
    assert h.without_copies([handed(1), handed(2), copy(1), copy(3)], rebalances=0) == [handed(1), handed(2), copy(3)]


def test_hand_offs_are_forgotten_at_a_rebalance() -> None:
    h = HandedOff()
    h.without_copies([], rebalances=3)
    h.carried_out([handed(1)])
    # the partition may have moved and come back: its new owner's copies are carried out
    assert h.without_copies([copy(1)], rebalances=4) == [copy(1)]


async def test_the_queue_takes_a_hand_off_at_once_and_refuses_one_past_its_bound() -> None:
    processed: list[list[str]] = []
    acked: list[str] = []
    release = asyncio.Event()

    async def process(batch: list[str]) -> None:
        processed.append(batch)
        await release.wait()

    async def ack(event: str) -> None:
        acked.append(event)

    async def nothing() -> AsyncIterator[str]:  # an idle stream
        await asyncio.Event().wait()
        yield ""

    runner = PipelinedBatches(process, ack, batch_max=2, wait_s=0.0)
    task = asyncio.ensure_future(runner.run(nothing()))
    await asyncio.sleep(0)
    assert runner.offer("handed-1")
    await asyncio.sleep(0.01)
    assert processed == [["handed-1"]]  # taken at once, while the stream is idle
    assert runner.offer("handed-2") and runner.offer("handed-3")
    assert not runner.offer("handed-4")  # a full queue: the copy on the topic follows
    release.set()
    await asyncio.sleep(0.01)
    task.cancel()
    # in order; "acknowledged" after its batch like any event (the agent's ack skips a hand-off)
    assert processed == [["handed-1"], ["handed-2", "handed-3"]] and acked == ["handed-1", "handed-2", "handed-3"]


# --- a hand-off never overtakes an earlier version of its badge (the random kills' seed 604) ---

def sink_with(records: dict[int, dict[str, IssuanceRecord]]) -> Sink:
    """A Sink with only what ``_hand_offs_in_turn`` reads: the learners' issuance records."""
    sink = object.__new__(Sink)
    sink.load = lambda key: dict(records.get(int(key), {}))  # type: ignore[method-assign]  # no table here
    return sink


def test_a_hand_off_is_taken_only_as_the_next_step_of_a_settled_record() -> None:
    settled_v1 = IssuanceRecord(status=Status.ISSUED, applied_v=1, credly_id="b1")
    assert issuance.takes_hand_off(None, 1) and issuance.takes_hand_off(settled_v1, 2)
    assert not issuance.takes_hand_off(None, 2)  # v1 not carried out: it may still be on the topic
    assert not issuance.takes_hand_off(settled_v1, 1) and not issuance.takes_hand_off(settled_v1, 3)
    open_intent = issuance.plan_intent(IssuanceRecord(), "award", {"version": 1}, now=0.0)
    assert not issuance.takes_hand_off(open_intent, 1)  # a previous owner's call, outcome unknown
    assert not issuance.takes_hand_off(issuance.intent_done(open_intent), 1)  # still in flight
    assert not issuance.takes_hand_off(None, 0)  # unversioned


def test_a_revocation_handed_off_before_its_award_still_on_the_topic_waits_for_it() -> None:
    # After a takeover: the previous owner's award (v1) is still on the topic when the new
    # owner's progress agent hands off the revocation (v2). Taken first, the batch would revoke
    # nothing and then skip the award as carried out.
    batch = [handed(1, version=2, action="revoke"), copy(1, version=1), handed(2, version=1)]
    assert sink_with({})._hand_offs_in_turn(batch) == [copy(1, version=1), handed(2, version=1)]


def test_hand_offs_of_one_badge_in_one_batch_are_taken_in_turn() -> None:
    batch = [handed(1, version=2, action="revoke"), handed(1, version=3), handed(1, version=5)]
    settled = {1: {"t1": IssuanceRecord(status=Status.ISSUED, applied_v=1, credly_id="b1")}}
    assert sink_with(settled)._hand_offs_in_turn(batch) == batch[:2]


def test_a_batch_carries_each_badge_out_in_version_order_whatever_its_order() -> None:
    revoke2, award1, other = decision(1, version=2, action="revoke"), decision(1, version=1), decision(1, template="t2")
    retry = decision(1, version=0)  # retry-failed: unversioned, stays in its slot
    assert in_version_order([revoke2, other, award1, retry]) == [award1, other, revoke2, retry]
    # what the batch did before: the award, planned later in the batch, was not rebuilt before the revocation
    assert with_missed_versions([revoke2, award1], {}, None) == [revoke2, award1]


def test_no_hand_off_of_a_partition_overtakes_a_forget_request_sent_on_it() -> None:
    h = HandedOff()
    h.forget_sent(partition=3, learner_id=9, rebalances=0)
    assert h.waits_for_forget(3, rebalances=0) and not h.waits_for_forget(4, rebalances=0)
    h.forget_taken(3, 9)  # the sink took it from the topic
    assert not h.waits_for_forget(3, rebalances=0)
    h.forget_sent(partition=3, learner_id=9, rebalances=0)
    assert not h.waits_for_forget(3, rebalances=1)  # the partition may have moved: its new owner takes it


def test_a_forget_is_still_waited_for_when_the_remembered_hand_offs_are_forgotten() -> None:
    h = HandedOff()
    h.forget_sent(partition=3, learner_id=9, rebalances=0)
    h.keys.update((n, "t", 1, "award") for n in range(HANDED_MAX + 1))
    assert h.without_copies([], rebalances=0) == [] and not h.keys
    assert h.waits_for_forget(3, rebalances=0)
