"""Ingestion of the Open edX event-bus topics: decode, identify the learner, re-key by learner.

A plain aiokafka batch consumer (group ``{app_id}-ingest``) rather than a Faust agent: Faust
dispatches every message through its per-message machinery (~120 µs here), which would cap the
whole worker far below the broker. This stage is stateless, so it needs none of Faust's table
machinery: it reads a batch, decodes it, sends one envelope per destination partition of
``{app_id}-learner-events`` (and bad messages to the dead-letter topic), waits until the broker
has them, and only then commits the source offsets. A crash re-reads at most one batch, and the
progress stage ignores what it has already applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from mode import Service

from badges import metrics
from badges.domain.events import LearnerEvent
from badges.wire.deadletter import dead_letter_headers
from badges.wire.decode import KafkaDecoder
from badges.wire.envelope import encode_envelope, learner_partition
from badges.wire.errors import BadInput, OwnOutput, unexpected
from badges.wire.registry import RegistryAuthError, RegistryUnavailable

if TYPE_CHECKING:
    from badges.config.settings import Settings
    from badges.workers.app import Runtime

log = logging.getLogger(__name__)

ENVELOPE_MAX_EVENTS = 500
ENVELOPE_MAX_BYTES = 512 * 1024
PARTITION_CACHE_SIZE = 1 << 18


class Forwarder:
    """Sends normalized events to learner-events and bad input to the dead-letter topic.

    Shared by the Kafka and Redis ingestion paths and by `badges replay`'s worker-side path.
    """

    def __init__(self, runtime: "Runtime") -> None:
        self.rt = runtime
        self.partitions = runtime.settings.partitions
        self.events_topic = runtime.settings.learner_events_topic
        self.dlq_topic = runtime.settings.dead_letter_topic
        # learner id -> partition: murmur2 in pure Python costs microseconds per event.
        self._partition_of: dict[int, int] = {}

    def route(self, events: Iterable[LearnerEvent]) -> dict[int, list[LearnerEvent]]:
        """Keep the events some active rule may use; group them by destination partition."""
        wanted = self.rt.config.compiled().event_types
        by_partition: dict[int, list[LearnerEvent]] = defaultdict(list)
        partition_of = self._partition_of
        skipped = 0
        for ev in events:
            if ev.event_type not in wanted:
                skipped += 1
                continue
            lid = ev.learner.id
            p = partition_of.get(lid)
            if p is None:
                if len(partition_of) >= PARTITION_CACHE_SIZE:
                    partition_of.clear()
                p = partition_of[lid] = learner_partition(lid, self.partitions)
            by_partition[p].append(ev)
        if skipped:
            metrics.EVENTS_SKIPPED.labels("no_active_rule").inc(skipped)
        return by_partition

    async def send_events(self, by_partition: dict[int, list[LearnerEvent]]) -> list[Any]:
        producer = self.rt.app.producer
        futures = []
        for partition, events in by_partition.items():
            for chunk in _chunks(events):
                futures.append(
                    await producer.send(self.events_topic, None, chunk, partition, None, None)
                )
        return futures

    async def send_dead_letter(
        self, exc: BadInput, key: bytes | None, value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None, topic: str, partition: int, offset: int | str,
    ) -> Any:
        metrics.DEAD_LETTERS.labels(exc.code).inc()
        event_id = next((v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                         for k, v in headers or () if k in ("ce_id", "id") and v), None)
        log.warning("dead letter %s/%s/%s: %s (%s)", topic, partition, offset, exc.code, exc.detail,
                    extra={"event_id": event_id} if event_id else None)
        dlq_headers = dead_letter_headers(headers or [], exc.code, exc.detail, topic, partition, offset)
        return await self.rt.app.producer.send(
            self.dlq_topic, key, value, partition % self.partitions, None, dlq_headers
        )


def _chunks(events: list[LearnerEvent]) -> Iterable[bytes]:
    """Envelopes below the broker's message size, splitting big batches."""
    for start in range(0, len(events), ENVELOPE_MAX_EVENTS):
        part = events[start:start + ENVELOPE_MAX_EVENTS]
        data = encode_envelope(part)
        if len(data) > ENVELOPE_MAX_BYTES and len(part) > 1:
            half = len(part) // 2
            yield from _chunks(part[:half])
            yield from _chunks(part[half:])
        else:
            yield data


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
        self.decoder = runtime.services["decoder"]
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
        # nothing, before the configuration topic has been read whole (SPEC §9 "Restarts").
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

    async def handle_batch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        decoder: KafkaDecoder = self.decoder
        await decoder.prefetch(m.value for msgs in batch.values() for m in msgs)
        decoded = decode_batch(decoder, batch)
        metrics.observe_stage("ingested", (ev.time_us for ev in decoded.events[::8]))  # sampled
        futures: list[Any] = []
        for exc, tp, m in decoded.dead:
            futures.append(await self.forwarder.send_dead_letter(
                exc, m.key, m.value, m.headers, tp.topic, tp.partition, m.offset))
        # Counted per batch: a labelled counter costs more per call than decoding a field.
        for event_type, n in Counter(ev.event_type for ev in decoded.events).items():
            metrics.EVENTS_CONSUMED.labels(event_type).inc(n)
        if decoded.own_output:
            metrics.EVENTS_SKIPPED.labels("own_output").inc(decoded.own_output)
        futures += await self.forwarder.send_events(self.forwarder.route(decoded.events))
        if futures:
            await asyncio.gather(*futures)


@dataclass
class DecodedBatch:
    events: list[LearnerEvent] = field(default_factory=list)
    dead: list[tuple[BadInput, TopicPartition, Any]] = field(default_factory=list)
    own_output: int = 0


def decode_batch(decoder: KafkaDecoder, batch: dict[TopicPartition, list[Any]]) -> DecodedBatch:
    """Every message of a fetched batch is an event, a dead letter or our own output.

    A decoder failure that is no BadInput is a bug, but it must not fail the batch: the batch
    would be retried forever (a crash loop on one message). The message is dead-lettered as
    ``decoder_error``, logged with its traceback, and the stream goes on.
    """
    out = DecodedBatch()
    decode = decoder.decode
    append = out.events.append
    for tp, messages in batch.items():
        prefix = f"{tp.topic}/{tp.partition}/"
        for m in messages:
            try:
                append(decode(m.headers, m.value, f"{prefix}{m.offset}", m.timestamp))
            except OwnOutput:
                out.own_output += 1
            except BadInput as exc:
                out.dead.append((exc, tp, m))
            except Exception as exc:  # noqa: BLE001 - see the docstring
                log.exception("decoder failure on %s%s", prefix, m.offset)
                out.dead.append((unexpected(exc), tp, m))
    return out

def register(runtime: "Runtime") -> None:
    from badges.wire.registry import SchemaRegistry

    s = runtime.settings
    registry = SchemaRegistry.from_settings(s)
    runtime.services["registry"] = registry
    runtime.services["decoder"] = KafkaDecoder(runtime.catalog, registry=registry)
    ingest = KafkaIngest(runtime)
    runtime.services["kafka_ingest"] = ingest
    runtime.app.service(ingest)
