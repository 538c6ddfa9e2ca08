"""The internal badge-decisions topic: award/revoke decisions and operator requests.

Keyed by learner, on the learner's partition (the same partition number as its progress), so a
learner's decisions reach the sink in the order they were taken.
"""

from __future__ import annotations

from typing import Any

import orjson

from badges.domain.engine import Decision

RETRY_FAILED = "retry_failed"


def encode_decision(decision: Decision) -> bytes:
    return orjson.dumps(decision.to_dict())


def encode_retry_failed() -> bytes:
    return orjson.dumps({"action": RETRY_FAILED})


def decode_message(data: bytes) -> Decision | str:
    """A Decision, or the name of an operator request."""
    doc: dict[str, Any] = orjson.loads(data)
    action = doc.get("action")
    if action == RETRY_FAILED:
        return RETRY_FAILED
    return Decision.from_dict(doc)
