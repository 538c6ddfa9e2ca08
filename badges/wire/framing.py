"""Confluent Schema Registry wire framing: ``0x00``, 4-byte big-endian schema id, payload.

This is what confluent-kafka's ``AvroSerializer`` (used by edx-event-bus-kafka) writes for both
the key and the value of every event.
"""

from __future__ import annotations

import struct
from typing import Final

from badges.wire.errors import BAD_MAGIC_BYTE, EMPTY_VALUE, TRUNCATED_FRAME, BadInput

MAGIC_BYTE: Final = 0
HEADER_SIZE: Final = 5
_HEADER = struct.Struct(">bI")
MAX_SCHEMA_ID: Final = 2**31 - 1  # the registry's ids are Java ints


def frame(schema_id: int, body: bytes) -> bytes:
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise ValueError(f"schema id out of range: {schema_id}")
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def schema_id_of(value: bytes | None) -> int:
    """The writer schema id of a framed value, checked but without copying the payload."""
    if not value:
        raise BadInput(EMPTY_VALUE, "the message has no value")
    if value[0] != MAGIC_BYTE:
        raise BadInput(BAD_MAGIC_BYTE, f"first byte is 0x{value[0]:02x}, expected 0x00 (Confluent framing)")
    if len(value) < HEADER_SIZE:
        raise BadInput(TRUNCATED_FRAME, f"{len(value)} bytes, shorter than the 5-byte Confluent header")
    return _HEADER.unpack_from(value)[1]


def unframe(value: bytes | None) -> tuple[int, bytes]:
    """``(schema_id, payload)``; raises BadInput (empty_value, bad_magic_byte, truncated_frame)."""
    schema_id = schema_id_of(value)
    assert value is not None
    return schema_id, value[HEADER_SIZE:]
