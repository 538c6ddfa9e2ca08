"""Confluent framing, event time parsing, dead-letter headers and BadInput itself."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import pytest

from badges.wire.deadletter import dead_letter_headers
from badges.wire.errors import BadInput, OwnOutput
from badges.wire.framing import frame, schema_id_of, unframe
from badges.wire.timeparse import iso_to_us, ms_to_iso, us_to_iso


# -- framing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("schema_id", [0, 1, 255, 256, 65_536, 2**31 - 1])
def test_frame_round_trip(schema_id: int) -> None:
    value = frame(schema_id, b"avro")
    assert value[0] == 0 and len(value) == 9
    assert int.from_bytes(value[1:5], "big") == schema_id
    assert unframe(value) == (schema_id, b"avro")
    assert schema_id_of(value) == schema_id


def test_frame_rejects_ids_outside_the_registry_range() -> None:
    with pytest.raises(ValueError):
        frame(-1, b"")
    with pytest.raises(ValueError):
        frame(2**31, b"")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "empty_value"),
        (b"", "empty_value"),
        (b"\x01\x00\x00\x00\x01body", "bad_magic_byte"),
        (b"{", "bad_magic_byte"),
        (b"\x00", "truncated_frame"),
        (b"\x00\x00\x00\x01", "truncated_frame"),
    ],
)
def test_unframe_errors(value: bytes | None, code: str) -> None:
    with pytest.raises(BadInput) as info:
        unframe(value)
    assert info.value.code == code
    assert info.value.detail


def test_header_only_frame_has_an_empty_body() -> None:
    assert unframe(b"\x00\x00\x00\x00\x07") == (7, b"")


# -- time ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00+00:00", datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),
        ("2024-05-01T12:00:00.123456+00:00", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),  # naive = UTC
        ("1969-12-31T23:59:59.999999+00:00", datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)),
    ],
)
def test_iso_to_us(text: str, expected: datetime) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert iso_to_us(text) == (expected - epoch) // timedelta(microseconds=1)


def test_iso_to_us_keeps_every_microsecond() -> None:
    # a float timestamp would round some of these
    base = iso_to_us("2024-05-01T12:00:00+00:00")
    for us in range(1, 1000, 7):
        assert iso_to_us(f"2024-05-01T12:00:00.{us:06d}+00:00") - base == us


def test_iso_round_trips() -> None:
    us = iso_to_us("2024-05-01T12:00:00.000042+00:00")
    assert us_to_iso(us) == "2024-05-01T12:00:00.000042+00:00"
    assert ms_to_iso(1_714_564_800_123) == "2024-05-01T12:00:00.123000+00:00"


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00", "12:00"])
def test_iso_to_us_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        iso_to_us(text)


# -- dead letters --------------------------------------------------------------------------------
def test_dead_letter_headers_keep_the_original_and_add_the_reason() -> None:
    original = [("ce_type", b"org.example"), ("ce_id", b"abc"), ("ce_type", b"dup")]
    now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    headers = dead_letter_headers(original, "bad_magic_byte", "first byte is 0x7b", "lms-topic", 3, 1234, now)
    assert headers[:3] == original
    assert dict(headers[3:]) == {
        "dlq_reason": b"bad_magic_byte",
        "dlq_detail": b"first byte is 0x7b",
        "dlq_source_topic": b"lms-topic",
        "dlq_source_partition": b"3",
        "dlq_source_offset": b"1234",
        "dlq_time": b"2024-05-01T12:00:00+00:00",
    }
    assert original == [("ce_type", b"org.example"), ("ce_id", b"abc"), ("ce_type", b"dup")]


def test_dead_letter_headers_without_original_headers_and_long_detail() -> None:
    headers = dict(dead_letter_headers(None, "avro_decode_error", "é" * 2000, "t", 0, 0))
    assert len(headers["dlq_detail"]) <= 1000
    headers["dlq_detail"].decode("utf-8")  # cut on a character boundary
    assert datetime.fromisoformat(headers["dlq_time"].decode()).tzinfo is not None


# -- BadInput ------------------------------------------------------------------------------------
def test_bad_input_codes_are_checked_and_pickle() -> None:
    with pytest.raises(ValueError):
        BadInput("not_a_code")
    err = pickle.loads(pickle.dumps(BadInput("no_user_data", "why")))
    assert (err.code, err.detail) == ("no_user_data", "why")
    own = pickle.loads(pickle.dumps(OwnOutput("org.openedx.learning.badge.awarded.v1")))
    assert isinstance(own, BadInput) and own.code == "own_output"
    assert isinstance(own, OwnOutput) and own.event_type == "org.openedx.learning.badge.awarded.v1"
