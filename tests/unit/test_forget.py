"""Forgetting a learner: the records lose name, username and e-mail and keep what prevents a
duplicate badge; an old event replayed afterwards does not bring the identity back."""

from __future__ import annotations

import orjson

from badges.domain.events import Learner
from badges.domain.forget import forget_issuance, forget_progress, is_forgotten
from badges.domain.progress import merge_identity
from badges.wire.decisions import Forget, decode_message, encode_forget as encode_forget_decision
from badges.wire.envelope import decode_envelope, encode_forget

PII = ("ada@example.com", "ada", "Ada Lovelace")
T = "7d4f6a52-0000-4000-8000-0000000000aa"


def _state() -> dict:
    return {
        "v": 1,
        "learner": {"id": 7, "username": "ada", "email": "ada@example.com", "name": "Ada Lovelace", "time_us": 100},
        "templates": {T: {
            "fulfilled": {"demo": {"event_id": "e1", "event_type": "t", "time": "x", "time_us": 100,
                                   "origin": "o", "latest_us": 100}},
            "resets": {},
            "badge": {"status": "awarded", "event_id": "e1", "event_type": "t", "time": "x", "time_us": 100,
                      "origin": "o", "key_fields": {"course.course_key": "c1", "user.pii.email": "ada@example.com"}},
        }},
    }


def _issuance() -> dict:
    learner = {"id": 7, "username": "ada", "email": "ada@example.com", "name": "Ada Lovelace"}
    return {T: {"status": "issued", "credly_id": "b-1", "credly_state": "pending", "learner": learner,
                "pending": [{"action": "award", "learner": learner, "key_fields": {"user.pii.name": "Ada Lovelace"}}]}}


def _has_pii(record: dict) -> list[str]:
    raw = orjson.dumps(record).decode()
    return [value for value in PII if value in raw]


def test_progress_keeps_the_badge_and_loses_the_identity() -> None:
    state = _state()
    forgotten = forget_progress(state, 7, now_us=500)
    assert not _has_pii(forgotten)
    assert forgotten["templates"][T]["badge"]["status"] == "awarded"  # no second award
    assert forgotten["templates"][T]["badge"]["key_fields"] == {"course.course_key": "c1"}
    assert forgotten["templates"][T]["fulfilled"] == state["templates"][T]["fulfilled"]
    assert forgotten["learner"]["id"] == 7 and is_forgotten(forgotten) and not is_forgotten(state)
    assert _has_pii(state), "the input is not changed"


def test_issuance_keeps_the_credly_record_and_loses_the_identity() -> None:
    records = forget_issuance(_issuance(), 7)
    assert not _has_pii(records)
    assert records[T]["status"] == "issued" and records[T]["credly_id"] == "b-1"
    assert records[T]["learner"] == {"id": 7, "username": "", "email": "", "name": ""}


def test_an_event_from_before_the_forget_does_not_restore_the_identity() -> None:
    identity = forget_progress(_state(), 7, now_us=500)["learner"]
    old = Learner(7, "ada", "ada@example.com", "Ada Lovelace")
    assert merge_identity(identity, old, 400) is identity
    newer = merge_identity(identity, old, 600)  # the LMS sent it again after the retirement
    assert newer["email"] == "ada@example.com"


def test_forget_messages_round_trip() -> None:
    env = decode_envelope(encode_forget([7, 9]))
    assert env.forget == (7, 9) and env.events == []
    assert decode_message(encode_forget_decision(7)) == Forget(7)
