"""The normalized learner event: what ingestion hands to the rules engine.

Whatever the bus (Kafka or Redis Streams) and whatever the event type, the engine sees this one
shape. It is plain data so that the engine stays free of I/O and cheap to run per event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Learner:
    """The learner as the latest event describes them (docs/CONTRACT.md "Learner identity")."""

    id: int
    username: str = ""
    email: str = ""
    name: str = ""


@dataclass(slots=True)
class LearnerEvent:
    event_type: str  # ce_type, e.g. org.openedx.learning.course.passing.status.updated.v1
    event_id: str  # ce_id
    time: str  # ce_time exactly as the producer sent it (ISO 8601); becomes `issued_at`
    time_us: int  # the same instant in microseconds since the epoch, for ordering
    source: str  # ce_source
    learner: Learner
    # The decoded payload, rooted where rule key paths start (docs/CONTRACT.md "Key paths").
    payload: dict[str, Any]
    # Where the event came from, for provenance: "topic/partition/offset" or "redis:stream/id".
    origin: str = ""
