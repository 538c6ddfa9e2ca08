"""Exactly once, checked the same way by every crash test: a workload of passing, failing and
certificate events over two templates (one with a penalty), its outcome from one clean pass of
the pure engine, and the checks that progress and Credly match that outcome, every badge once,
and that no committed learner-events offset passes one that was never applied (the ledger)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from badges.config.settings import load_settings
from badges.domain.engine import apply_event
from badges.domain.index import compile_config
from badges.domain.progress import newer_of
from badges.tools.config_topic import read_snapshot
from badges.kafka.offsets import is_learner_key
from badges.schemas.catalog import load_catalog
from badges.wire.decisions import decode_message
from badges.wire.decode import KafkaDecoder
from tests.support.cluster import wait_until
from tests.support.configs import config_yaml, failing, passing, penalty, requirement, rule, template
from tests.support.openedx import COURSE_PASSING
from tests.support.stack import Stack

T_ONE = "7d4f6a52-0000-4000-8000-0000000000e1"  # pass X; penalty: fail X
T_BOTH = "7d4f6a52-0000-4000-8000-0000000000e2"  # pass X AND certificate of Y
X, Y = "course-v1:Org+X+2024", "course-v1:Org+Y+2024"
CERT = "org.openedx.learning.certificate.created.v1"
LEARNERS = 200
SEED = 20261127


def config() -> str:
    return config_yaml(
        template(T_ONE, [requirement("x", passing(X))], [penalty("x-failed", ["x"], failing(X))]),
        template(T_BOTH, [requirement("x", passing(X), group="A"),
                          requirement("y-cert", [rule("course.course_key", Y)], event_type=CERT, group="B")]),
    )


def workload(stack: Stack, rng: random.Random, learners: int = LEARNERS, first: int = 9000) -> list[Any]:
    events = []
    for _ in range(4 * learners):
        u = first + rng.randrange(learners)
        kind = rng.random()
        if kind < 0.55:
            events.append(stack.event(COURSE_PASSING, u, {"is_passing": True, "course.course_key": X}))
        elif kind < 0.7:
            events.append(stack.event(COURSE_PASSING, u, {"is_passing": False, "course.course_key": X}))
        else:
            events.append(stack.event(CERT, u, {"course.course_key": Y}))
    return events


def expected_outcome(stack: Stack, events: list[Any]) -> tuple[dict[int, Any], set[tuple[int, str]], set[tuple[int, str]]]:
    """One clean pass of the pure engine over the same events, in the order they were sent."""
    settings = load_settings(kafka_bootstrap_servers=stack.bootstrap, app_id=stack.app_id)
    config = compile_config(read_snapshot(settings), load_catalog())
    decoder = KafkaDecoder(load_catalog())
    states: dict[int, Any] = {}
    awarded: set[tuple[int, str]] = set()
    revoked: set[tuple[int, str]] = set()
    for _key, value, headers in events:
        ev = decoder.decode(headers, value, "expected", None)
        outcome = apply_event(states.get(ev.learner.id), config, ev)
        if outcome.state is not None:
            states[ev.learner.id] = outcome.state
        for d in outcome.decisions:
            (awarded if d.action == "award" else revoked).add((ev.learner.id, d.template))
    return states, awarded, revoked


def fulfilled_sets(state: dict[str, Any]) -> dict[str, set[str]]:
    return {t: set(p["fulfilled"]) for t, p in state["templates"].items()}


def history(stack: Stack, keys: set[tuple[int, str]]) -> str:
    """The decisions and issuance records of these (learner, template) pairs, to explain a failure."""
    lines = []
    learners = {str(u).encode() for u, _ in keys}
    for m in stack.read(f"{stack.app_id}-badge-decisions", min_count=1):
        message = decode_message(m.value())
        for d in message if isinstance(message, tuple) else ():
            if str(d.learner.id).encode() in learners:
                lines.append(f"decision p{m.partition()}@{m.offset()} {d.learner.id} {d.template[-3:]} {d.action}"
                             f" replayed={d.replayed} by {d.event.event_id}")
    for m in stack.read(f"{stack.app_id}-issuance-changelog", min_count=1):
        if m.key() in learners:
            lines.append(f"issuance p{m.partition()}@{m.offset()} {m.key().decode()} {m.value()!r}")
    return "\n".join(lines)


def check_progress(stack: Stack, states: dict[int, Any], timeout: float = 120) -> None:
    """The progress record of every learner that a recovery of the changelog keeps (the newest:
    ``progress.newer_of``, so an evicted worker's late write does not count) equals the clean run's."""
    want = {u: fulfilled_sets(s) for u, s in states.items()}
    diff: dict[int, Any] = {}

    def progress_matches() -> bool:
        latest: dict[int, Any] = {}
        for m in stack.read(f"{stack.app_id}-progress-changelog", min_count=1):
            if is_learner_key(m.key()):  # not a partition's applied offset
                record, learner = orjson.loads(m.value()), int(m.key())
                latest[learner] = newer_of(latest[learner], record) if learner in latest else record
        got = {u: fulfilled_sets(s) for u, s in latest.items() if u in want}
        diff.clear()
        diff.update({u: (got.get(u), want.get(u)) for u in set(got) | set(want) if got.get(u) != want.get(u)})
        return not diff

    try:
        wait_until(progress_matches, timeout=timeout, interval=1.0, what="progress equal to a clean run")
    except AssertionError:
        raise AssertionError(f"{len(diff)} learners differ (got, expected): {dict(list(diff.items())[:5])}\n"
                             f"their progress writes:\n{progress_writes(stack, set(list(diff)[:3]))}") from None


def progress_writes(stack: Stack, learners: set[int]) -> str:
    """Every changelog write of these learners' progress, in order: where, by which envelope
    (``at``), and what it says was fulfilled, to explain a failure."""
    lines = []
    for m in stack.read(f"{stack.app_id}-progress-changelog", min_count=1):
        if is_learner_key(m.key()) and int(m.key()) in learners:
            record = orjson.loads(m.value())
            lines.append(f"progress p{m.partition()}@{m.offset()} learner {int(m.key())} at={record.get('at')} "
                         f"{ {t[-3:]: sorted(f) for t, f in fulfilled_sets(record).items()} }")
    return "\n".join(lines)


def check_badges(stack: Stack, awarded: set[tuple[int, str]], revoked: set[tuple[int, str]],
                 learners: range | None = None, timeout: float = 120) -> list[dict[str, Any]]:
    """Credly holds one badge per (learner, template) a clean run awards, revoked exactly where
    it revokes (a badge awarded and revoked before the sink got to it is issued, then revoked,
    as it happened); ``learners`` limits the check to a workload's own learners."""
    badge_diff: dict[str, Any] = {}

    def badges_match() -> list[dict[str, Any]] | None:
        badges = [b for b in stack.credly_badges()
                  if learners is None or _learner_of(b) in learners]
        by_key: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for b in badges:
            by_key.setdefault((_learner_of(b), b["badge_template"]["id"]), []).append(b)
        got_revoked = {k for k, v in by_key.items() if v[0]["state"] == "revoked"}
        badge_diff.clear()
        badge_diff.update({
            "missing": sorted(awarded - set(by_key)), "unexpected": sorted(set(by_key) - awarded),
            "not revoked": sorted(revoked - got_revoked), "wrongly revoked": sorted(got_revoked - revoked),
            "twice": sorted(k for k, v in by_key.items() if len(v) > 1),
        })
        return badges if not any(badge_diff.values()) else None

    try:
        return wait_until(badges_match, timeout=timeout, interval=1.0,
                          what="one badge per awarded (learner, template)")
    except AssertionError:
        keys = {k for v in badge_diff.values() for k in v}
        raise AssertionError(f"Credly differs from a clean run: {badge_diff}\n{history(stack, keys)}") from None


def _learner_of(badge: dict[str, Any]) -> int:
    return int(badge["recipient_email"].split("@")[0].removeprefix("learner"))


def check_ledger(stack: Stack, ledger: Path) -> int:
    """Every learner-events offset below the group's committed one was applied by some worker
    (``BADGES_FAULT_LEDGER``); returns how many offsets that covers."""
    topic = stack.settings.learner_events_topic
    applied: dict[int, set[int]] = {}
    for line in ledger.read_text().splitlines():
        t, partition, offset = line.split()
        if t == topic:
            applied.setdefault(int(partition), set()).add(int(offset))
    consumer = Consumer(stack.settings.kafka.confluent_config(**{"group.id": stack.app_id, "enable.auto.commit": False}))
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(stack.partitions)], timeout=10)
    finally:
        consumer.close()
    covered = 0
    for tp in committed:
        if tp.offset is None or tp.offset < 0:
            continue
        missing = set(range(tp.offset)) - applied.get(tp.partition, set())
        assert not missing, f"{topic}[{tp.partition}] committed at {tp.offset} past offsets never applied: {sorted(missing)[:10]}"
        covered += tp.offset
    return covered
