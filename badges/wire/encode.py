"""Our own events (badge lifecycle, ``badges dev send-sample``) in edx-event-bus-kafka's format.

Byte-for-byte what edx-event-bus-kafka 6.x produces (``internal/producer.py`` and ``utils.py``):
the value is the Avro record framed with the value schema id, the key the Avro *string* of the
event key framed with the key schema id, and the headers come in the order that
``_get_headers_from_metadata`` builds them. It uses the committed reader schemas only, so the
worker never imports openedx-events.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from io import BytesIO
from typing import Any

import fastavro

from badges.schemas.catalog import Catalog, EventSpec, load_catalog
from badges.wire.framing import frame

DEFAULT_SOURCE = "openedx/badges-worker"
SPEC_VERSION = b"1.0"  # edx-event-bus-kafka: "Always 1.0. See 'Fields' in OEP-41"
CONTENT_TYPE = b"application/avro"

Headers = list[tuple[str, bytes]]


@cache
def _hostname() -> str:
    return socket.gethostname()


@dataclass(frozen=True, slots=True)
class EventMetadata:
    """openedx-events' EventsMetadata, rendered as the bus carries it (all text)."""

    event_type: str
    id: str
    time: str
    source: str
    sourcehost: str
    sourcelib: str
    minorversion: int = 0


def event_metadata(
    event_type: str,
    *,
    event_id: str | uuid.UUID | None = None,
    time: datetime | None = None,
    source: str = DEFAULT_SOURCE,
    sourcehost: str | None = None,
    sourcelib: str | None = None,
    minorversion: int = 0,
    catalog: Catalog | None = None,
) -> EventMetadata:
    """Defaults as EventsMetadata's: uuid1 id, now in UTC, this host, the openedx-events version."""
    if time is None:
        when = datetime.now(timezone.utc)
    elif time.tzinfo is None:
        when = time.replace(tzinfo=timezone.utc)
    else:
        when = time.astimezone(timezone.utc)
    return EventMetadata(
        event_type=event_type,
        id=str(event_id if event_id is not None else uuid.uuid1()),
        time=when.isoformat(),
        source=source,
        sourcehost=sourcehost if sourcehost is not None else _hostname(),
        sourcelib=sourcelib if sourcelib is not None else (catalog or load_catalog()).openedx_events_version,
        minorversion=minorversion,
    )


def kafka_headers(meta: EventMetadata) -> Headers:
    return [
        ("ce_specversion", SPEC_VERSION),
        ("content-type", CONTENT_TYPE),
        ("ce_datacontenttype", CONTENT_TYPE),
        ("ce_type", meta.event_type.encode()),
        ("ce_id", meta.id.encode()),
        ("ce_source", meta.source.encode()),
        ("ce_time", meta.time.encode()),
        ("ce_minorversion", str(meta.minorversion).encode()),
        ("sourcehost", meta.sourcehost.encode()),
        ("sourcelib", meta.sourcelib.encode()),
    ]


def avro_body(spec: EventSpec, record: Mapping[str, Any]) -> bytes:
    """The plain Avro binary of a CloudEvent record (what ``serialize_event_data_to_bytes`` gives)."""
    out = BytesIO()
    fastavro.schemaless_writer(out, spec.parsed_schema, record)
    return out.getvalue()


def encode_key(key: str, key_schema_id: int) -> bytes:
    out = BytesIO()
    fastavro.schemaless_writer(out, "string", key)
    return frame(key_schema_id, out.getvalue())


def encode_kafka_event(
    event_type: str,
    record: Mapping[str, Any],
    *,
    value_schema_id: int,
    key: str | None,
    key_schema_id: int,
    event_id: str | uuid.UUID | None = None,
    time: datetime | None = None,
    source: str = DEFAULT_SOURCE,
    sourcehost: str | None = None,
    sourcelib: str | None = None,
    minorversion: int = 0,
    catalog: Catalog | None = None,
) -> tuple[bytes | None, bytes, Headers]:
    """``(key bytes, value bytes, headers)`` ready for a producer. Raises KeyError for an
    event type outside the catalog and ValueError/TypeError for a record that does not fit."""
    cat = catalog or load_catalog()
    spec = cat[event_type]
    meta = event_metadata(
        event_type, event_id=event_id, time=time, source=source, sourcehost=sourcehost,
        sourcelib=sourcelib, minorversion=minorversion, catalog=cat,
    )
    value = frame(value_schema_id, avro_body(spec, record))
    key_bytes = encode_key(key, key_schema_id) if key is not None else None
    return key_bytes, value, kafka_headers(meta)
