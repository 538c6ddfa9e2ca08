"""Ingestion of the Open edX event-bus topics: decode, identify the learner, re-key by learner.

A plain aiokafka batch consumer (group ``{app_id}-ingest``) rather than a Faust agent: Faust
dispatches every message through its per-message machinery (~120 µs here), which would cap the
whole worker far below the broker. This stage is stateless, so it needs none of Faust's table
machinery: it reads a batch, classifies it and plans its envelopes (``badges.wire.handoff``,
shared with Redis ingestion and replay), sends them to ``{app_id}-learner-events`` (and bad
messages to the dead-letter topic), waits until the broker
has them, and only then commits the source offsets. A crash re-reads at most one batch, and the
progress stage ignores what it has already applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord
from mode import Service

from badges import metrics
from badges.domain.events import LearnerEvent
from badges.wire.deadletter import dead_letter_headers
from badges.wire.decode import KafkaDecoder
from badges.wire.errors import BadInput
from badges.wire.handoff import ClassifiedBatch, LearnerPartitions, classify, plan_envelopes
from badges.wire.registry import RegistryAuthError, RegistryUnavailable

if TYPE_CHECKING:
    from badges.config.settings import Settings
    from badges.runtime import Runtime

log = logging.getLogger(__name__)
M = TypeVar("M")

class DeadLetterSource(NamedTuple):
    """What a dead letter carries of its message, as the source read it."""

    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] | None
    topic: str  # for a Redis entry: the stream
    partition: int  # for a Redis entry: 0 (a stream is one ordered log)
    offset: int | str  # for a Redis entry: its id


class Forwarder:
    """Sends a classified batch: dead letters to the dead-letter topic, the planned envelopes
    (``badges.wire.handoff``) to learner-events, and the batch's metrics.

    Shared by the Kafka and Redis ingestion paths; `badges replay` plans its envelopes with the
    same functions and sends them with its own producer.
    """

    def __init__(self, runtime: "Runtime") -> None:
        self.rt = runtime
        self.partitions = runtime.settings.partitions
        self.events_topic = runtime.settings.learner_events_topic
        self.dlq_topic = runtime.settings.dead_letter_topic
        self.learner_partitions = LearnerPartitions(self.partitions)

    async def forward(
        self, batch: ClassifiedBatch[M], dead_letter_of: Callable[[M], DeadLetterSource],
    ) -> list[Any]:
        """Send everything of the batch; the futures resolve once the broker has it all."""
        futures = [await self.send_dead_letter(exc, dead_letter_of(m)) for exc, m in batch.dead]
        for event_type, n in batch.consumed_by_type().items():
            metrics.EVENTS_CONSUMED.labels(event_type).inc(n)
        if batch.own_output:
            metrics.EVENTS_SKIPPED.labels("own_output").inc(batch.own_output)
        routed = self.learner_partitions.route(batch.events, self.rt.config.compiled().event_types)
        if routed.skipped_no_rule:
            metrics.EVENTS_SKIPPED.labels("no_active_rule").inc(routed.skipped_no_rule)
        producer = self.rt.app.producer
        for partition, envelope in plan_envelopes(routed.by_partition):
            futures.append(await producer.send(self.events_topic, None, envelope, partition, None, None))
        return futures

    async def send_dead_letter(self, exc: BadInput, source: DeadLetterSource) -> Any:
        metrics.DEAD_LETTERS.labels(exc.code).inc()
        key, value, headers, topic, partition, offset = source
        event_id = next((v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                         for k, v in headers or () if k in ("ce_id", "id") and v), None)
        log.warning("dead letter %s/%s/%s: %s (%s)", topic, partition, offset, exc.code, exc.detail,
                    extra={"event_id": event_id} if event_id else None)
        dlq_headers = dead_letter_headers(headers or [], exc.code, exc.detail, topic, partition, offset)
        return await self.rt.app.producer.send(
            self.dlq_topic, key, value, partition % self.partitions, None, dlq_headers
        )


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, ingest: "KafkaIngest") -> None:
        self.ingest = ingest

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # The batch in hand finishes (and commits) before the partitions move on.
        self.ingest.joined = False
        async with self.ingest.batch_lock:
            pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.ingest.joined = True
        log.info("ingest assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))
        await self.ingest.seed_positions(assigned)


def consumer_options(s: "Settings") -> dict[str, Any]:
    """The ingestion consumer's configuration (the raw-consumer benchmark baseline uses it too)."""
    return dict(
        **s.kafka.aiokafka_kwargs(),
        group_id=s.ingest_group,
        group_instance_id=s.group_instance_id,
        client_id=f"{s.app_id}-ingest",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=s.fetch_max_wait_ms,
        max_poll_records=s.ingest_batch_max,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        session_timeout_ms=int(s.broker_session_timeout_s * 1000),
        heartbeat_interval_ms=int(s.broker_heartbeat_interval_s * 1000),
        rebalance_timeout_ms=int(s.broker_rebalance_timeout_s * 1000),
        request_timeout_ms=int(max(40.0, s.broker_session_timeout_s + 5) * 1000),
    )


