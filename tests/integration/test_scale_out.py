"""Scale-out with crashes: three workers with the production store, random SIGKILLs of random
workers while they are busy, and the outcome equal to one clean pass of the engine
(tests/support/exactly_once.py): progress, every badge once, revocations where a clean run has
them, and no committed learner-events offset past one that no worker applied (the ledger).

A soak test, not part of ``make test``: random kills find bugs by luck, the suite proves crash
safety with deterministic fault points (test_fault_points.py). ``python -m tests.random_kills``
runs it many times in a row, one random schedule per ``BADGES_SCALE_OUT_SEED``, and prints the
totals.
"""

from __future__ import annotations

import os
import random
import time
from typing import Iterator

import pytest

from badges.faults import LEDGER_ENV
from tests.support.cluster import wait_until
from tests.support.exactly_once import (
    SEED, T_BOTH, T_ONE, check_badges, check_ledger, check_progress, config, expected_outcome, workload,
)
from tests.support.stack import Stack, make_stack

WORKERS = 3
KILLS = int(os.environ.get("BADGES_SCALE_OUT_KILLS", "4"))  # `python -m tests.random_kills --kills`


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("scale"), [(T_ONE, "One"), (T_BOTH, "Both")], "scale")
    s.configure(config())
    yield s
    s.stop()
    s.emulator.stop_thread()


@pytest.mark.soak
def test_random_sigkills_lose_nothing_and_duplicate_nothing(stack: Stack) -> None:
    seed = int(os.environ.get("BADGES_SCALE_OUT_SEED", SEED))
    rng = random.Random(seed)
    events = workload(stack, rng)
    ledger = stack.workdir / "ledger.txt"
    ledger.touch()
    workers = [stack.start_worker(f"w{i + 1}", wait=False, **{LEDGER_ENV: str(ledger)}) for i in range(WORKERS)]
    for w in workers:
        w.wait_ready(timeout=120)
    chunks = [events[i:i + 25] for i in range(0, len(events), 25)]
    kills = sorted(rng.sample(range(2, len(chunks) - 1), KILLS))
    for i, chunk in enumerate(chunks):
        stack.send(chunk)
        if i in kills:
            victim = rng.choice(workers)
            victim.wait_ready(timeout=120)  # kill a worker that owns partitions and is busy ...
            time.sleep(rng.uniform(0.0, 1.0))  # ... at a random moment (deliberately not a condition)
            victim.kill9()
            victim.proc = None
            victim.start()  # same port and data dir, new process: it rejoins and takes partitions back
    for w in workers:
        w.wait_ready(timeout=120)

    states, awarded, revoked = expected_outcome(stack, events)
    assert awarded, f"the workload must complete templates (seed {seed})"
    check_progress(stack, states)
    check_badges(stack, awarded, revoked)
    wait_until(lambda: check_ledger(stack, ledger) > 0, timeout=60, what="committed learner-events offsets")
