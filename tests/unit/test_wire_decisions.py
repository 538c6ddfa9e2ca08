"""The badge-decisions topic's messages: the decisions of an envelope in one message, and the
single-decision messages of workers before issue 20 still read (upgrades in place)."""

from __future__ import annotations

import orjson

from badges.domain.engine import Award, Decision, EventRef, Revoke
from badges.domain.events import Learner
from badges.wire.decisions import (
    MESSAGE_MAX_DECISIONS, RETRY_FAILED, Forget, decision_messages, decode_message, encode_forget,
    encode_retry_failed,
)


def decision(n: int, action: type[Decision] = Award) -> Decision:
    return action(
        learner=Learner(id=n, username=f"u{n}", email=f"u{n}@example.com", name=f"U {n}"),
        template=f"7d4f6a52-0000-4000-8000-{n:012d}", organization="0b8a3f0e-0000-4000-8000-000000000001",
        event=EventRef(event_id=f"e{n}", event_type="org.openedx.learning.course.passing.status.updated.v1",
                       time="2024-05-01T10:00:00Z", time_us=1714557600000000 + n),
        cause=("demo",), version=n % 3 + 1, replayed=n % 2 == 0,
    )


def test_the_decisions_of_an_envelope_travel_in_one_message_in_order() -> None:
    decisions = [decision(1), decision(2, Revoke), decision(3)]
    messages = decision_messages(decisions)
    assert len(messages) == 1
    assert decode_message(messages[0]) == tuple(decisions)


def test_many_decisions_are_split_into_messages_of_bounded_size_keeping_their_order() -> None:
    decisions = [decision(n) for n in range(2 * MESSAGE_MAX_DECISIONS + 1)]
    messages = decision_messages(decisions)
    assert len(messages) == 3
    decoded = [d for m in messages for d in decode_message(m)]  # type: ignore[union-attr]  # tuples here
    assert decoded == decisions
    assert decision_messages([]) == []


def test_a_single_decision_message_of_an_older_worker_is_read_as_a_batch_of_one() -> None:
    old = decision(5, Revoke)
    # the form workers before issue 20 wrote, one message per decision, keyed by learner
    assert decode_message(orjson.dumps(old.to_dict())) == (old,)


def test_operator_requests_share_the_topic() -> None:
    assert decode_message(encode_retry_failed()) == RETRY_FAILED
    assert decode_message(encode_forget(7)) == Forget(7)
