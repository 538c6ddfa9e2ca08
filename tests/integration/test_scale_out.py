"""Two workers share the partitions; one is killed with SIGKILL at random moments and restarted.

At the end every learner's progress equals what the pure engine computes from the same events in
one clean pass, and Credly holds exactly one badge per (learner, template) that was awarded.
"""

from __future__ import annotations

import random
import time
from typing import Any, Iterator

import orjson
import pytest

from badges.kafka.offsets import is_learner_key
from badges.config.settings import load_settings
from badges.domain.engine import apply_event
from badges.domain.index import compile_config
from badges.kafka.config_topic import read_snapshot
from badges.schemas.catalog import load_catalog
from badges.wire.decisions import decode_message
from badges.wire.decode import KafkaDecoder
from badges.domain.engine import Decision
from tests.support.cluster import wait_until
from tests.support.configs import config_yaml, failing, passing, penalty, requirement, rule, template
from tests.support.openedx import COURSE_PASSING
from tests.support.stack import Stack, make_stack

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


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("scale"), [(T_ONE, "One"), (T_BOTH, "Both")], "scale")
    s.configure(config())
    yield s
    s.stop()
    s.emulator.stop_thread()


def workload(stack: Stack, rng: random.Random) -> list[Any]:
    events = []
    for _ in range(4 * LEARNERS):
        u = 9000 + rng.randrange(LEARNERS)
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
    for key, value, headers in events:
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
        if m.key() in learners:
            d = decode_message(m.value())
            if isinstance(d, Decision):
                lines.append(f"decision p{m.partition()}@{m.offset()} {d.learner.id} {d.template[-3:]} {d.action}"
                             f" replayed={d.replayed} by {d.event.event_id}")
    for m in stack.read(f"{stack.app_id}-issuance-changelog", min_count=1):
        if m.key() in learners:
            lines.append(f"issuance p{m.partition()}@{m.offset()} {m.key().decode()} {m.value()!r}")
    return "\n".join(lines)


def test_random_sigkills_lose_nothing_and_duplicate_nothing(stack: Stack) -> None:
    rng = random.Random(SEED)
    events = workload(stack, rng)
    stack.start_worker("w1", wait=False)
    stack.start_worker("w2")
    stack.workers[0].wait_ready()
    victim = stack.workers[1]
    chunks = [events[i:i + 25] for i in range(0, len(events), 25)]
    kills = sorted(rng.sample(range(2, len(chunks) - 1), 4))
    for i, chunk in enumerate(chunks):
        stack.send(chunk)
        if i in kills:
            victim.wait_ready(timeout=90)  # kill a worker that owns partitions and is busy ...
            time.sleep(rng.uniform(0.0, 1.0))  # ... at a random moment (deliberately not a condition)
            victim.kill9()
            victim.proc = None
            victim.start()  # same port, new process: it rejoins and takes partitions back
    victim.wait_ready(timeout=90)
    assert victim.log_path.read_text().count("ingest assigned") >= len(kills) + 1

    states, awarded, revoked = expected_outcome(stack, events)
    assert awarded, "the workload must complete templates"

    want = {u: fulfilled_sets(s) for u, s in states.items()}
    diff: dict[int, Any] = {}

    def progress_matches() -> bool:
        latest: dict[int, Any] = {}
        for m in stack.read(f"{stack.app_id}-progress-changelog", min_count=1):
            if is_learner_key(m.key()):  # not a partition's applied offset
                latest[int(m.key())] = orjson.loads(m.value())
        got = {u: fulfilled_sets(s) for u, s in latest.items()}
        diff.clear()
        diff.update({u: (got.get(u), want.get(u)) for u in set(got) | set(want) if got.get(u) != want.get(u)})
        return not diff

    try:
        wait_until(progress_matches, timeout=120, interval=1.0, what="progress equal to a clean run")
    except AssertionError:
        raise AssertionError(f"{len(diff)} learners differ (got, expected): {dict(list(diff.items())[:5])}") from None

    badge_diff: dict[str, Any] = {}

    def badges_match() -> list[dict[str, Any]] | None:
        badges = stack.credly_badges()
        by_key: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for b in badges:
            learner = int(b["recipient_email"].split("@")[0].removeprefix("learner"))
            by_key.setdefault((learner, b["badge_template"]["id"]), []).append(b)
        got_revoked = {k for k, v in by_key.items() if v[0]["state"] == "revoked"}
        badge_diff.clear()
        badge_diff.update({
            "missing": sorted(awarded - set(by_key)), "unexpected": sorted(set(by_key) - awarded),
            "not revoked": sorted(revoked - got_revoked), "wrongly revoked": sorted(got_revoked - revoked),
        })
        return badges if not any(badge_diff.values()) else None

    try:
        badges = wait_until(badges_match, timeout=120, interval=1.0, what="one badge per awarded (learner, template)")
    except AssertionError:
        keys = {k for v in badge_diff.values() for k in v}
        raise AssertionError(f"Credly differs from a clean run: {badge_diff}\n{history(stack, keys)}") from None
    keys = [(b["recipient_email"], b["badge_template"]["id"]) for b in badges]
    assert len(keys) == len(set(keys)), "a badge was issued twice"
