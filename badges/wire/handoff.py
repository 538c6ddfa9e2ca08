"""The hand-off of input messages to ``{app_id}-learner-events``, one pipeline for every source.

Kafka ingestion (``agents.kafka_ingest``), Redis Streams ingestion (``agents.redis_ingest``) and
``badges replay`` (``badges.tools.replay``) all do the same thing with a batch they have read:
decode each message, set aside bad input (with its reason) and this worker's own output, keep
the events some active rule may use, group them by the partition that owns each learner, and
pack them into envelopes below the broker's message size. That decision is made here, without
I/O, so the three sources cannot drift apart; they differ only in how they read, send and
acknowledge.

This is the ingestion hot path (tens of thousands of events per second): the loops below do
one decode call, one dict lookup and one append per event, and everything that is counted is
counted once per batch.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from badges.domain.events import LearnerEvent
from badges.wire.envelope import encode_envelope, learner_partition
from badges.wire.errors import BadInput, OwnOutput, unexpected

log = logging.getLogger(__name__)

# An envelope stays well below the broker's default 1 MiB message limit, and below this many
# events, so that one envelope is a bounded amount of work for the progress agent.
ENVELOPE_MAX_EVENTS = 500
ENVELOPE_MAX_BYTES = 512 * 1024
# Learners whose partition is remembered: murmur2 in pure Python costs microseconds per event.
PARTITION_CACHE_SIZE = 1 << 18

Message = TypeVar("Message")


@dataclass(slots=True)
class ClassifiedBatch(Generic[Message]):
    """Every message of a batch is exactly one of: an event, a dead letter, our own output."""

    events: list[LearnerEvent] = field(default_factory=list)
    # (why, the message as the source read it): the source knows how to dead-letter it
    dead: list[tuple[BadInput, Message]] = field(default_factory=list)
    own_output: int = 0

    def consumed_by_type(self) -> Counter[str]:
        """Decoded events per event type (counted per batch: a labelled metric costs more per
        call than decoding a field)."""
        return Counter(ev.event_type for ev in self.events)


def classify(
    messages: Iterable[Message],
    decode: Callable[[Message], LearnerEvent],
    where: Callable[[Message], str],
    into: ClassifiedBatch[Message] | None = None,
) -> ClassifiedBatch[Message]:
    """Decode every message; adds to ``into`` when given (a batch read from several partitions).

    A decoder failure that is no BadInput is a bug, but it must not fail the batch: the batch
    would be retried forever (a crash loop on one message). The message is classified as the
    dead letter ``decoder_error`` and logged with its traceback (``where`` names it), and the
    stream goes on.
    """
    out: ClassifiedBatch[Message] = ClassifiedBatch() if into is None else into
    append = out.events.append
    dead = out.dead
    for m in messages:
        try:
            append(decode(m))
        except OwnOutput:
            out.own_output += 1
        except BadInput as exc:
            dead.append((exc, m))
        except Exception as exc:  # a decoder bug: parked with the bad input (see the docstring)
            log.exception("decoder failure on %s", where(m))
            dead.append((unexpected(exc), m))
    return out


@dataclass(slots=True)
class RoutedEvents:
    """The events some active rule may use, by destination partition of learner-events."""

    by_partition: dict[int, list[LearnerEvent]]
    skipped_no_rule: int = 0


class LearnerPartitions:
    """Learner id -> partition of learner-events (Kafka's murmur2 of the learner key, as Faust's
    table router computes it), remembered because it is asked once per event."""

    __slots__ = ("count", "_memo")

    def __init__(self, count: int) -> None:
        self.count = count
        self._memo: dict[int, int] = {}

    def _remember(self, learner_id: int) -> int:
        if len(self._memo) >= PARTITION_CACHE_SIZE:
            self._memo.clear()
        p = self._memo[learner_id] = learner_partition(learner_id, self.count)
        return p

    def route(self, events: Iterable[LearnerEvent], wanted: Set[str]) -> RoutedEvents:
        """Keep the events whose type some active rule uses; group them by partition, in order."""
        by_partition: dict[int, list[LearnerEvent]] = {}
        memo = self._memo
        skipped = 0
        for ev in events:
            if ev.event_type not in wanted:
                skipped += 1
                continue
            lid = ev.learner.id
            p = memo.get(lid)
            if p is None:
                p = self._remember(lid)
            group = by_partition.get(p)
            if group is None:
                by_partition[p] = [ev]
            else:
                group.append(ev)
        return RoutedEvents(by_partition, skipped)


def plan_envelopes(
    by_partition: dict[int, list[LearnerEvent]],
    *,
    replay_id: str | None = None,
    max_events: int = ENVELOPE_MAX_EVENTS,
    max_bytes: int = ENVELOPE_MAX_BYTES,
) -> list[tuple[int, bytes]]:
    """``(partition, envelope)`` pairs carrying every event once, in order per partition.

    An envelope holds at most ``max_events`` events and ``max_bytes`` bytes; only an envelope of
    a single event may be larger (it cannot be split; the broker decides whether it fits).
    ``replay_id`` tags the envelopes of a ``badges replay`` run.
    """
    out: list[tuple[int, bytes]] = []
    for partition, events in by_partition.items():
        for start in range(0, len(events), max_events):
            _pack(partition, events[start:start + max_events], replay_id, max_bytes, out)
    return out


def _pack(
    partition: int, events: list[LearnerEvent], replay_id: str | None, max_bytes: int,
    out: list[tuple[int, bytes]],
) -> None:
    data = encode_envelope(events, replay_id=replay_id)
    if len(data) > max_bytes and len(events) > 1:
        half = len(events) // 2
        _pack(partition, events[:half], replay_id, max_bytes, out)
        _pack(partition, events[half:], replay_id, max_bytes, out)
    else:
        out.append((partition, data))
