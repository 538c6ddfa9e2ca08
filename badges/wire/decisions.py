"""The internal badge-decisions topic: award/revoke decisions and operator requests.

On the learner's partition (the same partition number as its progress), so a learner's
decisions reach the sink in the order they were taken. The progress agent sends all the
decisions of one envelope in one message (``{"decisions": [...]}``): a Faust message costs the
sink far more than the decision it carries (issue 20). Workers before that sent one message per
decision (the decision's own object, keyed by learner); such messages may still wait in the
topic when a worker is upgraded in place, so they are read too, as a batch of one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import orjson

from badges.domain.engine import Decision

RETRY_FAILED = "retry_failed"
FORGET = "forget"
DECISIONS = "decisions"
# A decision is about 0.5-1 KB of JSON (the learner, the event, the causes)
MESSAGE_MAX_DECISIONS = 200


@dataclass(frozen=True)
class Forget:
    """Forget a learner's identity in the issuance table (sent by the progress agent, after it
    forgot the learner's progress, on the learner's partition)."""

    learner_id: int


Message = tuple[Decision, ...] | Forget | str  # what one message of the topic says (decode_message)


def decision_messages(decisions: Sequence[Decision]) -> list[bytes]:
    """The messages carrying decisions of one partition, in the order they were taken: one,
    unless there are more than ``MESSAGE_MAX_DECISIONS`` (an envelope's events may take many
    decisions each, and a topic's messages have a size limit: Kafka's default is 1 MB)."""
    return [orjson.dumps({DECISIONS: [d.to_dict() for d in decisions[start:start + MESSAGE_MAX_DECISIONS]]})
            for start in range(0, len(decisions), MESSAGE_MAX_DECISIONS)]


def encode_retry_failed() -> bytes:
    return orjson.dumps({"action": RETRY_FAILED})


def encode_forget(learner_id: int) -> bytes:
    return orjson.dumps({"action": FORGET, "learner": learner_id})


def decode_message(data: bytes) -> Message:
    """The decisions a message carries (in order), a Forget, or the name of an operator request."""
    doc: dict[str, Any] = orjson.loads(data)
    if DECISIONS in doc:
        return tuple(Decision.from_dict(d) for d in doc[DECISIONS])
    action = doc.get("action")
    if action == RETRY_FAILED:
        return RETRY_FAILED
    if action == FORGET:
        return Forget(int(doc["learner"]))
    return (Decision.from_dict(doc),)  # the single-decision form of workers before issue 20
