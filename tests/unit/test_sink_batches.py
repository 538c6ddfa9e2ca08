"""The sink's batching: decisions are taken while the previous batch is carried out, and each is
acknowledged only once its batch is done (issue 20)."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from badges.agents.sink import PipelinedBatches


async def stream_of(items: list[int], gap_s: float = 0.0) -> AsyncIterator[int]:
    for item in items:
        if gap_s:
            await asyncio.sleep(gap_s)
        yield item
    await asyncio.Event().wait()  # a stream never ends by itself


async def test_a_backlog_is_carried_out_in_full_batches_taken_during_the_previous_one() -> None:
    batches: list[list[int]] = []
    acked: list[int] = []

    async def process(batch: list[int]) -> None:
        # every event acknowledged so far belongs to a batch already carried out
        assert all(a not in batch for a in acked)
        batches.append(batch)
        await asyncio.sleep(0.02)  # the broker round trips and Credly calls of a batch

    async def ack(event: int) -> None:
        assert any(event in b for b in batches)
        acked.append(event)

    runner = PipelinedBatches(process, ack, batch_max=10, wait_s=0.001)
    task = asyncio.ensure_future(runner.run(stream_of(list(range(55)))))
    while len(acked) < 55:
        await asyncio.sleep(0.005)
    task.cancel()
    assert acked == list(range(55))  # in order, each once
    assert [len(b) for b in batches][:5] == [10, 10, 10, 10, 10]


async def test_a_trickle_is_carried_out_promptly_and_backpressure_bounds_what_is_taken() -> None:
    taken: list[int] = []
    release = asyncio.Event()

    async def process(batch: list[int]) -> None:
        await release.wait()

    async def ack(event: int) -> None:
        pass

    async def counting(items: list[int]) -> AsyncIterator[int]:
        async for item in stream_of(items):
            taken.append(item)
            yield item

    runner = PipelinedBatches(process, ack, batch_max=4, wait_s=0.001)
    task = asyncio.ensure_future(runner.run(counting(list(range(100)))))
    await asyncio.sleep(0.05)
    # one batch in process, at most two batches waiting behind it
    assert len(taken) <= 4 + 2 * 4 + 1
    release.set()
    await asyncio.sleep(0.05)
    assert len(taken) == 100
    task.cancel()


async def test_a_failing_batch_ends_the_agent_instead_of_being_acknowledged() -> None:
    acked: list[Any] = []

    async def process(batch: list[int]) -> None:
        raise RuntimeError("boom")

    async def ack(event: int) -> None:
        acked.append(event)

    runner = PipelinedBatches(process, ack, batch_max=2, wait_s=0.001)

    async def slow() -> AsyncIterator[int]:
        async for item in stream_of(list(range(10)), gap_s=0.01):
            yield item

    try:
        await asyncio.wait_for(runner.run(slow()), 2)
    except RuntimeError as exc:
        assert str(exc) == "boom"
    else:
        raise AssertionError("the error did not end the run")
    assert acked == []


async def test_decisions_of_a_partition_given_away_are_acknowledged_but_left_to_its_new_owner() -> None:
    # read ahead before a rebalance gave their partition (here: the odd events) to another worker
    processed: list[int] = []
    acked: list[int] = []

    async def process(batch: list[int]) -> None:
        processed.extend(batch)

    async def ack(event: int) -> None:
        acked.append(event)

    runner = PipelinedBatches(process, ack, batch_max=4, wait_s=0.001, owned=lambda e: e % 2 == 0)
    task = asyncio.ensure_future(runner.run(stream_of(list(range(12)))))
    while len(acked) < 12:
        await asyncio.sleep(0.005)
    task.cancel()
    assert processed == [0, 2, 4, 6, 8, 10] and acked == list(range(12))


async def test_batches_are_bounded_by_the_decisions_their_messages_carry() -> None:
    # each message carries as many decisions as its number says (one message per envelope)
    batches: list[list[int]] = []
    acked: list[int] = []

    async def process(batch: list[int]) -> None:
        batches.append(batch)
        await asyncio.sleep(0.01)

    async def ack(event: int) -> None:
        acked.append(event)

    items = [4, 4, 4, 1, 30, 2, 2]
    runner = PipelinedBatches(process, ack, batch_max=10, wait_s=0.02, weight=lambda e: e)
    task = asyncio.ensure_future(runner.run(stream_of(items)))
    while len(acked) < len(items):
        await asyncio.sleep(0.005)
    task.cancel()
    assert acked == items
    # at most 10 decisions a batch, except a message larger than that, alone in its batch
    assert batches == [[4, 4], [4, 1], [30], [2, 2]]
