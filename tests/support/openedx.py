"""Test-side producer of real Open edX events, built with the openedx-events package itself.

Event data are the signal's own attrs classes (``signal.init_data``), filled field by field
from their declared types; serialization is openedx-events' ``AvroSignalSerializer`` (the bytes
equal ``serialize_event_data_to_bytes``); framing and headers are those of edx-event-bus-kafka
(``internal/producer.py``, ``internal/utils.py``) and edx-event-bus-redis.

    key, value, headers = kafka_message(COURSE_PASSING, user_id=7, fields={"is_passing": False})

``fields`` maps rule key paths (SPEC §7: inside the data field for one-field signals) to values;
strings are converted to the field's type (opaque keys, datetimes, UUIDs). openedx-events needs
no Django settings for any of this.
"""

from __future__ import annotations

import io
import json
import typing
from collections.abc import Mapping
from datetime import datetime, timezone
from functools import cache
from typing import Any, NamedTuple
from uuid import UUID, uuid5

import attr
import fastavro
from openedx_events.data import EventsMetadata
from openedx_events.event_bus.avro.serializer import AvroSignalSerializer
from openedx_events.tooling import OpenEdxPublicSignal

from badges.schemas.catalog import EventSpec, load_catalog
from badges.wire.framing import frame

COURSE_PASSING = "org.openedx.learning.course.passing.status.updated.v1"
CCX_COURSE_PASSING = "org.openedx.learning.ccx.course.passing.status.updated.v1"
BADGE_AWARDED = "org.openedx.learning.badge.awarded.v1"
BADGE_REVOKED = "org.openedx.learning.badge.revoked.v1"
GRADE_SUMMARY = "org.openedx.learning.course.persistent_grade_summary.changed.v1"

DEMO_COURSE = "course-v1:OpenedX+DemoX+Demo_Course"
DEMO_CCX = "ccx-v1:OpenedX+DemoX+Demo_Course+ccx@1"
DEMO_BLOCK = "block-v1:OpenedX+DemoX+Demo_Course+type@problem+block@p1"
DEFAULT_TIME = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
DEFAULT_USER_ID = 42
LMS_SOURCE = "openedx/lms/web"
LMS_HOST = "lms.test"
VALUE_SCHEMA_ID = 1
KEY_SCHEMA_ID = 2
_NS = UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")

# Event key fields as Open edX configures them (EVENT_BUS_PRODUCER_CONFIG "event_key_field");
# types not listed fall back to the first course key / usage key / uuid field in schema order,
# then to the learner's username.
NATURAL_KEYS = {
    COURSE_PASSING: "course_passing_status.course.course_key",
    CCX_COURSE_PASSING: "course_passing_status.course.ccx_course_key",
    BADGE_AWARDED: "badge.uuid",
    BADGE_REVOKED: "badge.uuid",
    "org.openedx.learning.certificate.created.v1": "certificate.course.course_key",
    "org.openedx.learning.certificate.changed.v1": "certificate.course.course_key",
    "org.openedx.learning.certificate.revoked.v1": "certificate.course.course_key",
    "org.openedx.learning.course.unenrollment.completed.v1": "enrollment.course.course_key",
    "org.openedx.learning.xblock.skill.verified.v1": "xblock_info.usage_key",
    "org.openedx.learning.program.certificate.awarded.v1": "program_certificate.program.uuid",
    "org.openedx.learning.program.certificate.revoked.v1": "program_certificate.program.uuid",
}
_KEY_LEAVES = ("course_key", "ccx_course_key", "usage_key", "course_id", "uuid")

_STR_DEFAULTS = {
    "username": "staff",
    "email": "staff@example.com",
    "name": "Staff Member",
    "display_name": "Demonstration Course",
    "mode": "verified",
    "current_status": "downloadable",
    "previous_status": "notpassing",
    "grade": "0.85",
    "letter_grade": "Pass",
    "status": "approved",
    "role": "staff",
    "org_key": "OpenedX",
    "coach_email": "coach@example.com",
    "download_url": "https://lms.test/certificates/1",
    "url": "https://lms.test/programs/1",
    "image_url": "https://lms.test/badge.png",
    "origin": "credly",
    "program_type": "MicroMasters",
    "title": "Demo Program",
    "exam_type": "proctored",
}


