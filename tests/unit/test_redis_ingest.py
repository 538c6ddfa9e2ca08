"""Pure helpers of the Redis Streams ingestion, checked against replies of the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
import redis
import redis.asyncio as aioredis

from badges.agents.redis_ingest import (
    Entry, acks_by_stream, dead_letter_parts, default_consumer_name, forget_consumer, read_entries,
    stale_consumers,
)
from badges.config.settings import load_settings
from badges.wire.deadletter import dead_letter_headers
from tests.support import openedx
from tests.support.openedx import COURSE_PASSING

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def client(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(f"{REDIS_URL}?protocol={request.param}")
    yield c
    c.close()


@pytest.fixture
def stream(client: redis.Redis) -> Iterator[str]:
    name = f"unit-redis-ingest-{uuid.uuid4().hex[:10]}"
    yield name
    client.delete(name)


def test_read_entries_of_real_xreadgroup_replies(client: redis.Redis, stream: str) -> None:
    other = stream + "-b"
    try:
        fields = openedx.redis_fields(COURSE_PASSING, user_id=5)
        for s in (stream, other):
            client.xgroup_create(s, "g", id="0", mkstream=True)
        # redis's stub: xadd takes a dict of its key union; without decode_responses ids are bytes
        a = client.xadd(stream, fields).decode()  # type: ignore[arg-type, union-attr]  # see above
        b = client.xadd(other, {b"type": b"x"}).decode()  # type: ignore[union-attr]  # see above
        got = read_entries(client.xreadgroup("g", "c", {stream: ">", other: ">"}, count=10))
        assert got == [Entry(stream, a, fields), Entry(other, b, {b"type": b"x"})]
        assert list(got[0].fields) == list(fields)  # entry order kept (headers of a dead letter)
        # own pending entries, with one deleted from the stream meanwhile: empty fields
        client.xdel(stream, a)
        pending = read_entries(client.xreadgroup("g", "c", {stream: "0", other: "0"}, count=10))
        assert pending == [Entry(stream, a, {}), Entry(other, b, {b"type": b"x"})]
        assert read_entries(client.xreadgroup("g", "c", {stream: ">"}, count=10, block=10)) == []
    finally:
        client.delete(other)


def test_dead_letter_parts_keep_event_data_and_the_other_fields_in_order() -> None:
    fields = openedx.redis_fields(COURSE_PASSING)
    value, headers = dead_letter_parts(fields)
    assert value == fields[b"event_data"]
    assert headers == [(k.decode(), v) for k, v in fields.items() if k != b"event_data"]
    assert [h for h, _ in headers] == ["type", "id", "source", "time", "minorversion", "sourcehost", "sourcelib"]
    assert dead_letter_parts({b"type": b"t"}) == (None, [("type", b"t")])
    assert dead_letter_parts({b"\xff": b"v", b"event_data": b""}) == (b"", [("\ufffd", b"v")])


def test_dead_letter_headers_take_a_stream_entry_id_as_offset() -> None:
    now = datetime(2024, 5, 1, tzinfo=timezone.utc)
    headers = dict(dead_letter_headers([("type", b"x")], "unknown_event_type", "d", "dev-s", 0, "1714-3", now))
    assert headers["type"] == b"x"
    assert (headers["dlq_source_topic"], headers["dlq_source_partition"], headers["dlq_source_offset"]) == (
        b"dev-s", b"0", b"1714-3")


def test_stale_consumers_never_include_one_with_pending_entries_or_me(client: redis.Redis, stream: str) -> None:
    client.xgroup_create(stream, "g", id="0", mkstream=True)
    client.xadd(stream, {b"a": b"1"})
    client.xreadgroup("g", "busy", {stream: ">"}, count=1)  # one pending entry
    client.xgroup_createconsumer(stream, "g", "idle")  # no pending entry
    client.xgroup_createconsumer(stream, "g", "me")
    infos = client.xinfo_consumers(stream, "g")
    assert {(i["name"].decode(), i["pending"]) for i in infos} == {("busy", 1), ("idle", 0), ("me", 0)}
    assert stale_consumers(infos, "me", 0) == ["idle"]
    assert stale_consumers(infos, "me", 3_600_000) == []  # all just talked to Redis


async def test_forget_consumer_only_without_pending_entries(stream: str) -> None:
    r = aioredis.Redis.from_url(REDIS_URL)
    try:
        await r.xgroup_create(stream, "g", id="0", mkstream=True)
        await r.xadd(stream, {b"a": b"1"})
        await r.xreadgroup("g", "busy", {stream: ">"}, count=1)
        await r.xgroup_createconsumer(stream, "g", "idle")
        assert await forget_consumer(r, stream, "g", "busy") is False
        assert await forget_consumer(r, stream, "g", "idle") is True
        infos = await r.xinfo_consumers(stream, "g")
        assert [(i["name"], i["pending"]) for i in infos] == [(b"busy", 1)]
    finally:
        await r.aclose()


def test_acks_are_grouped_by_stream_in_order() -> None:
    entries = [Entry("a", "1-0", {}), Entry("b", "2-0", {}), Entry("a", "3-0", {})]
    assert acks_by_stream(entries) == {"a": ["1-0", "3-0"], "b": ["2-0"]}


def test_consumer_names_and_redis_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_consumer_name("lms-worker-1", 6066) == "lms-worker-1:6066"
    monkeypatch.setenv("BADGES_EVENT_BUS_TOPIC_PREFIX", "prod")
    monkeypatch.setenv("BADGES_REDIS_STREAMS", " learning-badges-lifecycle , other ")
    monkeypatch.setenv("BADGES_REDIS_CLAIM_IDLE_MS", "1500")
    s = load_settings()
    assert s.redis_stream_names == ["prod-learning-badges-lifecycle", "prod-other"]
    assert (s.redis_claim_idle_ms, s.redis_batch_size, s.redis_block_ms, s.redis_consumer_name) == (
        1500, 500, 1000, None)
    monkeypatch.setenv("BADGES_REDIS_BLOCK_MS", "0")  # BLOCK 0 would wait forever
    with pytest.raises(Exception, match="BADGES_REDIS_BLOCK_MS"):
        load_settings()
