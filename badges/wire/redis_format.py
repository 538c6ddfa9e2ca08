"""edx-event-bus-redis stream entries.

Layout as in openedx/event-bus-redis ``edx_event_bus_redis/internal/utils.py``
(``get_headers_from_metadata``) and ``internal/message.py`` (``RedisMessage.to_binary_dict``):
UTF-8 fields ``type``, ``id``, ``source``, ``time`` (``datetime.isoformat()``),
``minorversion``, ``sourcehost``, ``sourcelib`` ("10.5.0"), then ``event_data`` = the plain
Avro body from ``serialize_event_data_to_bytes`` (no framing, no registry). The producer
(``internal/producer.py``) adds that dict to stream ``{prefix}-{topic}`` with XADD.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from badges.domain.events import LearnerEvent
from badges.schemas.catalog import Catalog, load_catalog
from badges.wire.decode import DEFAULT_MAX_VALUE_BYTES, RecordDecoder, text_field
from badges.wire.encode import DEFAULT_SOURCE, avro_body, event_metadata
from badges.wire.errors import BAD_HEADER, BadInput

FIELD_ORDER = ("type", "id", "source", "time", "minorversion", "sourcehost", "sourcelib", "event_data")


def _entry_ms(entry_id: str) -> int | None:
    """Redis entry ids are ``<ms>-<seq>``: the time the entry was added."""
    head = entry_id.partition("-")[0]
    return int(head) if head.isdigit() else None


class RedisDecoder(RecordDecoder):
    def __init__(
        self,
        catalog: Catalog | None = None,
        *,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        skip_own_output: bool = True,
    ) -> None:
        super().__init__(catalog or load_catalog(), max_value_bytes=max_value_bytes, skip_own_output=skip_own_output)

    def decode_entry(self, fields: Mapping[bytes, bytes], stream: str, entry_id: str | bytes) -> LearnerEvent:
        """One XREAD(GROUP) entry to a LearnerEvent; raises BadInput (or OwnOutput)."""
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        raw_id = fields.get(b"id")
        if raw_id is None:
            raise BadInput(BAD_HEADER, "no id field")
        raw_time = fields.get(b"time")
        raw_source = fields.get(b"source")
        return self.decode_record(
            fields.get(b"type"),
            fields.get(b"event_data"),
            event_id=text_field(raw_id, "id"),
            time=text_field(raw_time, "time") if raw_time else None,
            source=text_field(raw_source, "source") if raw_source is not None else "",
            origin=f"redis:{stream}/{eid}",
            timestamp_ms=_entry_ms(eid),
        )


def encode_entry(
    event_type: str,
    record: Mapping[str, Any],
    *,
    event_id: str | uuid.UUID | None = None,
    time: datetime | None = None,
    source: str = DEFAULT_SOURCE,
    sourcehost: str | None = None,
    sourcelib: str | None = None,
    minorversion: int = 0,
    catalog: Catalog | None = None,
) -> dict[bytes, bytes]:
    """The fields of an XADD, in edx-event-bus-redis order."""
    cat = catalog or load_catalog()
    meta = event_metadata(
        event_type, event_id=event_id, time=time, source=source, sourcehost=sourcehost,
        sourcelib=sourcelib, minorversion=minorversion, catalog=cat,
    )
    return {
        b"type": meta.event_type.encode(),
        b"id": meta.id.encode(),
        b"source": meta.source.encode(),
        b"time": meta.time.encode(),
        b"minorversion": str(meta.minorversion).encode(),
        b"sourcehost": meta.sourcehost.encode(),
        b"sourcelib": meta.sourcelib.encode(),
        b"event_data": avro_body(cat[event_type], record),
    }
