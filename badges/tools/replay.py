"""`badges replay`: re-read event-bus topics and hand the events to the normal processing path.

Events are classified and planned into envelopes exactly as ingestion does it
(``badges.wire.handoff``), the envelopes tagged with a replay id, and sent to
``{app_id}-learner-events`` on the partition that owns each learner. The progress agent
treats them like live events: the rules engine ignores what it has already applied (an event
that already fulfilled a requirement, or that is older than the reset of that requirement), and
an awarded badge is never awarded again, so a replay can run while workers are live.

After the last event, one end marker per partition follows; each partition's progress agent
answers it on ``{app_id}-replay-reports`` with what the run changed there, which is how the
command learns when everything has been processed and what it did.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
from confluent_kafka import OFFSET_END, Consumer, KafkaException, Producer, TopicPartition

from badges.config.settings import Settings
from badges.domain.events import LearnerEvent
from badges.domain.index import compile_config
from badges.tools.config_topic import BrokerUnavailable, read_snapshot
from badges.kafka.topics import TopicSpec, ensure_topics
from badges.schemas.catalog import load_catalog
from badges.wire.decode import KafkaDecoder
from badges.wire.envelope import encode_envelope
from badges.wire.handoff import (
    ENVELOPE_MAX_EVENTS, ClassifiedBatch, LearnerPartitions, classify, plan_envelopes,
)



@dataclass
class ReplaySummary:
    replay_id: str
    read: int = 0
    handed_over: int = 0
    skipped_no_rule: int = 0
    skipped_before_since: int = 0
    bad_input: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    own_output: int = 0
    # from the workers' reports
    partitions_reported: int = 0
    applied: int = 0
    fulfillments_added: int = 0
    awards: int = 0
    revocations: int = 0
    complete: bool = False


@dataclass
class Plan:
    """Where each partition starts and (as far as the broker says) ends."""

    starts: dict[TopicPartition, int]
    ends: dict[TopicPartition, int]

    @property
    def total(self) -> int | None:
        total = sum(max(0, self.ends[tp] - off) for tp, off in self.starts.items())
        return total or None


class Replayer:
    def __init__(self, settings: Settings, topics: list[str], since: datetime | None) -> None:
        self.settings = settings
        self.topics = topics
        self.since = since.astimezone(timezone.utc) if since else None
        self.since_us = int(self.since.timestamp() * 1_000_000) if self.since else None
        self.summary = ReplaySummary(replay_id=uuid.uuid4().hex[:12])
        catalog = load_catalog()
        self.decoder = KafkaDecoder(catalog, registry=_registry(settings))
        self.config = compile_config(read_snapshot(settings), catalog)
        self.learner_partitions = LearnerPartitions(settings.partitions)
        self.consumer = Consumer(settings.kafka.confluent_config(**{
            "group.id": f"{settings.app_id}-replay-{self.summary.replay_id}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }))
        self.producer = Producer(settings.kafka.confluent_config(**{
            "acks": "all",
            "linger.ms": 5,
            "message.max.bytes": 8 * 1024 * 1024,
        }))
        self._errors: list[str] = []

    def plan(self) -> Plan:
        starts: dict[TopicPartition, int] = {}
        ends: dict[TopicPartition, int] = {}
        for topic in self.topics:
            meta = self.settings.kafka.metadata(self.consumer, topic).topics.get(topic)
            if meta is None or meta.error is not None:
                raise BrokerUnavailable(f"topic {topic} does not exist")
            for p in meta.partitions:
                tp = TopicPartition(topic, p)
                low, high = self.consumer.get_watermark_offsets(tp, timeout=10)
                starts[tp] = low
                ends[tp] = high
        if self.since is not None:
            ms = int(self.since.timestamp() * 1000)
            query = [TopicPartition(tp.topic, tp.partition, ms) for tp in starts]
            try:
                for found in self.consumer.offsets_for_times(query, timeout=10):
                    key = TopicPartition(found.topic, found.partition)
                    # OFFSET_END (-1): nothing at or after that time in this partition
                    starts[key] = ends[key] if found.offset in (OFFSET_END, -1) else max(found.offset, starts[key])
            except KafkaException:
                pass  # brokers without offsets-for-times: read from the start and filter
        return Plan(starts, ends)

    def run(self, plan: Plan, on_progress: Callable[[int], None], idle_s: float = 2.0) -> ReplaySummary:
        self.consumer.assign([TopicPartition(tp.topic, tp.partition, off) for tp, off in plan.starts.items()])
        positions = dict(plan.starts)
        pending: dict[int, list[LearnerEvent]] = defaultdict(list)
        last = time.monotonic()
        try:
            while True:
                consumed = self.consumer.consume(1000, timeout=0.2)
                if not consumed:
                    caught_up = all(positions[tp] >= plan.ends[tp] for tp in positions)
                    idle = time.monotonic() - last
                    # the end is the snapshot of end offsets, or idleness where the broker's
                    # end offsets cannot be trusted (tansu)
                    if (caught_up and idle >= 0.5) or idle >= idle_s:
                        break
                    continue
                last = time.monotonic()
                messages = [m for m in consumed if not m.error()]
                self._prefetch(messages)
                for m in messages:
                    positions[TopicPartition(m.topic(), m.partition())] = m.offset() + 1  # type: ignore[arg-type, operator]  # set: no error
                self._take(decode_messages(self.decoder, messages), pending)
                on_progress(len(messages))
                self._flush(pending, threshold=ENVELOPE_MAX_EVENTS)
            self._flush(pending, threshold=1)
            for p in range(self.settings.partitions):
                self._send(encode_envelope([], replay_id=self.summary.replay_id, end=True), p)
            self.producer.flush(30)
            if self._errors:
                raise BrokerUnavailable(f"replay could not hand events over: {self._errors[:3]}")
        finally:
            self.consumer.close()
        return self.summary

    def _prefetch(self, messages: list[Any]) -> None:
        if self.decoder.needs_prefetch:
            asyncio.run(self.decoder.prefetch(m.value() for m in messages))

    def _take(self, batch: ClassifiedBatch[Any], pending: dict[int, list[LearnerEvent]]) -> None:
        """Count the batch; keep its events from ``since`` on that some active rule may use.

        Bad input is only counted: it was dead-lettered when it was first ingested.
        """
        s = self.summary
        s.read += len(batch.events) + len(batch.dead) + batch.own_output
        s.own_output += batch.own_output
        for exc, _ in batch.dead:
            s.bad_input[exc.code] += 1
        events = batch.events
        if self.since_us is not None:
            since_us = self.since_us
            events = [ev for ev in events if ev.time_us >= since_us]
            s.skipped_before_since += len(batch.events) - len(events)
        routed = self.learner_partitions.route(events, self.config.event_types)
        s.skipped_no_rule += routed.skipped_no_rule
        s.handed_over += len(events) - routed.skipped_no_rule
        for partition, events_of_partition in routed.by_partition.items():
            pending[partition].extend(events_of_partition)

    def _flush(self, pending: dict[int, list[LearnerEvent]], threshold: int) -> None:
        """Send the events of every partition that has gathered ``threshold`` of them."""
        ready = {p: events for p, events in pending.items() if len(events) >= threshold}
        for partition, envelope in plan_envelopes(ready, replay_id=self.summary.replay_id):
            self._send(envelope, partition)
        for events in ready.values():
            events.clear()
        self.producer.poll(0)

    def _send(self, envelope: bytes, partition: int) -> None:
        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                self._errors.append(str(err))

        self.producer.produce(self.settings.learner_events_topic, value=envelope, partition=partition,
                              on_delivery=delivered)

    def wait_for_reports(self, timeout_s: float, on_report: Callable[[int], None] | None = None) -> ReplaySummary:
        """Collect the per-partition reports of this run (the workers have processed it all)."""
        s = self.summary
        consumer = Consumer(self.settings.kafka.confluent_config(**{
            "group.id": f"{self.settings.app_id}-replay-wait-{s.replay_id}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }))
        consumer.assign([TopicPartition(self.settings.replay_reports_topic, 0, 0)])
        seen: set[int] = set()
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline and len(seen) < self.settings.partitions:
                m = consumer.poll(0.2)
                if m is None or m.error():
                    continue
                report = orjson.loads(m.value())  # type: ignore[arg-type]  # a report always has a value
                if report.get("replay") != s.replay_id or report["partition"] in seen:
                    continue
                seen.add(report["partition"])
                s.applied += report["applied"]
                s.fulfillments_added += report["fulfillments_added"]
                s.awards += report["awards"]
                s.revocations += report["revocations"]
                if on_report:
                    on_report(len(seen))
        finally:
            consumer.close()
        s.partitions_reported = len(seen)
        s.complete = len(seen) == self.settings.partitions
        return s


def decode_messages(decoder: KafkaDecoder, messages: list[Any]) -> ClassifiedBatch[Any]:
    """Every consumed (confluent-kafka) message is an event, bad input or our own output."""
    decode = decoder.decode

    def where(m: Any) -> str:
        return f"{m.topic()}/{m.partition()}/{m.offset()}"

    return classify(messages, lambda m: decode(m.headers(), m.value(), where(m), m.timestamp()[1]), where)


def prepare_topics(settings: Settings) -> None:
    ensure_topics(settings, [
        TopicSpec(settings.learner_events_topic, settings.partitions),
        TopicSpec(settings.replay_reports_topic, 1),
    ])


def _registry(settings: Settings) -> Any:
    from badges.wire.registry import SchemaRegistry

    return SchemaRegistry.from_settings(settings)
