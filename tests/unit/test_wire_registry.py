"""Schema registry: the stand-in against confluent-kafka's client, our aiohttp client, and the
decoder resolving a newer writer schema against the committed reader schema."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import socket
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from badges.schemas.catalog import load_catalog
from badges.wire.decode import KafkaDecoder
from badges.wire.errors import BadInput
from badges.wire.framing import frame
from badges.wire.registry import (
    RegistryAuthError, RegistryRejected, RegistryUnavailable, SchemaRegistry, UnknownSchemaId, UnusableSchema,
    key_subject, value_subject,
)
from tests.support import openedx
from tests.support.openedx import COURSE_PASSING
from tests.support.registry import StandInRegistry

CATALOG = load_catalog()
CERT_CREATED = "org.openedx.learning.certificate.created.v1"
CERT_CHANGED = "org.openedx.learning.certificate.changed.v1"


@pytest.fixture
def registry() -> Iterator[StandInRegistry]:
    with StandInRegistry() as reg:
        yield reg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def newer_writer_schema(event_type: str) -> dict[str, Any]:
    """The reader schema plus an optional field in the middle of the data record, as a
    producer on a newer openedx-events minor version would write."""
    schema = copy.deepcopy(CATALOG[event_type].schema)
    data = schema["fields"][0]["type"]
    data["fields"].insert(1, {"name": "extra_note", "type": ["null", "string"], "default": None})
    return schema


def write(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


# -- the stand-in speaks the real protocol ------------------------------------------------------
def test_confluent_client_against_the_stand_in(registry: StandInRegistry) -> None:
    with SchemaRegistryClient({"url": registry.url}) as client, \
            SchemaRegistryClient({"url": registry.url}) as fresh:  # fresh: no client-side cache
        check_confluent_client(client, fresh)


def check_confluent_client(client: SchemaRegistryClient, fresh: SchemaRegistryClient) -> None:
    subject = value_subject("learning-badges-lifecycle", COURSE_PASSING)
    text = openedx.value_schema_string(COURSE_PASSING)

    first = client.register_schema(subject, Schema(text, "AVRO"))
    assert client.register_schema(subject, Schema(text, "AVRO")) == first
    assert json.loads(client.get_schema(first).schema_str) == json.loads(text)  # type: ignore[arg-type]  # registered above
    assert client.get_subjects() == [subject]
    assert client.get_versions(subject) == [1]
    assert client.lookup_schema(subject, Schema(text, "AVRO")).schema_id == first

    newer = json.dumps(newer_writer_schema(COURSE_PASSING), sort_keys=True)
    second = client.register_schema(subject, Schema(newer, "AVRO"))
    assert second != first
    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version) == (second, 2)
    assert client.get_version(subject, 1).schema_id == first

    with pytest.raises(SchemaRegistryError) as info:
        fresh.get_schema(999)
    assert (info.value.http_status_code, info.value.error_code) == (404, 40403)
    with pytest.raises(SchemaRegistryError) as info:
        fresh.get_latest_version("no-such-subject")
    assert info.value.error_code == 40401


def test_stand_in_refuses_invalid_schemas(registry: StandInRegistry) -> None:
    with SchemaRegistryClient({"url": registry.url}) as client, pytest.raises(SchemaRegistryError) as info:
        client.register_schema("s", Schema('{"type": "record", "name": "X", "fields": [{"name": "a"}]}', "AVRO"))
    assert info.value.http_status_code == 422


def test_subject_names_match_what_edx_event_bus_kafka_registers(registry: StandInRegistry) -> None:
    from django.test import override_settings

    edx = openedx.edx_event_bus_kafka()
    topic = "dev-learning-badges-lifecycle"
    with override_settings(EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL=registry.url):
        key_ser, value_ser = edx.producer.get_serializers(openedx.signal(COURSE_PASSING), openedx.key_field(COURSE_PASSING))
        from confluent_kafka.serialization import MessageField, SerializationContext

        data = openedx.event_data(COURSE_PASSING)
        key_ser(openedx.extract_key(COURSE_PASSING, data, openedx.key_field(COURSE_PASSING)),  # type: ignore[arg-type]  # it has one
                SerializationContext(topic, MessageField.KEY))
        value_ser(data, SerializationContext(topic, MessageField.VALUE))
        edx.config.get_schema_registry_client().close()
    assert registry.subjects() == sorted([key_subject(topic), value_subject(topic, COURSE_PASSING)])


# -- our client --------------------------------------------------------------------------------
async def test_get_schema_caches_and_shares_requests(registry: StandInRegistry) -> None:
    sid = registry.register("s-value", CATALOG[COURSE_PASSING].schema)
    async with SchemaRegistry(registry.url) as client:
        results = await asyncio.gather(*(client.get_schema(sid) for _ in range(5)))
        assert all(r == CATALOG[COURSE_PASSING].schema for r in results)
        await client.get_schema(sid)
    assert registry.requests.count(("GET", f"/schemas/ids/{sid}")) == 1


async def test_register_returns_the_id_confluent_clients_see(registry: StandInRegistry) -> None:
    subject = value_subject("learning-badges-lifecycle", openedx.BADGE_AWARDED)
    async with SchemaRegistry(registry.url) as client:
        sid = await client.register(subject, CATALOG[openedx.BADGE_AWARDED].schema)
        assert await client.register(subject, CATALOG[openedx.BADGE_AWARDED].schema) == sid
        assert await client.get_schema(sid) == CATALOG[openedx.BADGE_AWARDED].schema
    assert registry.requests.count(("POST", f"/subjects/{subject}/versions")) == 1
    with SchemaRegistryClient({"url": registry.url}) as confluent:
        found = confluent.lookup_schema(subject, Schema(openedx.value_schema_string(openedx.BADGE_AWARDED), "AVRO"))
    assert found.schema_id == sid


async def test_register_rejected(registry: StandInRegistry) -> None:
    async with SchemaRegistry(registry.url) as client:
        with pytest.raises(RegistryRejected) as info:
            await client.register("s", '{"type": "nonsense"}')
    assert "422" in str(info.value)


async def test_unknown_id_and_unusable_schemas(registry: StandInRegistry) -> None:
    proto = registry.register("p", "syntax = 'proto3'; message M {}", schema_type="PROTOBUF")
    async with SchemaRegistry(registry.url) as client:
        with pytest.raises(UnknownSchemaId) as info:
            await client.get_schema(4242)
        assert info.value.schema_id == 4242
        with pytest.raises(UnusableSchema):
            await client.get_schema(proto)


async def test_a_404_from_something_else_is_not_an_unknown_id(registry: StandInRegistry) -> None:
    async with SchemaRegistry(registry.url + "/not-the-registry") as client:
        with pytest.raises(RegistryUnavailable) as info:
            await client.get_schema(1)
    assert "is http://" in str(info.value)


async def test_server_errors_are_retried_then_unavailable(registry: StandInRegistry) -> None:
    registry.fail_with = 503
    async with SchemaRegistry(registry.url, attempts=3) as client:
        with pytest.raises(RegistryUnavailable) as info:
            await client.get_schema(1)
    assert "503" in str(info.value)
    assert registry.requests.count(("GET", "/schemas/ids/1")) == 3


async def test_refused_credentials_are_a_configuration_error_never_shown(registry: StandInRegistry) -> None:
    registry.fail_with = 401
    async with SchemaRegistry(registry.url, username="svc-user", password="s3cr3t-token") as client:
        assert "s3cr3t" not in repr(client) and "s3cr3t" not in client.url
        with pytest.raises(RegistryAuthError) as info:
            await client.get_schema(1)
    assert not isinstance(info.value, RegistryUnavailable)  # not an outage: nobody retries it
    assert "401" in str(info.value) and "BADGES_SCHEMA_REGISTRY_PASSWORD" in str(info.value)
    assert "s3cr3t" not in str(info.value)
    assert registry.requests.count(("GET", "/schemas/ids/1")) == 1  # not retried


async def test_unreachable_and_slow_registries() -> None:
    async with SchemaRegistry(f"http://127.0.0.1:{free_port()}", attempts=2) as client:
        with pytest.raises(RegistryUnavailable) as info:
            await client.get_schema(1)
    assert "unreachable" in str(info.value)
    with StandInRegistry() as slow:
        slow.delay_s = 1.0
        async with SchemaRegistry(slow.url, timeout_s=0.2, attempts=1) as client:
            with pytest.raises(RegistryUnavailable) as info:
                await client.get_schema(1)
    assert "did not answer within 0.2 s" in str(info.value)


async def test_basic_auth_is_sent() -> None:
    from aiohttp import web

    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"schema": json.dumps(CATALOG[COURSE_PASSING].schema)})

    app = web.Application()
    app.router.add_get("/schemas/ids/{id}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with SchemaRegistry(f"http://127.0.0.1:{port}", username="user", password="pw") as client:
            await client.get_schema(1)
    finally:
        await runner.cleanup()
    assert seen == ["Basic dXNlcjpwdw=="]


# -- the decoder with a registry ------------------------------------------------------------------
async def test_newer_writer_schema_decodes_against_the_reader_schema(registry: StandInRegistry) -> None:
    writer_schema = newer_writer_schema(COURSE_PASSING)
    writer_id = registry.register(value_subject("t", COURSE_PASSING), writer_schema)
    record = openedx.avro_record(COURSE_PASSING, user_id=77, username="grace", fields={"is_passing": False})
    record["course_passing_status"]["extra_note"] = "written by a newer producer"
    value = frame(writer_id, write(writer_schema, record))
    headers = openedx.kafka_message(COURSE_PASSING).headers

    # Read blindly with the reader schema, the extra field shifts every byte after it.
    with pytest.raises(BadInput):
        KafkaDecoder(CATALOG).decode(headers, value, "", None)

    async with SchemaRegistry(registry.url) as client:
        decoder = KafkaDecoder(CATALOG, client)
        assert decoder.schema_ids_to_fetch([value, value, None, b"junk"]) == {writer_id}
        with pytest.raises(BadInput) as info:  # not fetched yet: decode never does I/O
            decoder.decode(headers, value, "", None)
        assert info.value.code == "schema_registry_unavailable"

        await decoder.prefetch({writer_id})
        assert decoder.schema_ids_to_fetch([value]) == set()
        event = decoder.decode(headers, value, "", None)
    assert event.learner.id == 77 and event.learner.username == "grace"
    assert event.payload["is_passing"] is False
    assert "extra_note" not in event.payload
    assert registry.requests.count(("GET", f"/schemas/ids/{writer_id}")) == 1


async def test_registry_path_with_the_reader_schema_itself(registry: StandInRegistry) -> None:
    sid = registry.register(value_subject("t", COURSE_PASSING), openedx.value_schema_string(COURSE_PASSING))
    msg = openedx.kafka_message(COURSE_PASSING, value_schema_id=sid, user_id=5)
    async with SchemaRegistry(registry.url) as client:
        decoder = KafkaDecoder(CATALOG, client)
        await decoder.prefetch(decoder.schema_ids_to_fetch([msg.value]))
        assert decoder.decode(msg.headers, msg.value, "", None).learner.id == 5


async def test_writer_schema_of_another_event_type_is_refused(registry: StandInRegistry) -> None:
    # certificate.created and .changed have the same layout: only the registry can tell them apart
    sid = registry.register(value_subject("t", CERT_CREATED), openedx.value_schema_string(CERT_CREATED))
    msg = openedx.kafka_message(CERT_CREATED, value_schema_id=sid)
    lying = [(k, CERT_CHANGED.encode() if k == "ce_type" else v) for k, v in msg.headers]
    assert KafkaDecoder(CATALOG).decode(lying, msg.value, "", None).event_type == CERT_CHANGED
    async with SchemaRegistry(registry.url) as client:
        decoder = KafkaDecoder(CATALOG, client)
        await decoder.prefetch(decoder.schema_ids_to_fetch([msg.value]))
        with pytest.raises(BadInput) as info:
            decoder.decode(lying, msg.value, "", None)
    assert info.value.code == "avro_decode_error"


async def test_unknown_schema_id_is_remembered(registry: StandInRegistry) -> None:
    msg = openedx.kafka_message(COURSE_PASSING, value_schema_id=31337)
    async with SchemaRegistry(registry.url) as client:
        decoder = KafkaDecoder(CATALOG, client)
        await decoder.prefetch(decoder.schema_ids_to_fetch([msg.value]))
        assert decoder.schema_ids_to_fetch([msg.value]) == set()
        with pytest.raises(BadInput) as info:
            decoder.decode(msg.headers, msg.value, "", None)
    assert info.value.code == "unknown_schema_id" and "31337" in info.value.detail
    assert registry.requests.count(("GET", "/schemas/ids/31337")) == 1


async def test_prefetch_raises_while_the_registry_is_down(registry: StandInRegistry) -> None:
    sid = registry.register(value_subject("t", COURSE_PASSING), openedx.value_schema_string(COURSE_PASSING))
    msg = openedx.kafka_message(COURSE_PASSING, value_schema_id=sid)
    async with SchemaRegistry(registry.url, attempts=1) as client:
        decoder = KafkaDecoder(CATALOG, client)
        registry.fail_with = 500
        with pytest.raises(RegistryUnavailable):
            await decoder.prefetch(decoder.schema_ids_to_fetch([msg.value]))
        with pytest.raises(BadInput) as info:
            decoder.decode(msg.headers, msg.value, "", None)
        assert info.value.code == "schema_registry_unavailable"
        registry.fail_with = None  # back: the next batch fetches it
        await decoder.prefetch(decoder.schema_ids_to_fetch([msg.value]))
        assert decoder.decode(msg.headers, msg.value, "", None).event_type == COURSE_PASSING


async def test_prefetch_takes_message_values_too(registry: StandInRegistry) -> None:
    sid = registry.register(value_subject("t", COURSE_PASSING), openedx.value_schema_string(COURSE_PASSING))
    msgs = [openedx.kafka_message(COURSE_PASSING, value_schema_id=sid, user_id=i) for i in range(3)]
    async with SchemaRegistry(registry.url) as client:
        decoder = KafkaDecoder(CATALOG, client)
        assert decoder.needs_prefetch and not KafkaDecoder(CATALOG).needs_prefetch
        await decoder.prefetch(m.value for m in [*msgs, openedx.kafka_message(COURSE_PASSING, value_schema_id=999)])
        assert [decoder.decode(m.headers, m.value, "", None).learner.id for m in msgs] == [0, 1, 2]
    assert registry.requests.count(("GET", f"/schemas/ids/{sid}")) == 1
    assert registry.requests.count(("GET", "/schemas/ids/999")) == 1


async def test_register_a_primitive_key_schema(registry: StandInRegistry) -> None:
    async with SchemaRegistry(registry.url) as client:
        sid = await client.register(key_subject("t"), "string")
        assert await client.register(key_subject("t"), '"string"') == sid
    with SchemaRegistryClient({"url": registry.url}) as confluent:
        assert confluent.get_schema(sid).schema_str == '"string"'


def test_usable_from_successive_event_loops(registry: StandInRegistry) -> None:
    """Sync callers (replay) run each batch's prefetch in its own asyncio.run()."""
    from badges.wire.registry import SchemaRegistry as OurClient

    first = registry.register("a", CATALOG[COURSE_PASSING].schema)
    second = registry.register("b", CATALOG[CERT_CREATED].schema)
    client = OurClient(registry.url)
    decoder = KafkaDecoder(CATALOG, client)
    asyncio.run(decoder.prefetch([first]))
    asyncio.run(decoder.prefetch([second]))
    assert asyncio.run(client.register("c", CATALOG[CERT_CHANGED].schema)) == 3
    assert decoder.schema_ids_to_fetch([frame(first, b""), frame(second, b"")]) == set()
