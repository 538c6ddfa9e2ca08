"""Reading and publishing the compacted configuration topic from command-line tools.

Workers read the topic through their GlobalTable; tools (CLI, dev mode, tests) use these
synchronous helpers. The topic has one partition, so the last record per key is the truth.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from confluent_kafka import Consumer, Producer, TopicPartition

from badges.config.entities import ConfigSnapshot, decode_entity, encode_entity, entity_key
from badges.config.settings import Settings
from badges.kafka.connection import BrokerUnavailable
from badges.kafka.topics import TopicSpec, ensure_topics

__all__ = ["BrokerUnavailable", "publish", "read_snapshot", "read_topic"]


def read_topic(settings: Settings, topic: str, idle_s: float = 1.0, timeout_s: float = 30.0) -> list[Any]:
    """Every record of a topic, from the beginning until it has been idle for ``idle_s``.

    The end is found by idleness as well as by the high watermark, because the embedded broker
    (tansu) reports a wrong one.
    """
    consumer = Consumer(settings.kafka.confluent_config(**{
        "group.id": f"{settings.app_id}-tool-{time.time_ns()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "socket.timeout.ms": 5000,
    }))
    try:
        meta = settings.kafka.metadata(consumer, topic)
        tmeta = meta.topics.get(topic)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            return []
        parts = [TopicPartition(topic, p, 0) for p in tmeta.partitions]
        highs = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in parts}
        consumer.assign(parts)
        records: list[Any] = []
        positions = {p.partition: 0 for p in parts}
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is None:
                idle = time.monotonic() - last
                caught_up = all(positions[p] >= highs[p] for p in positions)
                if (caught_up and idle >= idle_s) or idle >= 3 * idle_s:
                    break
                continue
            if msg.error():
                continue
            last = time.monotonic()
            positions[msg.partition()] = msg.offset() + 1  # type: ignore[index, operator]  # set: no error
            records.append(msg)
        return records
    finally:
        consumer.close()


def read_snapshot(settings: Settings, idle_s: float = 1.0) -> ConfigSnapshot:
    latest: dict[bytes, bytes | None] = {}
    for msg in read_topic(settings, settings.config_topic, idle_s=idle_s):
        if msg.key() is not None:
            latest[msg.key()] = msg.value()
    entities = [e for k, v in latest.items() if v is not None and (e := decode_entity(k, v)) is not None]
    return ConfigSnapshot.from_entities(entities)


def publish(settings: Settings, entities: Iterable[Any]) -> int:
    return _produce(settings, [(entity_key(e), encode_entity(e)) for e in entities])


def publish_tombstones(settings: Settings, keys: Iterable[str]) -> int:
    """Delete configuration entities: a record with no value; compaction then forgets the key."""
    return _produce(settings, [(key, None) for key in keys])


def _produce(settings: Settings, records: list[tuple[str, bytes | None]]) -> int:
    ensure_topics(settings, [TopicSpec(settings.config_topic, 1, compacted=True)])
    producer = Producer(settings.kafka.confluent_config(acks="all"))
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    n = 0
    for key, value in records:
        producer.produce(settings.config_topic, key=key, value=value, partition=0, on_delivery=on_delivery)
        n += 1
    remaining = producer.flush(30)
    if remaining or errors:
        raise BrokerUnavailable(f"configuration not published: {errors or f'{remaining} unsent'}")
    return n
