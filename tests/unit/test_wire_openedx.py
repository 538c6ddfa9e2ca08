"""The test-side producer is faithful to openedx-events (it is what every other test trusts)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from openedx_events.event_bus.avro.deserializer import deserialize_bytes_to_event_data
from openedx_events.event_bus.avro.serializer import serialize_event_data_to_bytes
from opaque_keys.edx.keys import CourseKey

from badges.schemas.catalog import load_catalog
from tests.support import openedx
from tests.support.openedx import CCX_COURSE_PASSING, COURSE_PASSING

CATALOG = load_catalog()


@pytest.mark.parametrize("event_type", CATALOG.event_types)
def test_bodies_are_openedx_events_own_bytes(event_type: str) -> None:
    data = openedx.event_data(event_type, user_id=321, fields=None)
    body = openedx.serialize(event_type, data)
    assert body == serialize_event_data_to_bytes(data, openedx.signal(event_type))
    assert deserialize_bytes_to_event_data(body, openedx.signal(event_type)) == data


def test_overrides_are_typed_by_the_signal() -> None:
    data = openedx.event_data(
        COURSE_PASSING,
        user_id=5,
        fields={"course.course_key": "course-v1:edX+X+1", "course.start": "2024-01-01T00:00:00+00:00"},
    )
    course = data["course_passing_status"].course
    assert course.course_key == CourseKey.from_string("course-v1:edX+X+1")
    assert course.start == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert data["course_passing_status"].user.id == 5
    ccx = openedx.event_data(CCX_COURSE_PASSING, fields={"course.max_students_allowed": 3})
    assert ccx["course_passing_status"].course.max_students_allowed == 3


def test_unknown_override_paths_are_errors() -> None:
    with pytest.raises(KeyError):
        openedx.event_data(COURSE_PASSING, fields={"course.nope": "x"})


def test_headers_mirror_edx_event_bus_kafka() -> None:
    edx = openedx.edx_event_bus_kafka()
    md = openedx.metadata(COURSE_PASSING, time=datetime(2024, 5, 1, tzinfo=timezone.utc))
    assert openedx.kafka_headers(md) == list(edx.utils._get_headers_from_metadata(md).items())


def test_redis_fields_layout() -> None:
    entry = openedx.redis_fields(COURSE_PASSING, event_id="8a5b0c2e-07d5-11ef-9a4b-0242ac120002",
                                 time=datetime(2024, 5, 1, tzinfo=timezone.utc), user_id=9)
    assert list(entry) == [b"type", b"id", b"source", b"time", b"minorversion", b"sourcehost", b"sourcelib", b"event_data"]
    assert entry[b"time"] == b"2024-05-01T00:00:00+00:00"
    assert entry[b"sourcelib"] == CATALOG.openedx_events_version.encode()
    assert entry[b"event_data"] == openedx.avro_body(COURSE_PASSING, user_id=9)


@pytest.mark.parametrize("event_type", CATALOG.event_types)
def test_every_type_has_an_event_key(event_type: str) -> None:
    msg = openedx.kafka_message(event_type)
    assert msg.key is not None and msg.key[:1] == b"\x00"
