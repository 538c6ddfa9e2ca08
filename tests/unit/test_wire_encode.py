"""Our producer side (badges.wire.encode) against KafkaDecoder and edx-event-bus-kafka itself.

edx-event-bus-kafka reads Django settings at import time, so these tests configure an empty
Django settings object (tests/support/openedx.edx_event_bus_kafka) and point it at the
stand-in registry with override_settings. The consumer is the real KafkaEventConsumer class,
created without its broker connection (``object.__new__``): its signal selection, value
deserialization (confluent-kafka's AvroDeserializer via ``get_deserializer``), header parsing
and signal emission run unchanged on real ``confluent_kafka.Message`` objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message
from django.test import override_settings

from badges.domain.events import Learner
from badges.schemas.catalog import load_catalog
from badges.wire.decode import KafkaDecoder
from badges.wire.encode import encode_kafka_event, event_metadata, kafka_headers
from badges.wire.errors import OwnOutput
from badges.wire.registry import key_subject, value_subject
from tests.support import openedx
from tests.support.openedx import BADGE_AWARDED, BADGE_REVOKED, COURSE_PASSING
from tests.support.registry import StandInRegistry

CATALOG = load_catalog()
TOPIC = "learning-badges-lifecycle"
WHEN = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)
EVENT_ID = UUID("8a5b0c2e-07d5-11ef-9a4b-0242ac120002")


def badge_record(user_id: int = 7) -> dict[str, Any]:
    return {
        "badge": {
            "uuid": "3c5d2b7e-7d8d-5a49-9d8e-1f3f7f9d1a22",
            "user": {
                "id": user_id,
                "is_active": True,
                "pii": {"username": "ada", "email": "ada@example.org", "name": "Ada Lovelace"},
            },
            "template": {
                "uuid": "7d4f6a52-0000-4000-8000-0000000000aa",
                "origin": "credly",
                "name": "Demo badge",
                "description": None,
                "image_url": "https://example.org/badge.png",
            },
        }
    }


@pytest.fixture(scope="module")
def edx() -> Any:
    return openedx.edx_event_bus_kafka()


@pytest.fixture
def registry() -> Iterator[StandInRegistry]:
    with StandInRegistry() as reg:
        yield reg


def encode(event_type: str, record: dict[str, Any],
           registry: StandInRegistry | None = None) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    value_id = key_id = 1
    if registry is not None:
        value_id = registry.register(value_subject(TOPIC, event_type), CATALOG[event_type].schema)
        key_id = registry.register(key_subject(TOPIC), openedx.key_schema_string(event_type) or '"string"')
    return encode_kafka_event(
        event_type, record, value_schema_id=value_id, key=record["badge"]["uuid"], key_schema_id=key_id,
        event_id=EVENT_ID, time=WHEN, source="openedx/badges-worker", sourcehost="worker-1",
    )


@pytest.mark.parametrize("event_type", [BADGE_AWARDED, BADGE_REVOKED])
def test_round_trip_through_kafka_decoder(event_type: str) -> None:
    key, value, headers = encode(event_type, badge_record())
    with pytest.raises(OwnOutput):
        KafkaDecoder(CATALOG).decode(headers, value, "", None)
    event = KafkaDecoder(CATALOG, skip_own_output=False).decode(headers, value, "t/1/2", None)
    assert event.learner == Learner(7, "ada", "ada@example.org", "Ada Lovelace")
    assert event.payload == badge_record()["badge"]
    assert (event.event_id, event.time, event.source) == (str(EVENT_ID), WHEN.isoformat(), "openedx/badges-worker")
    assert key == b"\x00\x00\x00\x00\x01" + b"\x48" + b"3c5d2b7e-7d8d-5a49-9d8e-1f3f7f9d1a22"


def test_every_catalog_event_type_round_trips() -> None:
    decoder = KafkaDecoder(CATALOG, skip_own_output=False)
    for spec in CATALOG:
        if spec.user_path is None:
            continue
        record = openedx.avro_record(spec.event_type, user_id=55)
        _, value, headers = encode_kafka_event(spec.event_type, record, value_schema_id=3, key=None, key_schema_id=4)
        assert value == b"\x00\x00\x00\x00\x03" + openedx.avro_body(spec.event_type, user_id=55)
        event = decoder.decode(headers, value, "", None)
        assert event.learner.id == 55 and event.payload == spec.rule_root(record)


def test_headers_are_exactly_edx_event_bus_kafkas(edx: Any) -> None:
    _, _, headers = encode(BADGE_AWARDED, badge_record())
    metadata = edx.utils._get_metadata_from_headers(headers)  # parses every value back
    assert metadata.id == EVENT_ID and metadata.time == WHEN and metadata.sourcehost == "worker-1"
    assert metadata.sourcelib == tuple(map(int, CATALOG.openedx_events_version.split(".")))
    assert list(edx.utils._get_headers_from_metadata(metadata).items()) == headers


def test_defaults_follow_events_metadata() -> None:
    meta = event_metadata(BADGE_AWARDED, time=datetime(2024, 5, 1, 14, 0, tzinfo=timezone.utc).astimezone())
    assert meta.time == "2024-05-01T14:00:00+00:00"
    assert UUID(meta.id).version == 1 and meta.minorversion == 0
    assert meta.source == "openedx/badges-worker" and meta.sourcehost
    naive = event_metadata(BADGE_AWARDED, time=datetime(2024, 5, 1, 14, 0))
    assert naive.time == "2024-05-01T14:00:00+00:00"
    assert [k for k, _ in kafka_headers(meta)] == [
        "ce_specversion", "content-type", "ce_datacontenttype", "ce_type", "ce_id", "ce_source",
        "ce_time", "ce_minorversion", "sourcehost", "sourcelib",
    ]


def test_a_record_that_does_not_fit_the_schema_is_refused() -> None:
    record = badge_record()
    del record["badge"]["template"]["origin"]
    with pytest.raises((ValueError, TypeError)):
        encode(BADGE_AWARDED, record)


@pytest.mark.parametrize("event_type", [BADGE_AWARDED, BADGE_REVOKED])
def test_edx_event_bus_kafka_consumes_our_events(edx: Any, registry: StandInRegistry, event_type: str) -> None:
    key, value, headers = encode(event_type, badge_record(), registry)
    received: list[dict[str, Any]] = []
    signal = openedx.signal(event_type)

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    signal.connect(receiver, weak=False)
    try:
        with override_settings(EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL=registry.url, EVENT_BUS_KAFKA_AUDIT_LOGGING_ENABLED=False):
            consumer = object.__new__(edx.consumer.KafkaEventConsumer)
            consumer.schema_registry_client = edx.config.get_schema_registry_client()
            msg = Message(topic=TOPIC, partition=0, offset=9, key=key, value=value, headers=headers,  # type: ignore[arg-type]  # confluent's stub: list is invariant
                          timestamp=(TIMESTAMP_CREATE_TIME, 1_714_564_800_000))
            found = consumer.determine_signal(msg)
            msg.set_value(consumer._deserialize_message_value(msg, found))
            consumer.emit_signals_from_message(msg, found)
            consumer.schema_registry_client.close()
    finally:
        signal.disconnect(receiver)

    assert found is signal
    (kwargs,) = received
    badge = kwargs["badge"]
    assert badge.uuid == "3c5d2b7e-7d8d-5a49-9d8e-1f3f7f9d1a22"
    assert (badge.user.id, badge.user.pii.email) == (7, "ada@example.org")
    assert (badge.template.origin, badge.template.name, badge.template.description) == ("credly", "Demo badge", None)
    metadata = kwargs["metadata"]
    assert (metadata.id, metadata.time, metadata.source) == (EVENT_ID, WHEN, "openedx/badges-worker")
    assert kwargs["from_event_bus"] is True


def test_test_producer_messages_pass_edx_event_bus_kafka_too(edx: Any, registry: StandInRegistry) -> None:
    """tests/support/openedx.py output is what the real producer would send."""
    from confluent_kafka.serialization import MessageField, SerializationContext

    data = openedx.event_data(COURSE_PASSING, user_id=3)
    field = openedx.key_field(COURSE_PASSING)
    with override_settings(EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL=registry.url):
        key_ser, value_ser = edx.producer.get_serializers(openedx.signal(COURSE_PASSING), field)
        key = key_ser(edx.producer.extract_event_key(data, field), SerializationContext(TOPIC, MessageField.KEY))
        value = value_ser(data, SerializationContext(TOPIC, MessageField.VALUE))
        edx.config.get_schema_registry_client().close()
    md = openedx.metadata(COURSE_PASSING, event_id=EVENT_ID, time=WHEN)
    msg = openedx.kafka_message(
        COURSE_PASSING, user_id=3, event_id=EVENT_ID, time=WHEN, value_schema_id=value[4], key_schema_id=key[4]
    )
    assert (msg.key, msg.value) == (key, value)
    assert msg.headers == list(edx.utils._get_headers_from_metadata(md).items())
