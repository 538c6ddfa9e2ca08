"""Ingestion on the real broker: every supported event type, the bad-input corpus, the registry."""

from __future__ import annotations

import json
from typing import Iterator

import pytest
from confluent_kafka import Producer

from badges.domain.events import LearnerEvent
from badges.schemas.catalog import load_catalog
from badges.wire.envelope import decode_envelope
from badges.wire.framing import frame
from tests.support import openedx
from tests.support.cluster import wait_until
from tests.support.openedx import COURSE_PASSING, DEMO_COURSE, GRADE_SUMMARY
from tests.support.registry import StandInRegistry
from tests.support.stack import Stack, make_stack

TEMPLATE = "7d4f6a52-0000-4000-8000-0000000000a1"
CERT_CREATED = "org.openedx.learning.certificate.created.v1"
RULE_TYPES = load_catalog().rule_event_types


def any_event_config() -> str:
    """One template with a zero-rule requirement per event type: every event is forwarded."""
    reqs = "\n".join(
        f"      - {{id: r{i}, event_type: {t}, group: any}}" for i, t in enumerate(RULE_TYPES)
    )
    return f"""
organizations:
  - uuid: 0b8a3f0e-0000-4000-8000-000000000001
    api_key_env: CREDLY_TOKEN_ACME
templates:
  - uuid: {TEMPLATE}
    active: true
    requirements:
{reqs}
"""


@pytest.fixture(scope="module")
def registry() -> Iterator[StandInRegistry]:
    reg = StandInRegistry().start()
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory, registry) -> Iterator[Stack]:
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("ingest"), [(TEMPLATE, "Any")], "ingest")
    s.configure(any_event_config())
    s.start_worker(BADGES_SCHEMA_REGISTRY_URL=registry.url)
    s.schema_ids = {  # type: ignore[attr-defined]  # kept on the stack for the tests
        t: registry.register(f"{s.input_topic}-{t}.CloudEvent", openedx.value_schema_string(t))
        for t in load_catalog().event_types
    }
    yield s
    s.stop()
    s.emulator.stop_thread()


def normalized(stack: Stack, min_count: int) -> dict[str, LearnerEvent]:
    """Normalized events on the learner-events topic, by event id."""
    out = {}
    for m in stack.read(stack.settings.learner_events_topic, min_count=1):
        for ev in decode_envelope(m.value()).events:
            out[ev.event_id] = ev
    if len(out) < min_count:
        raise AssertionError(f"{len(out)} normalized events, expected {min_count}")
    return out


def test_every_supported_event_type_is_normalized(stack: Stack) -> None:
    """Writer schemas registered as edx-event-bus-kafka does (TopicRecordNameStrategy)."""
    ids = stack.schema_ids  # type: ignore[attr-defined]  # set by the fixture
    sent = {}
    for i, event_type in enumerate(RULE_TYPES):
        msg = stack.event(event_type, 1000 + i, value_schema_id=ids[event_type],
                          name=f"Learner {i}", email=f"l{i}@example.com", username=f"l{i}")
        sent[dict(msg.headers)["ce_id"].decode()] = (event_type, 1000 + i, msg)
    stack.send(m for (_, _, m) in sent.values())
    events = wait_until(lambda: normalized(stack, len(sent)), timeout=60, what="all event types normalized")
    for event_id, (event_type, user_id, msg) in sent.items():
        ev = events[event_id]
        headers = dict(msg.headers)
        assert ev.event_type == event_type
        assert ev.learner.id == user_id
        assert ev.learner.email == f"l{user_id - 1000}@example.com"
        assert ev.learner.name == f"Learner {user_id - 1000}"
        assert ev.time == headers["ce_time"].decode()
        assert ev.source == headers["ce_source"].decode()
        assert ev.origin.startswith(f"{stack.input_topic}/")
        # the payload is rooted where rule key paths start
        spec = load_catalog()[event_type]
        assert set(ev.payload) <= {p.split(".")[0] for p in spec.key_paths} | set(spec.data_fields)


