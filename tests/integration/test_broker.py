"""The embedded broker helper, and end offsets that table recovery can trust on it."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from badges.config.settings import load_settings
from badges.embedded_broker import EmbeddedBroker, wait_for_port
from badges.kafka.end_offsets import verified_end_offsets
from badges.kafka.topics import TopicSpec, admin_client, ensure_topics


def test_topics_are_created_with_their_partition_counts(broker: EmbeddedBroker) -> None:
    settings = load_settings(kafka_bootstrap_servers=broker.bootstrap, app_id=f"t-{uuid.uuid4().hex[:6]}", partitions=6)
    created = ensure_topics(settings)
    assert settings.learner_events_topic in created and settings.config_topic in created
    assert ensure_topics(settings) == []  # idempotent

    topics = admin_client(settings).list_topics(timeout=10).topics
    assert len(topics[settings.learner_events_topic].partitions) == 6
    assert len(topics[settings.config_topic].partitions) == 1


def test_verified_end_offsets_see_every_record_of_the_last_batch(broker: EmbeddedBroker) -> None:
    topic = f"eo-{uuid.uuid4().hex[:8]}"
    ensure_topics(load_settings(kafka_bootstrap_servers=broker.bootstrap), [TopicSpec(topic, 2)])

    async def run() -> tuple[dict, dict]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=50)
        await producer.start()
        futures = [await producer.send(topic, b"v", partition=0) for _ in range(25)]  # one batch
        await asyncio.gather(*futures)
        await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await consumer.start()
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        reported = await consumer.end_offsets(tps)
        await consumer.stop()
        return reported, await verified_end_offsets(load_settings(kafka_bootstrap_servers=broker.bootstrap).kafka, reported)

    reported, verified = asyncio.run(run())
    assert verified[TopicPartition(topic, 0)] == 25
    assert verified[TopicPartition(topic, 1)] == reported[TopicPartition(topic, 1)] == 0


def test_the_embedded_broker_stops_by_pid() -> None:
    with EmbeddedBroker() as b:
        wait_for_port(b.host, b.port)
        proc = b.process
    assert proc is not None and proc.poll() is not None
