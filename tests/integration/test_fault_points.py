"""Crashes at named points of the exactly-once path, by construction (``BADGES_FAULT_POINT``).

For each fault point a worker (production store) runs the exactly-once workload
(tests/support/exactly_once.py) until the point is reached and the process exits as if
SIGKILLed; a worker started again on the same data dir finishes the work. The outcome must
equal one clean pass of the engine: every badge issued once, revoked where it should be, and
no committed learner-events offset past one that was never applied (the ledger).
The rebalance points (after the revocation, before the recovery, before the seek back) are
armed for the rebalance that a second worker joining the group causes while the first is busy:
each phase of a rebalance has its crash.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator

import pytest

from badges.faults import EXIT_STATUS, FAIL_ENV, FAULT_ENV, LEDGER_ENV
from tests.support.cluster import wait_until
from tests.support.exactly_once import (
    T_BOTH, T_ONE, X, check_badges, check_ledger, check_progress, config, expected_outcome, workload,
)
from tests.support.openedx import COURSE_PASSING
from tests.support.stack import Stack, make_stack

LEARNERS = 40
POINTS = {
    # point -> the hit that kills (later hits leave some work done before the crash)
    "rebalance.after_revoke": 1,  # the first revocation that gives partitions up
    "rebalance.before_recovery": 2,
    "progress.after_state_write": 3,
    "progress.after_decisions": 3,
    "sink.after_intent_flush": 2,
    "sink.after_credly_call": 2,
    "consumer.before_resume_seek": 2,
}

# reached on a rebalance: armed for the one that a second worker joining the group causes
REBALANCE_POINTS = ("rebalance.after_revoke", "rebalance.before_recovery", "consumer.before_resume_seek")


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("faults"), [(T_ONE, "One"), (T_BOTH, "Both")], "faults")
    s.configure(config())
    yield s
    s.stop()
    s.emulator.stop_thread()


@pytest.mark.parametrize("point", list(POINTS))
def test_a_crash_at_each_fault_point_loses_nothing_and_duplicates_nothing(stack: Stack, point: str) -> None:
    first = 20_000 + 1000 * list(POINTS).index(point)  # each point its own learners
    events = workload(stack, random.Random(first), learners=LEARNERS, first=first)
    ledger: Path = stack.workdir / "ledger.txt"  # one for the module: its tests share the topics
    ledger.touch()
    fault = {FAULT_ENV: f"{point}:{POINTS[point]}", LEDGER_ENV: str(ledger)}
    name = f"w-{point}"
    for running in stack.workers:
        running.stop()
    stack.workers.clear()
    victim = stack.start_worker(name, **fault)  # type: ignore[arg-type]  # the variables never name name or wait
    if point in REBALANCE_POINTS:
        stack.send(events[: len(events) // 2])
        stack.start_worker(f"{name}-second", wait=False, **{LEDGER_ENV: str(ledger)})  # a rebalance
        stack.send(events[len(events) // 2:])
    else:
        stack.send(events)
    assert victim.proc is not None
    wait_until(lambda: victim.proc is not None and victim.proc.poll() is not None, timeout=90, what=f"the worker to reach {point}")
    assert victim.proc.returncode == EXIT_STATUS
    assert f"fault point {point} reached" in victim.log_path.read_text()
    stack.workers.remove(victim)
    # the same data dir, no fault
    stack.start_worker(name, **{LEDGER_ENV: str(ledger)})  # type: ignore[arg-type]  # the variables never name name or wait

    states, awarded, revoked = expected_outcome(stack, events)
    assert awarded and revoked, "the workload must award and revoke"
    check_progress(stack, states)
    check_badges(stack, awarded, revoked, learners=range(first, first + LEARNERS))
    wait_until(lambda: check_ledger(stack, ledger) > 0, timeout=30, what="committed learner-events offsets")


def test_a_failed_changelog_write_is_written_again_before_its_offset_is_committed(stack: Stack) -> None:
    # The first progress write fails as a broker's send would (the record never reaches the
    # changelog; BADGES_FAIL_POINT). Its learner is not touched again, so nothing later would
    # carry the state: the worker must go back and write it again before it commits past it,
    # and a successor that has only the changelog (its own empty data dir) must find it.
    first = 30_000
    probe = stack.event(COURSE_PASSING, first + LEARNERS, {"is_passing": True, "course.course_key": X})
    events = workload(stack, random.Random(first), learners=LEARNERS, first=first)
    ledger: Path = stack.workdir / "ledger.txt"
    ledger.touch()
    for running in stack.workers:
        running.stop()
    stack.workers.clear()
    failing = {FAIL_ENV: "progress.changelog_write:1", LEDGER_ENV: str(ledger)}
    writer = stack.start_worker("w-write-fails", **failing)  # type: ignore[arg-type]  # the variables never name name or wait
    stack.send([probe])
    wait_until(lambda: "reading again from" in writer.log_path.read_text(), timeout=60,
               what="the worker to go back to the envelope whose write failed")
    stack.send(events)
    states, awarded, revoked = expected_outcome(stack, [probe, *events])
    check_progress(stack, states)
    wait_until(lambda: check_ledger(stack, ledger) > 0, timeout=30, what="committed learner-events offsets")
    writer.kill9()
    stack.workers.remove(writer)
    stack.start_worker("w-successor", **{LEDGER_ENV: str(ledger)})  # type: ignore[arg-type]  # a new data dir: the changelog alone
    check_progress(stack, states)
    check_badges(stack, awarded, revoked, learners=range(first, first + LEARNERS + 1))
    check_ledger(stack, ledger)
