"""decode_batch: every fetched message is an event, a dead letter or our own output, whatever
the decoder does (a decoder bug must not fail the batch, which would be retried forever)."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from badges.agents.kafka_ingest import decode_batch
from badges.schemas.catalog import load_catalog
from badges.wire.decode import KafkaDecoder
from badges.wire.errors import CODES, DECODER_ERROR
from tests.support import openedx
from tests.support.openedx import BADGE_AWARDED, COURSE_PASSING

TP = TopicPartition("dev-learning-course-passing-status", 0)
BUGGY_USER = 666


class BuggyDecoder(KafkaDecoder):
    """A real decoder with a bug that shows on one learner's events."""

    def build_event(self, r: Any, record: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]  # passes all on
        event = super().build_event(r, record, *args, **kwargs)
        if event.learner.id == BUGGY_USER:
            raise KeyError("user")
        return event


def record(offset: int, value: bytes | None, headers: list[tuple[str, bytes]]) -> ConsumerRecord:
    return ConsumerRecord(TP.topic, TP.partition, offset, 0, 0, None, value, None, 0,
                          len(value or b""), headers)


def test_a_decoder_bug_dead_letters_that_message_and_keeps_the_rest(caplog: Any) -> None:
    msgs = []
    for offset, user in enumerate([1, BUGGY_USER, 2]):
        m = openedx.kafka_message(COURSE_PASSING, user_id=user)
        msgs.append(record(offset, m.value, list(m.headers)))
    own = openedx.kafka_message(BADGE_AWARDED, user_id=3)
    msgs.append(record(3, own.value, list(own.headers)))
    msgs.append(record(4, b"\x07garbage", msgs[0].headers))

    out = decode_batch(BuggyDecoder(load_catalog()), {TP: msgs})

    assert [ev.learner.id for ev in out.events] == [1, 2]
    assert out.own_output == 1
    assert [(exc.code, m.offset) for exc, m in out.dead] == [(DECODER_ERROR, 1), ("bad_magic_byte", 4)]
    assert DECODER_ERROR in CODES
    assert "KeyError" in out.dead[0][0].detail
    assert "decoder failure on dev-learning-course-passing-status/0/1" in caplog.text