class KafkaIngest(Service):
    """The aiokafka batch consumer of the event-bus topics."""

    def __init__(self, runtime: "Runtime", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rt = runtime
        self.forwarder = Forwarder(runtime)
        self.decoder = KafkaDecoder(runtime.catalog, registry=runtime.registry)
        self.batch_lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
        self.joined = False  # a member of the ingest group with its assignment (maybe empty)
        # next offset to process per assigned partition: the lag metric's other end
        self.positions: dict[TopicPartition, int] = {}
        metrics.INGEST_LAG.source = self.lag

    def lag(self) -> list[tuple[str, int, int]]:
        """(topic, partition, lag) per assigned partition whose end the broker has reported."""
        consumer = self.consumer
        if consumer is None:
            return []
        out = []
        for tp, position in list(self.positions.items()):
            try:
                end = consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - not assigned any more
                continue
            if end is not None:
                out.append((tp.topic, tp.partition, max(0, end - position)))
        return out

    async def seed_positions(self, assigned: Any) -> None:
        """Positions of newly assigned partitions: their committed offsets (0 when none)."""
        consumer = self.consumer
        self.positions = {}
        if consumer is None:
            return
        for tp in assigned:
            try:
                self.positions[tp] = await consumer.committed(tp) or 0
            except Exception:  # noqa: BLE001 - known after the first batch instead
                continue

    async def _subscribe(self) -> AIOKafkaConsumer:
        s = self.rt.settings
        consumer = AIOKafkaConsumer(**consumer_options(s))
        consumer.subscribe(s.input_topic_names, listener=_Rebalance(self))
        await consumer.start()
        self.consumer = consumer
        log.info("ingesting %s as group %s", ", ".join(s.input_topic_names), s.ingest_group)
        return consumer

    async def on_start(self) -> None:
        # Join the ingest group while Faust joins its own and recovers its tables: on a broker
        # that holds a join for a while (the embedded one: half the session timeout; Kafka: the
        # initial rebalance delay) the two joins overlap instead of adding up. Nothing is read
        # before the configuration is loaded (``_consume``).
        await self._subscribe()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            async with self.batch_lock:
                await self.consumer.stop()

    @Service.task
    async def _consume(self) -> None:
        # Which events are kept depends on the configuration: read nothing, so skip and commit
        # nothing, before the configuration topic has been read whole (docs/CONTRACT.md "Restarts and health").
        if await self.wait_for_stopped(self.rt.config.wait_loaded()):
            return
        consumer = self.consumer
        assert consumer is not None
        while not self.should_stop:
            batch = await consumer.getmany(timeout_ms=1000, max_records=self.rt.settings.ingest_batch_max)
            if not batch:
                continue
            async with self.batch_lock:
                if not await self._handle_with_retry(batch):
                    return
                done = {tp: msgs[-1].offset + 1 for tp, msgs in batch.items()}
                await consumer.commit(done)
                self.positions.update(done)

    async def _handle_with_retry(self, batch: dict[TopicPartition, list[Any]]) -> bool:
        """An unreachable schema registry is an outage, not bad input: hold the batch and retry.

        A registry that refuses our credentials is a configuration error that no retry fixes:
        ingestion stops without committing the batch, and the worker reports not ready with
        the reason until it is restarted with the right BADGES_SCHEMA_REGISTRY_* settings.
        """
        delay = 0.5
        while not self.should_stop:
            try:
                await self.handle_batch(batch)
                return True
            except RegistryAuthError as exc:
                self.rt.health.set_problem("schema_registry", str(exc))
                return False
            except RegistryUnavailable as exc:
                log.warning("schema registry unavailable (%s); retrying the batch in %.1fs", exc, delay)
                await self.sleep(delay)
                delay = min(delay * 2, 30.0)
        return False

    async def handle_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        decoder: KafkaDecoder = self.decoder
        await decoder.prefetch(m.value for msgs in batch.values() for m in msgs)
        decoded = decode_batch(decoder, batch)
        metrics.observe_stage("ingested", (ev.time_us for ev in decoded.events[::8]))  # sampled
        futures = await self.forwarder.forward(decoded, _dead_letter_of)
        if futures:
            await asyncio.gather(*futures)


def _dead_letter_of(m: ConsumerRecord) -> DeadLetterSource:
    return DeadLetterSource(m.key, m.value, m.headers, m.topic, m.partition, m.offset)


def decode_batch(
    decoder: KafkaDecoder, batch: dict[TopicPartition, list[ConsumerRecord]],
) -> ClassifiedBatch[ConsumerRecord]:
    """Every message of a fetched batch is an event, a dead letter or our own output."""
    out: ClassifiedBatch[ConsumerRecord] = ClassifiedBatch()
    decode = decoder.decode
    for tp, messages in batch.items():
        prefix = f"{tp.topic}/{tp.partition}/"

        def where(m: Any, prefix: str = prefix) -> str:
            return f"{prefix}{m.offset}"

        def decoded(m: Any, prefix: str = prefix) -> LearnerEvent:
            return decode(m.headers, m.value, f"{prefix}{m.offset}", m.timestamp)

        classify(
            messages,
            decoded,
            where,
            out,
        )
    return out

def register(runtime: "Runtime") -> KafkaIngest:
    ingest = KafkaIngest(runtime)
    runtime.app.service(ingest)  # type: ignore[arg-type]  # App.service takes an instance too; faust annotates only the class
    return ingest