def corpus(stack: Stack) -> list[tuple[str, tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]]:
    ids = stack.schema_ids  # type: ignore[attr-defined]  # set by the fixture
    good = stack.event(COURSE_PASSING, 2001, {"is_passing": True, "course.course_key": DEMO_COURSE},
                       value_schema_id=ids[COURSE_PASSING])
    key, value, headers = good
    other = stack.event(CERT_CREATED, 2002, value_schema_id=ids[CERT_CREATED])
    no_type = [(k, v) for k, v in headers if k != "ce_type"]
    unknown_type = [(k, (b"org.openedx.learning.no.such.event.v1" if k == "ce_type" else v)) for k, v in headers]
    return [
        ("avro_decode_error", (key, value[: len(value) // 2], headers)),
        ("bad_magic_byte", (key, b"\x07" + value[1:], headers)),
        ("unknown_event_type", (key, value, unknown_type)),
        ("missing_ce_type", (key, value, no_type)),
        ("avro_decode_error", (key, other.value, headers)),  # a valid body of another type
        ("no_user_data", stack.event(GRADE_SUMMARY, 2003, value_schema_id=ids[GRADE_SUMMARY])),
        ("empty_value", (key, b"", headers)),
        ("value_too_large", (key, frame(ids[COURSE_PASSING], b"\x00" * (2 * 1024 * 1024)), headers)),
        ("_good", (key, value, headers)),
    ]


def test_bad_input_goes_to_the_dead_letter_topic_and_processing_goes_on(stack: Stack) -> None:
    cases = corpus(stack)
    producer = Producer({"bootstrap.servers": stack.bootstrap, "acks": "all", "message.max.bytes": 8 * 1024 * 1024})
    for _reason, (key, value, headers) in cases:
        producer.produce(stack.input_topic, key=key, value=value, headers=headers)  # type: ignore[arg-type]  # confluent's stub: list[tuple[str, str | bytes | None]]; list is invariant
    assert producer.flush(30) == 0
    expected = [reason for reason, _ in cases if reason != "_good"]
    dead = stack.read(stack.settings.dead_letter_topic, min_count=len(expected), timeout=60)
    reasons = sorted(dict(m.headers())["dlq_reason"].decode() for m in dead)
    assert reasons == sorted(expected), (reasons, sorted(expected))
    for reason, (key, value, headers) in cases:
        if reason == "_good":
            continue
        [m] = [m for m in dead if m.value() == value and dict(m.headers())["dlq_reason"].decode() == reason]
        # the original key, value and headers, then where it came from and why
        assert m.key() == key
        assert list(m.headers())[: len(headers)] == list(headers)
        h = dict(m.headers())
        assert h["dlq_source_topic"].decode() == stack.input_topic
        assert int(h["dlq_source_partition"]) >= 0 and int(h["dlq_source_offset"]) >= 0
        assert h["dlq_detail"] and h["dlq_time"]
    good_id = dict(cases[-1][1][2])["ce_id"].decode()
    wait_until(lambda: good_id in normalized(stack, 1), what="the good event after the bad ones")


def test_newer_writer_schema_decodes_through_the_registry(stack: Stack, registry: StandInRegistry) -> None:
    schema = json.loads(openedx.value_schema_string(COURSE_PASSING))
    status = schema["fields"][0]["type"]
    status["fields"].insert(1, {"name": "grade_note", "type": ["null", "string"], "default": None})
    newer_id = registry.register(f"{stack.input_topic}-{COURSE_PASSING}.CloudEvent", json.dumps(schema))
    record = openedx.avro_record(COURSE_PASSING, user_id=3001, fields={"is_passing": True, "course.course_key": DEMO_COURSE})
    record["course_passing_status"]["grade_note"] = "written by a newer openedx-events"
    import io

    import fastavro

    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    base = stack.event(COURSE_PASSING, 3001)
    stack.send([(base.key, frame(newer_id, body.getvalue()), base.headers)])
    event_id = dict(base.headers)["ce_id"].decode()
    events = wait_until(lambda: (e := normalized(stack, 1)).get(event_id) and e, what="the newer-schema event")
    ev = events[event_id]
    assert ev.learner.id == 3001 and ev.payload["is_passing"] is True
    assert "grade_note" not in ev.payload  # resolved against the reader schema
