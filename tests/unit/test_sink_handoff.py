"""The progress agent's in-process hand-off to the Credly sink (issue 20): the sink's queue takes
an envelope's decisions a broker hop before their copy on the decisions topic; the copy stays
the durable one and is dropped only once the hand-off was carried out."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from badges.agents.sink import HANDED_OFF, HandedOff, PipelinedBatches, SinkItem
from badges.domain.engine import Decision



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
