"""Deterministic fault points: make the process die at a named point, to prove crash safety.

``BADGES_FAULT_POINT=name`` (or ``name:n``, the n-th time the point is reached) makes a worker
exit at once with status 137, as if SIGKILLed, the moment its code reaches ``fault_point(name)``:
no cleanup, no flush, nothing written after that point. Tests use it to stop a worker exactly
between two steps of the exactly-once protocol (after the intent is durable and before Credly is
called, after Credly answered and before the outcome is written, ...) instead of hoping that a
random kill lands there. Unset, a fault point costs one dictionary lookup.

``BADGES_FAULT_LEDGER=path`` appends ``topic partition offset`` for every message the progress
agent applies, so that a test can check, after any number of crashes, that every offset below
the final committed one was applied at least once.

Both are test instruments: the settings model does not know them, and production never sets
them.
"""

from __future__ import annotations

import os
import sys

FAULT_ENV = "BADGES_FAULT_POINT"
LEDGER_ENV = "BADGES_FAULT_LEDGER"
EXIT_STATUS = 137

POINTS = (
    # the phases of a rebalance, in order
    "rebalance.after_revoke",  # partitions given up (streams stopped), no new assignment yet
    "rebalance.before_recovery",  # a new assignment, its tables not recovered, nothing read
    "consumer.before_resume_seek",  # assignment recovered, before seeking back to applied work
    # the steps of the exactly-once path
    "progress.after_state_write",  # progress records sent, decisions not yet
    "progress.after_decisions",  # decisions sent, the envelope not yet acknowledged
    "sink.after_intent_flush",  # intents durable, Credly not yet called
    "sink.after_credly_call",  # Credly answered, the outcome not yet written
)


def _parse(raw: str | None) -> tuple[str, int] | None:
    if not raw:
        return None
    name, _, nth = raw.partition(":")
    if name not in POINTS:
        raise SystemExit(f"{FAULT_ENV}={raw}: unknown fault point; known: {', '.join(POINTS)}")
    return name, int(nth or 1)


_armed = _parse(os.environ.get(FAULT_ENV))
_hits = 0


def fault_point(name: str) -> None:
    global _hits
    if _armed is None or _armed[0] != name:
        return
    _hits += 1
    if _hits >= _armed[1]:
        sys.stderr.write(f"fault point {name} reached ({_hits}): exiting with {EXIT_STATUS}\n")
        sys.stderr.flush()
        os._exit(EXIT_STATUS)


# ``BADGES_FAIL_POINT=name:n`` makes the n-th operation at a named point fail instead of exiting:
# ``progress.changelog_write`` fails the n-th changelog write of the progress agent as a broker
# would (the record is not sent; its future raises), to prove that a commit never passes it.
FAIL_ENV = "BADGES_FAIL_POINT"
# ``sink.poison_learner:ID`` makes every decision of learner ID fail the sink's batch that holds
# it (a "poison" decision, as a bug its records trigger would), to prove that it is set aside
# instead of holding every learner of its partition (``agents/sink.py`` ``until_done``), and
# that a reconciliation leaves it and goes on. ``progress.poison_learner:ID`` makes the rules
# engine fail on every event of learner ID (``agents/progress.py`` ``set_aside``).
FAIL_POINTS = ("progress.changelog_write", "sink.poison_learner", "progress.poison_learner")
_fail = os.environ.get(FAIL_ENV)
_fail_armed = _fail.partition(":")[0] if _fail else None
if _fail_armed is not None and _fail_armed not in FAIL_POINTS:
    raise SystemExit(f"{FAIL_ENV}={_fail}: unknown fail point; known: {', '.join(FAIL_POINTS)}")
_fail_arg = int(_fail.partition(":")[2] or 1) if _fail else 0  # the n-th time, or the learner id
_fail_hits = 0


def fails(name: str) -> bool:
    """True exactly once: the n-th time the armed fail point is reached."""
    global _fail_hits
    if _fail_armed != name:
        return False
    _fail_hits += 1
    if _fail_hits == _fail_arg:
        sys.stderr.write(f"fail point {name} reached ({_fail_hits}): this operation fails\n")
        return True
    return False


def fails_for(name: str, value: int) -> bool:
    """True every time the armed fail point is ``name:value``."""
    return _fail_armed == name and _fail_arg == value


_ledger_path = os.environ.get(LEDGER_ENV)
_ledger = open(_ledger_path, "a", buffering=1) if _ledger_path else None  # open for the life of the process


def ledger_applied(topic: str, partition: int, offset: int) -> None:
    if _ledger is not None:
        _ledger.write(f"{topic} {partition} {offset}\n")
