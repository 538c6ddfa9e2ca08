"""Scale-out with crashes: two workers, random SIGKILLs of one of them, the outcome equal to one
clean pass of the engine (tests/support/exactly_once.py)."""

from __future__ import annotations

import random
import time
from typing import Iterator

import pytest

from tests.support.exactly_once import (
    SEED, T_BOTH, T_ONE, check_badges, check_progress, config, expected_outcome, workload,
)
from tests.support.stack import Stack, make_stack


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("scale"), [(T_ONE, "One"), (T_BOTH, "Both")], "scale")
    s.configure(config())
    yield s
    s.stop()
    s.emulator.stop_thread()


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
    check_progress(stack, states)
    check_badges(stack, awarded, revoked)
