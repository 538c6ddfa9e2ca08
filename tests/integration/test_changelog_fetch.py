"""A standby replica is handed every changelog record from where it was sought to (random kills:
a worker's standby copies of progress and issuance partitions began with the records written
after they were assigned; promoted, its owner built those learners' progress from nothing).

Faust's fetch hands aiokafka its live set of active partitions and waits with it for records.
When a table recovery completes, Faust pauses the recovered partitions (emptying that set),
seeks the standby partitions to where their replicas stand and only then resumes them. aiokafka
takes an empty set for "every partition": the waiting fetch handed over the standby records,
Faust dropped them as not active with the consumer's position past them, and the replica never
applied them. The worker's consumer thread (``badges.kafka.consumer.TunedConsumerThread``)
fetches for a snapshot of the set, which cannot become empty.

Here, on the embedded broker: Faust's own fetch path (``AIOKafkaConsumerThread.getmany`` and
``_fetch_records``) over a real aiokafka consumer, with the recovered partition waiting for
records while the set is emptied and the standby partition is sought back.
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.types import TP

from badges.config.settings import load_settings
from badges.embedded_broker import EmbeddedBroker
from badges.kafka.consumer import TunedConsumerThread
from badges.kafka.topics import TopicSpec, ensure_topics


def _thread(consumer: AIOKafkaConsumer) -> Any:
    """The worker's consumer thread around ``consumer``, its calls run on this loop."""
    thread: Any = TunedConsumerThread.__new__(TunedConsumerThread)
    thread._consumer = consumer
    thread.consumer = SimpleNamespace(flow_active=True)  # the Faust consumer it serves

    async def call_thread(fun: Any, *args: Any, **kwargs: Any) -> Any:
        return await fun(*args, **kwargs)

    thread.call_thread = call_thread
    return thread


def test_standby_records_are_not_fetched_while_the_active_set_empties(broker: EmbeddedBroker) -> None:
    topic = f"cl-{uuid.uuid4().hex[:8]}"
    ensure_topics(load_settings(kafka_bootstrap_servers=broker.bootstrap), [TopicSpec(topic, 2)])
    recovered, standby = TP(topic, 0), TP(topic, 1)

    async def run() -> tuple[dict[Any, Any], list[int]]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        await asyncio.gather(*[await producer.send(topic, b"r", partition=0) for _ in range(3)])
        await asyncio.gather(*[await producer.send(topic, b"s%d" % i, partition=1) for i in range(5)])
        await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=50)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
            consumer.seek(TopicPartition(topic, 0), 3)  # the ends (the embedded broker's reported
            consumer.seek(TopicPartition(topic, 1), 5)  # end offsets fall short of them)
            active = {recovered}  # Faust's live set: the partition being recovered, read to its end
            fetch = asyncio.ensure_future(_thread(consumer).getmany(active, timeout=3.0))
            await asyncio.sleep(0.3)  # the fetch waits for records of the recovered partition
            active.clear()  # recovery done: the recovered partition is paused
            consumer.seek(TopicPartition(topic, 1), 0)  # the standby is sought to its replica's start
            fetched = await fetch
            # what the standby then reads once resumed
            rest = await consumer.getmany(TopicPartition(topic, 1), timeout_ms=2000)
            return fetched, [r.offset for records in rest.values() for r in records]
        finally:
            await consumer.stop()

    fetched, then = asyncio.run(run())
    assert not any(tp.partition == standby.partition for tp in fetched), f"standby records handed over: {fetched}"
    assert then == [0, 1, 2, 3, 4]  # every standby record is still there for the replica
