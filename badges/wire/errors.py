"""Why an input message cannot become a LearnerEvent.

The ``code`` is what ingestion puts in the ``dlq_reason`` header (docs/CONTRACT.md "Dead letters") and in metrics, so
it is short and stable; ``detail`` is for humans. Neither ever carries a token or the payload.
"""

from __future__ import annotations

from typing import Final

EMPTY_VALUE: Final = "empty_value"
VALUE_TOO_LARGE: Final = "value_too_large"
BAD_MAGIC_BYTE: Final = "bad_magic_byte"
TRUNCATED_FRAME: Final = "truncated_frame"
MISSING_CE_TYPE: Final = "missing_ce_type"
UNKNOWN_EVENT_TYPE: Final = "unknown_event_type"
UNKNOWN_SCHEMA_ID: Final = "unknown_schema_id"
SCHEMA_REGISTRY_UNAVAILABLE: Final = "schema_registry_unavailable"
AVRO_DECODE_ERROR: Final = "avro_decode_error"
NO_USER_DATA: Final = "no_user_data"
BAD_HEADER: Final = "bad_header"
OWN_OUTPUT: Final = "own_output"
# A decoder bug, not the message's fault: it is still parked, never retried in a loop.
DECODER_ERROR: Final = "decoder_error"

CODES: Final = frozenset(
    {
        EMPTY_VALUE, VALUE_TOO_LARGE, BAD_MAGIC_BYTE, TRUNCATED_FRAME, MISSING_CE_TYPE,
        UNKNOWN_EVENT_TYPE, UNKNOWN_SCHEMA_ID, SCHEMA_REGISTRY_UNAVAILABLE, AVRO_DECODE_ERROR,
        NO_USER_DATA, BAD_HEADER, OWN_OUTPUT, DECODER_ERROR,
    }
)

_MAX_DETAIL = 500


class BadInput(Exception):
    """A message that goes to the dead-letter topic with ``code`` as its reason."""

    __slots__ = ("code", "detail")

    def __init__(self, code: str, detail: str = "") -> None:
        if code not in CODES:
            raise ValueError(f"unknown BadInput code {code!r}")
        self.code = code
        self.detail = detail[:_MAX_DETAIL]
        super().__init__(f"{code}: {self.detail}" if self.detail else code)

    def __reduce__(self):
        return (type(self), (self.code, self.detail))


class OwnOutput(BadInput):
    """One of our own badge lifecycle events: skipped by ingestion, never dead-lettered.

    It subclasses BadInput so one ``except BadInput`` covers every non-event; ingestion tests
    ``isinstance(exc, OwnOutput)`` (or ``exc.code == "own_output"``) first.
    """

    def __init__(self, event_type: str) -> None:
        super().__init__(OWN_OUTPUT, f"{event_type} is emitted by this worker")
        self.event_type = event_type

    def __reduce__(self):
        return (type(self), (self.event_type,))


def unexpected(exc: BaseException) -> BadInput:
    """A decoder failure that is no BadInput, as one: the message is dead-lettered and the
    stream goes on, rather than the batch failing forever (a crash loop on one message)."""
    return BadInput(DECODER_ERROR, f"{type(exc).__name__} while decoding (a bug: please report it)")
