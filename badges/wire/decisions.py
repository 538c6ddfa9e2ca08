"""The internal badge-decisions topic: award/revoke decisions and operator requests.

Keyed by learner, on the learner's partition (the same partition number as its progress), so a
learner's decisions reach the sink in the order they were taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from badges.domain.engine import Decision

RETRY_FAILED = "retry_failed"
FORGET = "forget"


@dataclass(frozen=True)
class Forget:
    """Forget a learner's identity in the issuance table (sent by the progress agent, after it
    forgot the learner's progress, on the learner's partition)."""

    learner_id: int


def encode_decision(decision: Decision) -> bytes:
    return orjson.dumps(decision.to_dict())


def encode_retry_failed() -> bytes:
    return orjson.dumps({"action": RETRY_FAILED})


def encode_forget(learner_id: int) -> bytes:
    return orjson.dumps({"action": FORGET, "learner": learner_id})


def decode_message(data: bytes) -> Decision | Forget | str:
    """A Decision, a Forget, or the name of an operator request."""
    doc: dict[str, Any] = orjson.loads(data)
    action = doc.get("action")
    if action == RETRY_FAILED:
        return RETRY_FAILED
    if action == FORGET:
        return Forget(int(doc["learner"]))
    return Decision.from_dict(doc)
