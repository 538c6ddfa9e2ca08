"""A table recovery keeps the newer of two writes of a key, not simply the last one (issue 13:
"a write with a lower version (an evicted worker) is ignored").

The pure rules (``progress.newer_of``, ``issuance.newer_records``) and the tables that apply them
(``tables/definitions.py`` ``NewerWinsTable``) on both stores a user can choose, fed changelog
batches in which an evicted worker's stale write lands after the owner's newer one.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import faust
import orjson
import pytest
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from badges.config.settings import Settings
from badges.domain.issuance import newer_records
from badges.domain.progress import newer_of
from badges.kafka.offsets import applied_offset_key
from badges.tables.definitions import issuance_table, newer_issuance, newer_progress, progress_table

T1, T2 = "t-1", "t-2"


# --- the rules ---------------------------------------------------------------------------------

def test_a_progress_write_of_an_older_envelope_loses_to_the_stored_one() -> None:
    newer, older = {"at": 12, "templates": {"x": 1}}, {"at": 9, "templates": {}}
    assert newer_of(newer, older) is newer
    assert newer_of(older, newer) is newer
    same = {"at": 12, "templates": {"forgotten": 1}}
    assert newer_of(newer, same) is same  # the same envelope written again (a forget): the last
    assert newer_of({"templates": {}}, older) is older  # a record from before offsets: last wins


def test_an_issuance_write_of_a_lower_version_loses_template_by_template() -> None:
    stored = {T1: {"status": "revoked", "applied_v": 2, "credly_id": "b1"},
              T2: {"in_flight": True, "pending": [{"action": "award"}]}}
    zombie = {T1: {"status": "issued", "applied_v": 1, "credly_id": "b1"},
              T2: {"status": "issued", "applied_v": 1, "credly_id": "b2"}}
    assert newer_records(stored, zombie) == {T1: stored[T1], T2: zombie[T2]}


def test_a_template_only_the_stored_write_has_is_kept() -> None:
    stored = {T1: {"status": "issued", "applied_v": 1}, T2: {"status": "issued", "applied_v": 1}}
    assert newer_records(stored, {T1: {"status": "issued", "applied_v": 1}}) == stored


def test_an_identity_erased_since_does_not_come_back_with_an_older_copy() -> None:
    forgotten = {T1: {"status": "issued", "applied_v": 1, "forgotten": True, "learner": {"id": 5, "email": ""}}}
    with_identity = {T1: {"status": "issued", "applied_v": 1, "learner": {"id": 5, "email": "a@example.com"}}}
    assert newer_records(forgotten, with_identity) == forgotten
    renewed = {T1: {"status": "issued", "applied_v": 2, "learner": {"id": 5, "email": "a@example.com"}}}
    assert newer_records(forgotten, renewed) == renewed  # a newer version is the owner's own


# One writer's successive records of one template: each write carries out a later version or
# records more provider attempts (both only go up), or erases the identity, which stays erased.
_writes = st.lists(st.sampled_from(["version", "attempt", "forget"]), min_size=1, max_size=8).map(
    lambda steps: _one_writer(steps))


def _one_writer(steps: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    v = attempts = 0
    forgotten = False
    for step in steps:
        v += step == "version"
        attempts += step == "attempt"
        forgotten = forgotten or step == "forget"
        out.append({T1: {"applied_v": v, "attempts": attempts, **({"forgotten": True} if forgotten else {})}})
    return out


def test_more_attempts_at_the_same_version_is_the_newer_write() -> None:
    failed = {T1: {"status": "failed", "applied_v": 1, "attempts": 3}}
    retried = {T1: {"status": "issued", "applied_v": 1, "attempts": 4}}
    assert newer_records(retried, failed) == retried


@given(_writes, st.data())
def test_one_writer_recovers_its_last_write_and_a_stale_copy_anywhere_after_changes_nothing(
        writes: list[dict[str, Any]], data: st.DataObject) -> None:
    def recovered(log: list[dict[str, Any]]) -> dict[str, Any]:
        state = log[0]
        for write in log[1:]:
            state = newer_records(state, write)
        return state

    assert recovered(writes) == writes[-1]
    stale = data.draw(st.sampled_from(writes))
    where = data.draw(st.integers(writes.index(stale) + 1, len(writes)))
    assert recovered([*writes[:where], stale, *writes[where:]]) == writes[-1]


# --- the tables, on each store -------------------------------------------------------------------

def _event(topic: str, offset: int, key: bytes, value: bytes | None, partition: int = 0) -> Any:
    """A changelog event as Faust's recovery hands it to a table (what the stores read of it)."""
    message = SimpleNamespace(tp=TP(topic, partition), offset=offset, partition=partition, key=key, value=value)
    return SimpleNamespace(message=message, key=key, value=value)


