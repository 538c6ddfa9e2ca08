"""The hand-off to learner-events (``badges.wire.handoff``): Kafka ingestion, Redis ingestion and
replay turn the same input into the same envelopes, and every envelope keeps within its limits."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from functools import cache
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from badges.agents.kafka_ingest import Forwarder, decode_batch
from badges.agents.kafka_ingest import _dead_letter_of as kafka_dead_letter
from badges.agents.redis_ingest import Entry, decode_entries
from badges.agents.redis_ingest import _dead_letter_of as redis_dead_letter
from badges.domain.events import Learner, LearnerEvent
from badges.tools.replay import Replayer, ReplaySummary, decode_messages
from badges.schemas.catalog import load_catalog
from badges.wire.decode import KafkaDecoder
from badges.wire.envelope import decode_envelope, learner_partition
from badges.wire.handoff import LearnerPartitions, plan_envelopes
from badges.wire.redis_format import RedisDecoder
from tests.support import openedx
from tests.support.openedx import BADGE_AWARDED, COURSE_PASSING, CCX_COURSE_PASSING

TOPIC = "dev-learning-course-passing-status"
PARTITIONS = 4
WANTED = frozenset({COURSE_PASSING})  # CCX passing events are decoded, then skipped: no rule uses them
KINDS = ("passing", "grade", "own_output", "garbage")
CATALOG = load_catalog()


@cache
def kafka_message(kind: str, user: int) -> Any:
    event_type = {"passing": COURSE_PASSING, "grade": CCX_COURSE_PASSING, "own_output": BADGE_AWARDED,
                  "garbage": COURSE_PASSING}[kind]
    m = openedx.kafka_message(event_type, user_id=user, event_id=f"00000000-0000-4000-8000-{user:012d}",
                                    time=openedx.DEFAULT_TIME)
    return m._replace(value=b"") if kind == "garbage" else m


@cache
def redis_fields(kind: str, user: int) -> dict[bytes, bytes]:
    event_type = {"passing": COURSE_PASSING, "grade": CCX_COURSE_PASSING, "own_output": BADGE_AWARDED,
                  "garbage": COURSE_PASSING}[kind]
    fields = openedx.redis_fields(event_type, user_id=user, event_id=f"00000000-0000-4000-8000-{user:012d}",
                                    time=openedx.DEFAULT_TIME)
    return {**fields, b"event_data": b""} if kind == "garbage" else fields


class ConfluentMessage:
    """A consumed confluent-kafka message, as replay reads them."""

    def __init__(self, offset: int, m: Any) -> None:
        self._offset, self._m = offset, m

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def headers(self) -> list[tuple[str, bytes]]:
        return list(self._m.headers)

    def value(self) -> bytes:
        return self._m.value

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)

    def error(self) -> None:
        return None


def runtime(sent: list[tuple[str, int, bytes]]) -> Any:
    async def send(topic: str, key: Any, value: bytes, partition: int, ts: Any, headers: Any) -> None:
        sent.append((topic, partition, value))

    return SimpleNamespace(
        settings=SimpleNamespace(partitions=PARTITIONS, learner_events_topic="events", dead_letter_topic="dlq"),
        config=SimpleNamespace(compiled=lambda: SimpleNamespace(event_types=WANTED)),
        app=SimpleNamespace(producer=SimpleNamespace(send=send)),
    )


def via_kafka(inputs: list[tuple[str, int]]) -> tuple[list[tuple[int, bytes]], list[str]]:
    records = [
        ConsumerRecord(TOPIC, 0, i, 0, 0, m.key, m.value, None, 0, len(m.value), list(m.headers))
        for i, m in enumerate(kafka_message(k, u) for k, u in inputs)
    ]
    batch = decode_batch(KafkaDecoder(CATALOG), {TopicPartition(TOPIC, 0): records})
    return forwarded(batch, kafka_dead_letter)


def via_redis(inputs: list[tuple[str, int]]) -> tuple[list[tuple[int, bytes]], list[str]]:
    entries = [Entry(TOPIC, f"1714564800000-{i}", redis_fields(k, u)) for i, (k, u) in enumerate(inputs)]
    batch = decode_entries(RedisDecoder(CATALOG), entries)
    return forwarded(batch, redis_dead_letter)


def forwarded(batch: Any, dead_letter_of: Any) -> tuple[list[tuple[int, bytes]], list[str]]:
    sent: list[tuple[str, int, bytes]] = []
    asyncio.run(Forwarder(runtime(sent)).forward(batch, dead_letter_of))
    envelopes = [(p, v) for topic, p, v in sent if topic == "events"]
    return envelopes, sorted(exc.code for exc, _ in batch.dead)


def via_replay(inputs: list[tuple[str, int]]) -> tuple[list[tuple[int, bytes]], list[str], ReplaySummary]:
    """The replayer's own steps (decode, take, flush) with the broker left out."""
    produced: list[tuple[int, bytes]] = []
    replayer = Replayer.__new__(Replayer)
    replayer.settings = SimpleNamespace(partitions=PARTITIONS, learner_events_topic="events")  # type: ignore[assignment]  # only these fields are read
    replayer.since_us = None
    replayer.summary = ReplaySummary(replay_id="r1")
    replayer.config = SimpleNamespace(event_types=WANTED)  # type: ignore[assignment]  # only event_types is read
    replayer.learner_partitions = LearnerPartitions(PARTITIONS)
    replayer.producer = SimpleNamespace(  # type: ignore[assignment]  # a recording producer
        produce=lambda topic, value, partition, on_delivery: produced.append((partition, value)),
        poll=lambda timeout: 0,
    )
    replayer._errors = []
    messages = [ConfluentMessage(i, kafka_message(k, u)) for i, (k, u) in enumerate(inputs)]
    pending: dict[int, list[LearnerEvent]] = defaultdict(list)
    replayer._take(decode_messages(KafkaDecoder(CATALOG), messages), pending)
    replayer._flush(pending, threshold=1)
    s = replayer.summary
    return produced, sorted(c for c, n in s.bad_input.items() for _ in range(n)), s


