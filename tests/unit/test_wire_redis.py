"""edx-event-bus-redis entries: decode, encode, and a round trip through the real Redis."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
import redis

from badges.domain.events import Learner
from badges.schemas.catalog import load_catalog
from badges.wire.errors import BadInput, OwnOutput
from badges.wire.redis_format import RedisDecoder, encode_entry
from tests.support import openedx
from tests.support.openedx import BADGE_AWARDED, COURSE_PASSING, GRADE_SUMMARY

CATALOG = load_catalog()
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def decoder() -> RedisDecoder:
    return RedisDecoder(CATALOG)


@pytest.mark.parametrize("event_type", CATALOG.rule_event_types)
def test_every_learner_event_type_decodes(decoder: RedisDecoder, event_type: str) -> None:
    event_id = uuid.uuid4()
    entry = openedx.redis_fields(event_type, event_id=event_id, time=WHEN, user_id=31, username="lin")
    event = decoder.decode_entry(entry, "dev-learning-badges-lifecycle", "1714564800000-3")
    assert (event.event_type, event.event_id, event.time) == (event_type, str(event_id), WHEN.isoformat())
    assert event.learner == Learner(31, "lin", "lin@example.com", "Learner 31")
    assert event.origin == "redis:dev-learning-badges-lifecycle/1714564800000-3"
    spec = CATALOG[event_type]
    assert event.payload == spec.rule_root(openedx.avro_record(event_type, user_id=31, username="lin"))


def test_bad_entries(decoder: RedisDecoder) -> None:
    good = openedx.redis_fields(COURSE_PASSING)

    def code(entry: dict[bytes, bytes]) -> str:
        with pytest.raises(BadInput) as info:
            decoder.decode_entry(entry, "s", "1-0")
        return info.value.code

    assert code({k: v for k, v in good.items() if k != b"type"}) == "missing_ce_type"
    assert code({**good, b"type": b"org.openedx.nope.v1"}) == "unknown_event_type"
    assert code({k: v for k, v in good.items() if k != b"event_data"}) == "empty_value"
    assert code({**good, b"event_data": good[b"event_data"][:10]}) == "avro_decode_error"
    assert code({**good, b"event_data": b"\x00\x00\x00\x00\x01" + good[b"event_data"]}) == "avro_decode_error"
    assert code({k: v for k, v in good.items() if k != b"id"}) == "bad_header"
    assert code({**good, b"time": b"soon"}) == "bad_header"
    assert code(openedx.redis_fields(GRADE_SUMMARY)) == "no_user_data"
    with pytest.raises(OwnOutput):
        decoder.decode_entry(openedx.redis_fields(BADGE_AWARDED), "s", "1-0")


def test_missing_time_falls_back_to_the_entry_id(decoder: RedisDecoder) -> None:
    entry = {k: v for k, v in openedx.redis_fields(COURSE_PASSING).items() if k != b"time"}
    event = decoder.decode_entry(entry, "s", b"1714564800123-0")
    assert event.time_us == 1_714_564_800_123_000
    assert event.time == "2024-05-01T12:00:00.123000+00:00"


def test_encode_entry_matches_edx_event_bus_redis_and_round_trips(decoder: RedisDecoder) -> None:
    record = openedx.avro_record(COURSE_PASSING, user_id=12, fields={"is_passing": False})
    ours = encode_entry(COURSE_PASSING, record, event_id="c0ffee00-0000-1000-8000-000000000001", time=WHEN,
                        source="openedx/lms/web", sourcehost="lms.test")
    theirs = openedx.redis_fields(COURSE_PASSING, event_id="c0ffee00-0000-1000-8000-000000000001", time=WHEN,
                                  user_id=12, fields={"is_passing": False})
    assert list(ours.items()) == list(theirs.items())
    event = decoder.decode_entry(ours, "s", "1-0")
    assert event.learner.id == 12 and event.payload["is_passing"] is False


def test_round_trip_through_real_redis(decoder: RedisDecoder) -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    stream = f"test-wire-{uuid.uuid4()}"
    try:
        ids = [client.xadd(stream, openedx.redis_fields(COURSE_PASSING, user_id=i, time=WHEN)) for i in range(3)]  # type: ignore[arg-type]  # redis's stub: a dict of its key union
        entries = client.xrange(stream)
        events = [decoder.decode_entry(fields, stream, entry_id) for entry_id, fields in entries]  # type: ignore[arg-type, union-attr]  # without decode_responses: bytes
    finally:
        client.delete(stream)
        client.close()
    assert [e.learner.id for e in events] == [0, 1, 2]
    assert [e.origin for e in events] == [f"redis:{stream}/{i.decode()}" for i in ids]  # type: ignore[union-attr]  # ditto