@pytest.fixture(params=["rocksdb", "memory"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[faust.App]:
    store = "rocksdb://" if request.param == "rocksdb" else "memory://"
    yield faust.App(f"newer-wins-{request.param}", store=store, datadir=str(tmp_path), broker="kafka://127.0.0.1:1")


def _settings() -> Settings:
    return Settings(partitions=1)


def test_a_progress_recovery_keeps_the_owners_record_and_the_higher_applied_offset(app: faust.App) -> None:
    table = progress_table(app, _settings())
    topic = table.changelog_topic.get_topic_name()
    half = orjson.dumps({"v": 1, "at": 3, "templates": {"T": {"fulfilled": {"c1": {}}}}})
    done = orjson.dumps({"v": 1, "at": 7, "templates": {"T": {"fulfilled": {"c1": {}, "c2": {}}}}})
    offsets = applied_offset_key(0)
    # the owner writes half, then done; the evicted worker's half and offset land after, in one batch
    table.apply_changelog_batch([_event(topic, 0, b"42", half), _event(topic, 1, b"42", done),
                                 _event(topic, 2, offsets, b"7"), _event(topic, 3, b"42", half),
                                 _event(topic, 4, offsets, b"3")])
    assert table.data.get(b"42") == done and table.data.get(offsets) == b"7"
    # and in a later batch, against the stored record
    table.apply_changelog_batch([_event(topic, 5, b"42", half)])
    assert table.data.get(b"42") == done
    # a newer write and a deletion still apply
    newer = orjson.dumps({"v": 1, "at": 9, "templates": {}})
    table.apply_changelog_batch([_event(topic, 6, b"42", newer)])
    assert table.data.get(b"42") == newer
    table.apply_changelog_batch([_event(topic, 7, b"42", None)])
    assert table.data.get(b"42") is None


def test_an_issuance_recovery_keeps_the_higher_version_of_each_template(app: faust.App) -> None:
    table = issuance_table(app, _settings())
    topic = table.changelog_topic.get_topic_name()
    intent = orjson.dumps({T1: {"in_flight": True, "pending": [{"action": "award", "version": 1}]}})
    issued = orjson.dumps({T1: {"status": "issued", "applied_v": 1, "credly_id": "b1"}})
    revoked = orjson.dumps({T1: {"status": "revoked", "applied_v": 2, "credly_id": "b1"}})
    table.apply_changelog_batch([_event(topic, 0, b"42", intent), _event(topic, 1, b"42", issued),
                                 _event(topic, 2, b"42", revoked)])
    table.apply_changelog_batch([_event(topic, 3, b"42", issued), _event(topic, 4, b"42", intent)])
    stored = table.data.get(b"42")
    assert stored is not None and orjson.loads(stored) == orjson.loads(revoked)


def test_the_byte_level_rules_return_the_kept_write_itself() -> None:
    a, b = orjson.dumps({"at": 1}), orjson.dumps({"at": 2})
    assert newer_progress(b"1", b, a) is b and newer_progress(b"1", a, b) is b
    x = orjson.dumps({T1: {"applied_v": 2}})
    y = orjson.dumps({T1: {"applied_v": 1}, T2: {"applied_v": 1}})
    assert newer_issuance(b"1", x, orjson.dumps({T1: {"applied_v": 3}})) == orjson.dumps({T1: {"applied_v": 3}})
    assert orjson.loads(newer_issuance(b"1", x, y)) == {T1: {"applied_v": 2}, T2: {"applied_v": 1}}