def contents(envelopes: list[tuple[int, bytes]]) -> list[tuple[int, list[LearnerEvent]]]:
    """What an envelope carries, except where the event was read from (which differs per source)."""
    return [(p, [dataclasses.replace(ev, origin="") for ev in decode_envelope(data).events])
            for p, data in envelopes]


inputs_strategy = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(1, 40)), max_size=60)


@settings(max_examples=40, deadline=None)
@given(inputs_strategy)
def test_kafka_redis_and_replay_hand_over_the_same_envelopes(inputs: list[tuple[str, int]]) -> None:
    kafka, kafka_dead = via_kafka(inputs)
    redis, redis_dead = via_redis(inputs)
    replay, replay_dead, summary = via_replay(inputs)

    assert contents(kafka) == contents(redis) == contents(replay)
    assert kafka_dead == redis_dead == replay_dead == ["empty_value"] * sum(k == "garbage" for k, _ in inputs)
    assert all(decode_envelope(v).replay_id == "r1" for _, v in replay)
    assert all(decode_envelope(v).replay_id is None for _, v in kafka + redis)
    passing = [u for k, u in inputs if k == "passing"]
    assert summary.handed_over == len(passing)
    assert summary.skipped_no_rule == sum(k == "grade" for k, _ in inputs)
    assert summary.own_output == sum(k == "own_output" for k, _ in inputs)
    assert summary.read == len(inputs)
    # each learner on the partition that owns it, in input order
    for partition, events in contents(kafka):
        assert all(learner_partition(ev.learner.id, PARTITIONS) == partition for ev in events)
    assert [ev.learner.id for _, evs in contents(kafka) for ev in evs] == sorted(
        passing, key=lambda u: [p for p, _ in kafka].index(learner_partition(u, PARTITIONS)))


def event(learner: int, size: int) -> LearnerEvent:
    return LearnerEvent(COURSE_PASSING, f"id-{learner}-{size}", "2024-05-01T12:00:00Z", 1, "lms",
                        Learner(learner), {"pad": "x" * size})


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 30), st.integers(0, 3000)), max_size=200),
    st.integers(1, 50),
    st.integers(200, 20_000),
    st.sampled_from([None, "run-1"]),
)
def test_envelopes_keep_within_their_limits_and_carry_every_event_once_in_order(
    spec: list[tuple[int, int]], max_events: int, max_bytes: int, replay_id: str | None,
) -> None:
    events = [event(learner, size) for learner, size in spec]
    routed = LearnerPartitions(PARTITIONS).route(events, WANTED)

    planned = plan_envelopes(routed.by_partition, replay_id=replay_id, max_events=max_events,
                             max_bytes=max_bytes)

    got: dict[int, list[LearnerEvent]] = defaultdict(list)
    for partition, data in planned:
        env = decode_envelope(data)
        assert 1 <= len(env.events) <= max_events
        assert len(data) <= max_bytes or len(env.events) == 1
        assert env.replay_id == replay_id and not env.end
        got[partition] += env.events
    assert dict(got) == routed.by_partition
    for partition, evs in routed.by_partition.items():
        assert all(learner_partition(ev.learner.id, PARTITIONS) == partition for ev in evs)
    assert sum(len(v) for v in got.values()) == len(events)


def test_routing_skips_the_event_types_no_rule_uses() -> None:
    events = [event(1, 0), dataclasses.replace(event(2, 0), event_type=CCX_COURSE_PASSING), event(3, 0)]
    routed = LearnerPartitions(PARTITIONS).route(events, WANTED)
    assert routed.skipped_no_rule == 1
    assert sorted(ev.learner.id for evs in routed.by_partition.values() for ev in evs) == [1, 3]