class KafkaMessage(NamedTuple):
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


# -- signals and serializers (cached: building an AvroSignalSerializer walks every class) -------
@cache
def signal(event_type: str) -> OpenEdxPublicSignal:
    import openedx_events.learning.signals  # noqa: F401 - defines the signals

    return OpenEdxPublicSignal.get_signal_by_type(event_type)


@cache
def serializer(event_type: str) -> AvroSignalSerializer:
    return AvroSignalSerializer(signal(event_type))


@cache
def _parsed(event_type: str) -> Any:
    return fastavro.parse_schema(serializer(event_type).schema)


def value_schema_string(event_type: str) -> str:
    """What edx-event-bus-kafka registers for the value (``schema_string()``)."""
    return serializer(event_type).schema_string()


def spec(event_type: str) -> EventSpec:
    return load_catalog()[event_type]


def full_path(event_type: str, rule_path: str) -> tuple[str, ...]:
    """A rule key path (SPEC §7) as a path from the record root."""
    single = spec(event_type).single_field
    parts = tuple(rule_path.split("."))
    return (single, *parts) if single is not None else parts


# -- building event data -----------------------------------------------------------------------
def _opaque(tp: type) -> bool:
    return hasattr(tp, "from_string") and isinstance(tp, type)


def _default(tp: Any, name: str, path: tuple[str, ...]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (list, typing.List):
        (item,) = typing.get_args(tp)
        return [_default(item, name, path), _default(item, name, path)]
    if origin in (dict, typing.Dict):
        return {"key": "value"}
    if tp is bool:
        return True
    if tp is int:
        return 7
    if tp is float:
        return 0.85
    if tp is str:
        if name == "uuid" or name.endswith("_uuid"):
            return str(uuid5(_NS, ".".join(path)))
        return _STR_DEFAULTS.get(name, f"{name}-value")
    if tp is datetime:
        return DEFAULT_TIME
    if tp is UUID:
        return uuid5(_NS, ".".join(path))
    if _opaque(tp):
        return _parse_opaque(tp, _opaque_default(tp))
    raise TypeError(f"no test value for {tp!r} at {'.'.join(path)}")


@cache
def _parse_opaque(tp: Any, text: str) -> Any:
    """Opaque keys are immutable and slow to parse: parse each one once."""
    return tp.from_string(text)


def _opaque_default(tp: type) -> str:
    name = tp.__name__
    if "CCX" in name:
        return DEMO_CCX
    if "Usage" in name and "Library" in name:
        return "lb:OpenedX:lib1:problem:p1"
    if "Usage" in name:
        return DEMO_BLOCK
    if "Collection" in name:
        return "lib-collection:OpenedX:lib1:col1"
    if "Container" in name:
        return "lct:OpenedX:lib1:unit:u1"
    if "Library" in name:
        return "lib:OpenedX:lib1"
    return DEMO_COURSE


def _coerce(tp: Any, value: Any, path: tuple[str, ...]) -> Any:
    if value is None or typing.get_origin(tp) is not None:
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    if tp is datetime and isinstance(value, str):
        return datetime.fromisoformat(value)
    if tp is UUID:
        return UUID(str(value))
    if _opaque(tp):
        return _parse_opaque(tp, str(value))
    if tp is float and isinstance(value, int):
        return float(value)
    raise TypeError(f"{'.'.join(path)}: {value!r} is not a {getattr(tp, '__name__', tp)}")


def _build(tp: Any, path: tuple[str, ...], overrides: Mapping[tuple[str, ...], Any], used: set) -> Any:
    if path in overrides:
        used.add(path)
        return _coerce(tp, overrides[path], path)
    if hasattr(tp, "__attrs_attrs__"):
        return tp(**{a.name: _build(a.type, (*path, a.name), overrides, used) for a in attr.fields(tp)})
    return _default(tp, path[-1], path)


def learner_fields(
    event_type: str,
    user_id: int = DEFAULT_USER_ID,
    username: str | None = None,
    email: str | None = None,
    name: str | None = None,
) -> dict[tuple[str, ...], Any]:
    """Overrides that put this learner in the event's UserData (SPEC §2 "Learner identity")."""
    user_path = spec(event_type).user_path
    if user_path is None:
        return {}
    username = f"learner{user_id}" if username is None else username
    return {
        (*user_path, "id"): user_id,
        (*user_path, "is_active"): True,
        (*user_path, "pii", "username"): username,
        (*user_path, "pii", "email"): f"{username}@example.com" if email is None else email,
        (*user_path, "pii", "name"): f"Learner {user_id}" if name is None else name,
    }


def event_data(
    event_type: str,
    *,
    user_id: int = DEFAULT_USER_ID,
    username: str | None = None,
    email: str | None = None,
    name: str | None = None,
    fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``signal.send_event``: instances of the signal's attrs classes."""
    overrides = learner_fields(event_type, user_id, username, email, name)
    for rule_path, value in (fields or {}).items():
        overrides[full_path(event_type, rule_path)] = value
    used: set[tuple[str, ...]] = set()
    data = {
        key: _build(tp, (key,), overrides, used) for key, tp in signal(event_type).init_data.items()
    }
    unknown = [".".join(p) for p in overrides if p not in used and not _under_override(p, used)]
    if unknown:
        raise KeyError(f"{event_type} has no field(s) {unknown}")
    return data


def _under_override(path: tuple[str, ...], used: set[tuple[str, ...]]) -> bool:
    """A learner field below an explicitly overridden (e.g. nulled) record."""
    return any(path[: len(u)] == u for u in used)


def avro_record(event_type: str, **kwargs: Any) -> dict[str, Any]:
    return serializer(event_type).to_dict(event_data(event_type, **kwargs))


def avro_body(event_type: str, **kwargs: Any) -> bytes:
    """Same bytes as ``serialize_event_data_to_bytes`` (without rebuilding the serializer)."""
    return serialize(event_type, event_data(event_type, **kwargs))


def serialize(event_type: str, data: Mapping[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _parsed(event_type), serializer(event_type).to_dict(data))
    return out.getvalue()


# -- keys, metadata and headers ----------------------------------------------------------------
@cache
def key_field(event_type: str) -> str | None:
    """The event key field path (edx-event-bus-kafka ``event_key_field``)."""
    if event_type in NATURAL_KEYS:
        return NATURAL_KEYS[event_type]
    full = {".".join(full_path(event_type, p)): t for p, t in spec(event_type).key_paths.items()}
    for leaf in _KEY_LEAVES:
        for path, avro_type in full.items():
            if path.rsplit(".", 1)[-1] == leaf and avro_type == "string":
                return path
    user_path = spec(event_type).user_path
    return ".".join((*user_path, "pii", "username")) if user_path else None


def extract_key(event_type: str, data: Mapping[str, Any], field_path: str) -> Any:
    """edx-event-bus-kafka's ``extract_event_key``, then its key serializer's ``to_dict``
    (the signal serializer's, which turns opaque keys and UUIDs into strings)."""
    current: Any = data
    for name in field_path.split("."):
        current = current[name] if isinstance(current, Mapping) else getattr(current, name)
    return serializer(event_type).to_dict(current)


def key_schema_string(event_type: str) -> str | None:
    """What edx-event-bus-kafka registers for the key (``extract_key_schema``)."""
    field_path = key_field(event_type)
    if field_path is None:
        return None
    sub: Any = serializer(event_type).schema
    for name in field_path.split("."):
        if "fields" not in sub:
            sub = sub["type"]
        sub = next(f for f in sub["fields"] if f["name"] == name)
    return json.dumps(sub, sort_keys=True)


def metadata(
    event_type: str,
    *,
    event_id: UUID | str | None = None,
    time: datetime | None = None,
    source: str = LMS_SOURCE,
    sourcehost: str = LMS_HOST,
) -> EventsMetadata:
    """openedx-events' own metadata object (defaults: uuid1 id, now in UTC)."""
    return EventsMetadata(
        event_type=event_type,
        id=UUID(str(event_id)) if event_id is not None else None,
        minorversion=signal(event_type).minor_version,
        source=source,
        sourcehost=sourcehost,
        time=time,
    )


def kafka_headers(md: EventsMetadata) -> list[tuple[str, bytes]]:
    """edx-event-bus-kafka ``_get_headers_from_metadata``, in its order (its module needs Django
    settings to import; tests/unit/test_wire_openedx.py checks this mirror against it)."""
    return [
        ("ce_specversion", b"1.0"),
        ("content-type", b"application/avro"),
        ("ce_datacontenttype", b"application/avro"),
        ("ce_type", md.event_type.encode("utf8")),
        ("ce_id", str(md.id).encode("utf8")),
        ("ce_source", md.source.encode("utf8")),
        ("ce_time", md.time.isoformat().encode("utf8")),
        ("ce_minorversion", str(md.minorversion).encode("utf8")),
        ("sourcehost", md.sourcehost.encode("utf8")),
        ("sourcelib", ".".join(map(str, md.sourcelib)).encode("utf8")),
    ]


def redis_metadata_fields(md: EventsMetadata) -> dict[bytes, bytes]:
    """edx-event-bus-redis ``get_headers_from_metadata``."""
    return {
        b"type": md.event_type.encode("utf8"),
        b"id": str(md.id).encode("utf8"),
        b"source": md.source.encode("utf8"),
        b"time": md.time.isoformat().encode("utf8"),
        b"minorversion": str(md.minorversion).encode("utf8"),
        b"sourcehost": md.sourcehost.encode("utf8"),
        b"sourcelib": ".".join(map(str, md.sourcelib)).encode("utf8"),
    }


def _encode_key(key: str, key_schema_id: int) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, "string", key)
    return frame(key_schema_id, out.getvalue())


# -- whole messages ----------------------------------------------------------------------------
def kafka_message(
    event_type: str,
    *,
    value_schema_id: int = VALUE_SCHEMA_ID,
    key_schema_id: int = KEY_SCHEMA_ID,
    event_id: UUID | str | None = None,
    time: datetime | None = None,
    source: str = LMS_SOURCE,
    sourcehost: str = LMS_HOST,
    user_id: int = DEFAULT_USER_ID,
    username: str | None = None,
    email: str | None = None,
    name: str | None = None,
    fields: Mapping[str, Any] | None = None,
) -> KafkaMessage:
    """A message as edx-event-bus-kafka produces it: framed Avro key and value, ce_* headers."""
    data = event_data(event_type, user_id=user_id, username=username, email=email, name=name, fields=fields)
    md = metadata(event_type, event_id=event_id, time=time, source=source, sourcehost=sourcehost)
    kf = key_field(event_type)
    key = _encode_key(extract_key(event_type, data, kf), key_schema_id) if kf is not None else None
    return KafkaMessage(key, frame(value_schema_id, serialize(event_type, data)), kafka_headers(md))


def redis_fields(
    event_type: str,
    *,
    event_id: UUID | str | None = None,
    time: datetime | None = None,
    source: str = LMS_SOURCE,
    sourcehost: str = LMS_HOST,
    user_id: int = DEFAULT_USER_ID,
    username: str | None = None,
    email: str | None = None,
    name: str | None = None,
    fields: Mapping[str, Any] | None = None,
) -> dict[bytes, bytes]:
    """An XADD field dict as edx-event-bus-redis writes it (``RedisMessage.to_binary_dict``)."""
    data = event_data(event_type, user_id=user_id, username=username, email=email, name=name, fields=fields)
    md = metadata(event_type, event_id=event_id, time=time, source=source, sourcehost=sourcehost)
    entry = redis_metadata_fields(md)
    entry[b"event_data"] = serialize(event_type, data)
    return entry


def supported_event_types() -> list[str]:
    return load_catalog().event_types


# -- edx-event-bus-kafka itself ----------------------------------------------------------------
def edx_event_bus_kafka() -> Any:
    """edx-event-bus-kafka's ``internal`` package, for cross-checks against the real thing.

    Its modules read Django settings at import time, so an empty settings object is configured
    first (once per process; openedx-events itself needs none). Tests point it at a registry
    with ``django.test.override_settings(EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL=...)``, which also
    clears its cached clients and serializers.
    """
    from django.conf import settings

    if not settings.configured:
        settings.configure()
    from edx_event_bus_kafka import internal
    from edx_event_bus_kafka.internal import config, consumer, producer, utils  # noqa: F401 - loads the submodules `internal` is used through

    return internal
