"""End offsets that can be trusted for table recovery, whatever the broker.

Faust recovers a table by reading its changelog up to the end offset that ListOffsets reports.
The embedded broker (tansu) reports the base offset of the last record *batch* + 1, so the other
records of that batch would be skipped and a worker taking over a partition would start from a
stale table. Reading from ``end - 1`` onwards finds the real end on any broker: on Apache Kafka
it returns the one last record, and the answer is the reported end.
"""

from __future__ import annotations

import asyncio
from typing import Mapping, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from badges.kafka.connection import KafkaConnection

TPT = TypeVar("TPT", bound=TopicPartition)


async def verified_end_offsets(
    connection: KafkaConnection, reported: Mapping[TPT, int], timeout_s: float = 10.0
) -> dict[TPT, int]:
    ends = dict(reported)
    todo = {tp for tp, end in reported.items() if end and end > 0}
    if not todo:
        return ends
    probe = AIOKafkaConsumer(
        **connection.aiokafka_kwargs(), enable_auto_commit=False, group_id=None,
        fetch_max_wait_ms=100, max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await probe.start()
    try:
        probe.assign([TopicPartition(tp.topic, tp.partition) for tp in todo])
        by_key = {(tp.topic, tp.partition): tp for tp in todo}
        for tp in todo:
            probe.seek(TopicPartition(tp.topic, tp.partition), reported[tp] - 1)
        idle_rounds = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while idle_rounds < 2 and loop.time() < deadline:
            batch = await probe.getmany(timeout_ms=200)
            if not batch:
                idle_rounds += 1
                continue
            idle_rounds = 0
            for ktp, records in batch.items():
                tp = by_key[(ktp.topic, ktp.partition)]
                ends[tp] = max(ends[tp], records[-1].offset + 1)
    finally:
        await probe.stop()
    return ends
