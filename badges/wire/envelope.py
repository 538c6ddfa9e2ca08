"""The internal learner-events topic: normalized events batched per destination partition.

Ingestion and replay group the events of one fetched batch by the partition that owns each
learner and send them in as few messages as the size limits allow (``badges.wire.handoff``), so
the progress agent pays Faust's per-message cost once per envelope rather than once per event.
Partitions are chosen with Kafka's murmur2 of the learner key: the same function Faust's table
router uses, so any worker finds a learner's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import orjson
from aiokafka.partitioner import murmur2

from badges.domain.events import Learner, LearnerEvent

FORMAT_VERSION = 1


def learner_key(learner_id: int) -> bytes:
    return str(learner_id).encode()


@lru_cache(maxsize=1 << 17)
def learner_partition(learner_id: int, partitions: int) -> int:
    return (murmur2(learner_key(learner_id)) & 0x7FFFFFFF) % partitions


@dataclass(slots=True)
class Envelope:
    events: list[LearnerEvent]
    # Set on envelopes sent by `badges replay`: the run they belong to, and on the run's last
    # envelope per partition, `end` (the progress agent then reports the run's counts).
    replay_id: str | None = None
    end: bool = False
    # Learners to forget (``badges learner forget``): sent on the learners' own partition, so
    # the progress agent forgets them in order with their events (``agents.progress``).
    forget: tuple[int, ...] = ()


def encode_envelope(events: list[LearnerEvent], replay_id: str | None = None, end: bool = False) -> bytes:
    meta = {"replay": replay_id, "end": end} if replay_id else None
    return orjson.dumps(
        [
            FORMAT_VERSION,
            [
                (
                    e.event_type, e.event_id, e.time, e.time_us, e.source,
                    e.learner.id, e.learner.username, e.learner.email, e.learner.name,
                    e.payload, e.origin,
                )
                for e in events
            ],
            meta,
        ]
    )


def encode_forget(learner_ids: list[int]) -> bytes:
    """An envelope without events that asks the progress agent to forget these learners."""
    return orjson.dumps([FORMAT_VERSION, [], {"forget": list(learner_ids)}])


class EnvelopeError(ValueError):
    pass


def decode_envelope(data: bytes) -> Envelope:
    try:
        version, rows, meta = orjson.loads(data)
        events = [
            LearnerEvent(t, i, tm, tu, src, Learner(lid, un, em, nm), payload, origin)
            for (t, i, tm, tu, src, lid, un, em, nm, payload, origin) in rows
        ]
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise EnvelopeError(f"not a learner-events envelope: {exc}") from None
    if version != FORMAT_VERSION:
        raise EnvelopeError(f"unsupported envelope version {version!r}")
    if meta:
        forget = tuple(int(lid) for lid in meta.get("forget") or ())
        return Envelope(events, meta.get("replay"), bool(meta.get("end")), forget)
    return Envelope(events)
