"""KafkaDecoder on messages built by openedx-events itself (tests/support/openedx.py)."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest

from badges.domain.events import Learner
from badges.schemas.catalog import load_catalog
from badges.wire.decode import KafkaDecoder
from badges.wire.errors import BadInput, OwnOutput
from badges.wire.framing import frame
from tests.support import openedx
from tests.support.openedx import BADGE_AWARDED, BADGE_REVOKED, COURSE_PASSING, DEMO_COURSE, GRADE_SUMMARY

CATALOG = load_catalog()
LEARNER_TYPES = CATALOG.rule_event_types
NO_USER_TYPES = sorted(s.event_type for s in CATALOG if s.user_path is None)
WHEN = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
LEARNER: dict[str, Any] = {"user_id": 1234, "username": "ada", "email": "ada@example.org", "name": "Ada Lovelace"}


@pytest.fixture(scope="module")
def decoder() -> KafkaDecoder:
    return KafkaDecoder(CATALOG)


def at(payload: dict[str, Any], path: str) -> Any:
    node: Any = payload
    for step in path.split("."):
        node = None if node is None else node.get(step)
    return node


def code_of(decoder: KafkaDecoder, headers: Any, value: Any, timestamp_ms: int | None = None) -> str:
    with pytest.raises(BadInput) as info:
        decoder.decode(headers, value, "t/0/0", timestamp_ms)
    assert info.value.detail
    return info.value.code


def replace_header(headers: list[tuple[str, bytes]], name: str, value: bytes | None) -> list[tuple[str, bytes]]:
    out = [(k, v) for k, v in headers if k != name]
    return out if value is None else [*out, (name, value)]


# -- every supported event type -----------------------------------------------------------------
@pytest.mark.parametrize("event_type", LEARNER_TYPES)
def test_every_learner_event_type_decodes(decoder: KafkaDecoder, event_type: str) -> None:
    event_id = uuid4()
    msg = openedx.kafka_message(event_type, event_id=event_id, time=WHEN, **LEARNER)
    event = decoder.decode(msg.headers, msg.value, "lms-topic/3/77", 1)

    assert event.event_type == event_type
    assert event.event_id == str(event_id)
    assert event.time == "2024-05-01T12:30:15.123456+00:00"
    assert event.time_us == (WHEN - EPOCH) // timedelta(microseconds=1)
    assert event.source == "openedx/lms/web"
    assert event.origin == "lms-topic/3/77"
    assert event.learner == Learner(1234, "ada", "ada@example.org", "Ada Lovelace")

    # Every rule key path holds what openedx-events serialized there.
    spec = CATALOG[event_type]
    expected = spec.rule_root(openedx.avro_record(event_type, **LEARNER))
    assert spec.key_paths
    for path in spec.key_paths:
        assert at(event.payload, path) == at(expected, path), path
    assert spec.user_path is not None
    user_rule_path = spec.user_path[1:] if spec.single_field else spec.user_path
    assert at(event.payload, ".".join((*user_rule_path, "pii", "email"))) == "ada@example.org"


@pytest.mark.parametrize("event_type", NO_USER_TYPES)
def test_event_types_without_user_data_are_refused(decoder: KafkaDecoder, event_type: str) -> None:
    msg = openedx.kafka_message(event_type)
    assert code_of(decoder, msg.headers, msg.value) == "no_user_data"


def test_field_overrides_show_in_the_payload(decoder: KafkaDecoder) -> None:
    msg = openedx.kafka_message(
        COURSE_PASSING,
        user_id=5,
        fields={"is_passing": False, "course.course_key": "course-v1:edX+DemoX+2024", "course.end": None},
    )
    event = decoder.decode(msg.headers, msg.value, "", None)
    assert event.payload["is_passing"] is False
    assert event.payload["course"]["course_key"] == "course-v1:edX+DemoX+2024"
    assert event.payload["course"]["end"] is None
    assert event.learner.id == 5


def test_the_learner_is_the_user_field_not_another_user_data(decoder: KafkaDecoder) -> None:
    exam = "org.openedx.learning.exam.attempt.submitted.v1"
    msg = openedx.kafka_message(exam, user_id=11, fields={"requesting_user.id": 99})
    event = decoder.decode(msg.headers, msg.value, "", None)
    assert event.learner.id == 11
    assert event.payload["requesting_user"]["id"] == 99


def test_empty_pii_values_become_empty_strings(decoder: KafkaDecoder) -> None:
    msg = openedx.kafka_message(COURSE_PASSING, user_id=8, username="", email="", name="")
    assert decoder.decode(msg.headers, msg.value, "", None).learner == Learner(8, "", "", "")


def test_aiokafka_style_tuple_headers(decoder: KafkaDecoder) -> None:
    msg = openedx.kafka_message(COURSE_PASSING)
    assert decoder.decode(tuple(msg.headers), msg.value, "", None).event_type == COURSE_PASSING


# -- time and metadata ---------------------------------------------------------------------------
def test_missing_ce_time_falls_back_to_the_message_timestamp(decoder: KafkaDecoder) -> None:
    msg = openedx.kafka_message(COURSE_PASSING)
    event = decoder.decode(replace_header(msg.headers, "ce_time", None), msg.value, "", 1_714_564_800_123)
    assert event.time_us == 1_714_564_800_123_000
    assert event.time == "2024-05-01T12:00:00.123000+00:00"


@pytest.mark.parametrize("text", ["2024-05-01T14:30:15.123456+02:00", "2024-05-01T12:30:15.123456Z"])
def test_ce_time_is_kept_verbatim_and_parsed(decoder: KafkaDecoder, text: str) -> None:
    msg = openedx.kafka_message(COURSE_PASSING)
    event = decoder.decode(replace_header(msg.headers, "ce_time", text.encode()), msg.value, "", None)
    assert event.time == text
    assert event.time_us == (WHEN - EPOCH) // timedelta(microseconds=1)


def test_bad_metadata_headers(decoder: KafkaDecoder) -> None:
    h = openedx.kafka_message(COURSE_PASSING).headers
    value = openedx.kafka_message(COURSE_PASSING).value
    assert code_of(decoder, replace_header(h, "ce_time", b"last tuesday"), value) == "bad_header"
    assert code_of(decoder, replace_header(h, "ce_time", None), value, None) == "bad_header"
    assert code_of(decoder, replace_header(h, "ce_id", None), value) == "bad_header"
    assert code_of(decoder, replace_header(h, "ce_id", b"\xff\xfe"), value) == "bad_header"
    assert code_of(decoder, [*h, ("ce_type", COURSE_PASSING.encode())], value) == "bad_header"
    assert code_of(decoder, [*h, ("ce_id", b"another")], value) == "bad_header"
    assert code_of(decoder, [("ce_type",)], value) == "bad_header"
    # repeated headers that are not CloudEvents attributes are fine
    assert decoder.decode([*h, ("x-trace", b"1"), ("x-trace", b"2")], value, "", None).learner.id == 42


def test_missing_ce_source_is_empty(decoder: KafkaDecoder) -> None:
    msg = openedx.kafka_message(COURSE_PASSING)
    assert decoder.decode(replace_header(msg.headers, "ce_source", None), msg.value, "", None).source == ""


# -- the bad-input corpus ------------------------------------------------------------------------
def test_bad_input_corpus(decoder: KafkaDecoder) -> None:
    key, value, headers = openedx.kafka_message(COURSE_PASSING)
    other = openedx.kafka_message("org.openedx.learning.certificate.created.v1")
    grades = openedx.kafka_message(GRADE_SUMMARY)
    cases = {
        "truncated body": (headers, value[: len(value) // 2], "avro_decode_error"),
        "truncated header": (headers, value[:3], "truncated_frame"),
        "wrong magic byte": (headers, b"\x01" + value[1:], "bad_magic_byte"),
        "JSON value": (headers, b'{"user": 1}', "bad_magic_byte"),
        "unknown ce_type": (replace_header(headers, "ce_type", b"org.openedx.learning.nope.v1"), value, "unknown_event_type"),
        "missing ce_type": (replace_header(headers, "ce_type", None), value, "missing_ce_type"),
        "empty ce_type": (replace_header(headers, "ce_type", b""), value, "missing_ce_type"),
        "no headers": (None, value, "missing_ce_type"),
        "another type's body": (headers, other.value, "avro_decode_error"),
        "trailing bytes": (headers, value + b"\x00\x02", "avro_decode_error"),
        "garbage body": (headers, frame(1, b"\xff" * 40), "avro_decode_error"),
        "header only": (headers, frame(1, b""), "avro_decode_error"),
        "empty value": (headers, b"", "empty_value"),
        "tombstone": (headers, None, "empty_value"),
        "huge value": (headers, value + b"\x00" * 1_000_000, "value_too_large"),
        "no user data": (grades.headers, grades.value, "no_user_data"),
    }
    got = {name: code_of(decoder, h, v) for name, (h, v, _) in cases.items()}
    assert got == {name: code for name, (_, _, code) in cases.items()}
    assert key is not None


def test_max_value_bytes_is_configurable() -> None:
    msg = openedx.kafka_message(COURSE_PASSING)
    small = KafkaDecoder(CATALOG, max_value_bytes=len(msg.value) - 1)
    assert code_of(small, msg.headers, msg.value) == "value_too_large"
    assert KafkaDecoder(CATALOG, max_value_bytes=len(msg.value)).decode(msg.headers, msg.value, "", None)


def test_a_body_of_any_differently_shaped_type_is_refused(decoder: KafkaDecoder) -> None:
    """Without a registry only the bytes tell; every pair of distinct layouts is caught."""

    def shape(event_type: str) -> dict[str, Any]:
        schema = copy.deepcopy(CATALOG[event_type].schema)
        schema.pop("namespace")
        return schema

    messages = {t: openedx.kafka_message(t) for t in CATALOG.event_types}
    checked = 0
    for claimed in LEARNER_TYPES:
        for actual in CATALOG.event_types:
            if shape(claimed) == shape(actual):
                continue
            headers = replace_header(messages[actual].headers, "ce_type", claimed.encode())
            assert code_of(decoder, headers, messages[actual].value) == "avro_decode_error", (claimed, actual)
            checked += 1
    assert checked > 500


def test_null_user_data_is_no_user_data(decoder: KafkaDecoder) -> None:
    reader = decoder.reader_for(COURSE_PASSING)
    record = openedx.avro_record(COURSE_PASSING)
    record["course_passing_status"]["user"] = None
    with pytest.raises(BadInput) as info:
        decoder.build_event(reader, record, "id", "t", 0, "s", "o")
    assert info.value.code == "no_user_data"
    record["course_passing_status"]["user"] = {"id": 3, "is_active": True, "pii": None}
    assert decoder.build_event(reader, record, "id", "t", 0, "s", "o").learner == Learner(3)


# -- our own output ------------------------------------------------------------------------------
@pytest.mark.parametrize("event_type", [BADGE_AWARDED, BADGE_REVOKED])
def test_own_output_is_recognised_not_dead_lettered(decoder: KafkaDecoder, event_type: str) -> None:
    msg = openedx.kafka_message(event_type, user_id=3)
    with pytest.raises(OwnOutput) as info:
        decoder.decode(msg.headers, msg.value, "", None)
    assert info.value.code == "own_output" and info.value.event_type == event_type
    # ...before the value is even looked at
    with pytest.raises(OwnOutput):
        decoder.decode(msg.headers, b"", "", None)
    # and decodable on request (to inspect our lifecycle topic)
    event = KafkaDecoder(CATALOG, skip_own_output=False).decode(msg.headers, msg.value, "", None)
    assert event.learner.id == 3 and event.payload["template"]["origin"] == "credly"


def test_decode_record_reads_a_plain_avro_body(decoder: KafkaDecoder) -> None:
    body = openedx.avro_body(COURSE_PASSING, user_id=9, fields={"course.course_key": DEMO_COURSE})
    event = decoder.decode_record(COURSE_PASSING, body, event_id="e1", time="2024-05-01T12:00:00Z", source="s", origin="o")
    assert (event.learner.id, event.payload["course"]["course_key"], event.event_id) == (9, DEMO_COURSE, "e1")
    assert event.time_us == 1_714_564_800_000_000
