"""The Credly sink against a misbehaving Credly: exactly one badge, whatever happens."""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest
from tests.support.configs import config_yaml, demo_template
from tests.support.openedx import COURSE_PASSING
from tests.support.cluster import WorkerProcess
from tests.support.stack import Stack, make_stack

TEMPLATE = "7d4f6a52-0000-4000-8000-0000000000f1"
COURSE = "course-v1:Org+Sink+2024"
ISSUE = {"method": "POST", "path": "/badges$"}


# short Credly timeout and retries so that failure paths stay quick (never below correctness)
WORKER_ENV = {"BADGES_CREDLY_TIMEOUT_S": "1", "BADGES_CREDLY_MAX_ATTEMPTS": "4",
              "BADGES_CREDLY_SHARED_RATE_LIMIT": "true"}


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("sink"), [(TEMPLATE, "Sink")], "sink")
    s.configure(config_yaml(demo_template(TEMPLATE, COURSE, with_penalty=False)))
    s.start_worker(**WORKER_ENV)  # type: ignore[arg-type]  # the variables never name name or wait
    yield s
    s.stop()
    s.emulator.stop_thread()


def complete(stack: Stack, learner: int) -> str:
    email = f"learner{learner}@example.com"
    stack.send([stack.event(COURSE_PASSING, learner, {"is_passing": True, "course.course_key": COURSE})])
    return email


def dead_letters(stack: Stack, learner: int, reason: str) -> list[Any]:
    """The dead letters of a learner with this ``dlq_reason``."""
    return [m for m in stack.read(f"{stack.app_id}-dead-letters", min_count=0, timeout=5)
            if m.key() == str(learner).encode() and (b"dlq_reason", reason.encode()) in
            [(k.encode(), v) for k, v in m.headers() or ()]]


def restart_with(stack: Stack, kill: bool = False, **extra: str) -> WorkerProcess:
    """Stop every worker (SIGTERM, or SIGKILL with ``kill``) and start one with the module's
    settings and ``extra`` (a fail point, or none)."""
    for running in stack.workers:
        if kill:
            running.kill9()
        else:
            assert running.stop() == 0
    stack.workers.clear()
    return stack.start_worker(**WORKER_ENV, **extra)  # type: ignore[arg-type]  # the variables never name name or wait


def same_partition(stack: Stack, learner: int, candidates: range) -> list[int]:
    """The learners of ``candidates`` whose partition is ``learner``'s."""
    from badges.wire.envelope import learner_partition

    partitions = stack.settings.partitions
    return [n for n in candidates if learner_partition(n, partitions) == learner_partition(learner, partitions)]


def posts_for(stack: Stack, email: str) -> list[dict]:
    return [r for r in stack.credly_requests()
            if r["method"] == "POST" and r["path"].endswith("/badges") and (r.get("body") or {}).get("recipient_email") == email]


def test_the_sink_takes_its_calls_from_the_shared_window_in_redis(stack: Stack) -> None:
    import redis

    from tests.support.cluster import wait_until

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    email = complete(stack, 800)
    # the window's key lives one window (1 s at 20 calls/s) after the last call: poll closely
    wait_until(lambda: client.keys(f"{stack.app_id}-credly-rate*"), interval=0.02,
               what="the organization's rate-limit window in Redis")
    # issued before the next test arms its faults: a later POST of this learner would take them
    stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b))


def test_500_500_ok_gives_exactly_one_badge(stack: Stack) -> None:
    stack.credly_fault(mode="status", status=500, times=2, **ISSUE)
    email = complete(stack, 801)
    badges = stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b))
    assert len([b for b in badges if b["recipient_email"] == email]) == 1
    assert len(posts_for(stack, email)) == 3


def test_a_single_decision_message_of_a_worker_before_issue_20_is_carried_out(stack: Stack) -> None:
    # Workers upgraded in place find such messages in the topic: one decision per message, keyed
    # by learner (murmur2, as the stack's producer places keys), instead of an envelope's list.
    import orjson

    from badges.domain.engine import Award, EventRef
    from badges.domain.events import Learner
    from tests.support.stack import ORG

    email = "learner870@example.com"
    old = Award(learner=Learner(id=870, username="learner870", email=email, name="Ada Lovelace"),
                template=TEMPLATE, organization=ORG,
                event=EventRef(event_id="old-form-870", event_type=COURSE_PASSING, time="2024-05-01T10:00:00Z",
                               time_us=1714557600000000), cause=("demo",), version=1)
    stack.send([(b"870", orjson.dumps(old.to_dict()), [])], topic=f"{stack.app_id}-badge-decisions")
    badges = stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b))
    assert len([b for b in badges if b["recipient_email"] == email]) == 1


def test_timeout_after_credly_stored_the_badge_is_reconciled_not_duplicated(stack: Stack) -> None:
    stack.credly_fault(mode="store_then_hang", times=1, hang_s=5, **ISSUE)
    email = complete(stack, 802)
    stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b))
    # the lookup filters by the LMS user id (SPEC §8), not by the e-mail alone
    def lookups() -> list[dict[str, Any]]:
        return [r for r in stack.credly_requests()
                if r["method"] == "GET" and "issuer_earner_id::802" in r["path"] + str(r.get("query", ""))]

    from tests.support.cluster import wait_until

    wait_until(lookups, what="a lookup after the timeout")
    # a sentinel learner issued after it shows the sink has moved on
    sentinel = complete(stack, 803)
    stack.wait_badges(lambda b: any(x["recipient_email"] == sentinel for x in b))
    assert len([b for b in stack.credly_badges() if b["recipient_email"] == email]) == 1
    assert len(posts_for(stack, email)) == 1


def test_429_waits_for_retry_after(stack: Stack) -> None:
    stack.credly_fault(mode="rate_limit", retry_after="1", times=1, **ISSUE)
    email = complete(stack, 804)
    stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b))
    attempts = posts_for(stack, email)
    assert len(attempts) == 2
    assert attempts[1]["at"] - attempts[0]["at"] >= 1.0  # the emulator's own clock: Retry-After honoured


def test_failed_after_retries_then_retry_failed_redrives_it(stack: Stack) -> None:
    stack.credly_fault(mode="status", status=503, times=4, **ISSUE)
    email = complete(stack, 805)
    from tests.support.cluster import wait_until

    wait_until(lambda: len(posts_for(stack, email)) >= 4, what="four failed attempts")
    sentinel = complete(stack, 806)
    stack.wait_badges(lambda b: any(x["recipient_email"] == sentinel for x in b))
    assert not [b for b in stack.credly_badges() if b["recipient_email"] == email]
    out = stack.cli("retry-failed").stdout
    assert "retry" in out
    badges = stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b))
    assert len([b for b in badges if b["recipient_email"] == email]) == 1


def kill_when_posted(stack: Stack, email: str, posts: int) -> None:
    """SIGKILL the worker as soon as Credly has received ``posts`` issue calls for ``email``
    (while the last one hangs or between retries), then start it again on the same tables."""
    from tests.support.cluster import wait_until

    wait_until(lambda: len(posts_for(stack, email)) >= posts, interval=0.02, what=f"{posts} issue call(s)")
    stack.restart_worker()


def test_sigkill_while_credly_holds_a_stored_badge_then_restart_issues_no_duplicate(stack: Stack) -> None:
    # Credly stores the badge and never answers: the worker dies with the outcome unknown; the
    # restarted one finds its durable intent and looks the badge up instead of posting again
    stack.credly_fault(mode="store_then_hang", times=1, hang_s=30, **ISSUE)
    email = complete(stack, 807)
    kill_when_posted(stack, email, 1)
    sentinel = complete(stack, 808)
    stack.wait_badges(lambda b: any(x["recipient_email"] == sentinel for x in b))
    assert len([b for b in stack.credly_badges() if b["recipient_email"] == email]) == 1
    assert len(posts_for(stack, email)) == 1


def test_sigkill_during_credly_retries_then_restart_issues_exactly_one(stack: Stack) -> None:
    stack.credly_fault(mode="status", status=503, times=3, **ISSUE)
    email = complete(stack, 809)
    kill_when_posted(stack, email, 2)  # between the second and the third attempt
    badges = stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b))
    assert len([b for b in badges if b["recipient_email"] == email]) == 1


def test_an_intent_never_completed_is_carried_out_after_a_restart(stack: Stack) -> None:
    """A batch recorded its intent and died, and the decision was never delivered again: the
    worker that owns the learner reconciles the progress table's badge record (awarded, version
    1) with the issuance record (intent, nothing applied) and issues the badge, looking it up in
    Credly first, without any new decision."""
    from tests.support.stack import ORG

    learner = 810
    email = f"learner{learner}@example.com"
    stack.plant_unfinished_intent(learner, TEMPLATE, ORG, "2024-05-01T10:20:30+00:00")
    stack.restart_worker()

    badges = stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b), timeout=60)
    [badge] = [b for b in badges if b["recipient_email"] == email]
    assert badge["badge_template"]["id"] == TEMPLATE and badge["issued_at"].startswith("2024-05-01 10:20:30")
    lookups = [r for r in stack.credly_requests()
               if r["method"] == "GET" and f"issuer_earner_id::{learner}" in str(r.get("query", ""))]
    assert lookups, "an intent's outcome is unknown: Credly is asked before issuing"


def test_a_poison_decision_is_dead_lettered_its_partition_goes_on_and_a_restart_issues_it(stack: Stack) -> None:
    """A decision that fails the sink's batch every time (``sink.poison_learner``, as a bug its
    records trigger would) must not hold the learners of its partition: after a few tries the
    batch is carried out learner by learner, the poison decision goes to the dead-letter topic
    (reason ``sink_error``) and a learner of the same partition gets the badge. Nothing is lost:
    the desired state is in the progress table, and a worker without the fault reconciles it."""
    from tests.support.cluster import wait_until

    poison = 850
    neighbour, *others = same_partition(stack, poison, range(851, 2000))
    restart_with(stack, BADGES_FAIL_POINT=f"sink.poison_learner:{poison}")
    try:
        poisoned = complete(stack, poison)
        neighbours = complete(stack, neighbour)
        stack.wait_badges(lambda b: any(x["recipient_email"] == neighbours for x in b),
                          what="the badge of a learner of the poison decision's partition")

        [letter] = wait_until(lambda: dead_letters(stack, poison, "sink_error"),
                              what="the poison decision on the dead-letter topic")
        headers = dict(letter.headers())
        assert headers["dlq_source_topic"] == f"{stack.app_id}-badge-decisions".encode()
        assert b"injected poison decision" in headers["dlq_detail"]
        assert not [b for b in stack.credly_badges() if b["recipient_email"] == poisoned]

        # Killed and restarted with the fault still there (a bug, not a passing outage): the
        # reconciliation after the rebalance finds the badge and fails on it like the batch
        # did. It must leave it for the next reconciliation, not crash the worker into a loop.
        faulty = restart_with(stack, kill=True, BADGES_FAIL_POINT=f"sink.poison_learner:{poison}")

        def reconciliation_failed() -> bool:
            text = httpx.get(f"{faulty.url}/metrics", timeout=10).text
            return any(line.startswith("badges_reconciliation_failures_total ") and float(line.split()[1]) >= 1
                       for line in text.splitlines())

        wait_until(reconciliation_failed, timeout=60, what="the reconciliation to fail on the poison decision")
        later = complete(stack, others[0])
        stack.wait_badges(lambda b: any(x["recipient_email"] == later for x in b),
                          what="a badge of the poison decision's partition after the failed reconciliation")
        assert faulty.proc is not None and faulty.proc.poll() is None, "the worker crashed"
        assert not [b for b in stack.credly_badges() if b["recipient_email"] == poisoned]
    finally:
        restart_with(stack)
    badges = stack.wait_badges(lambda b: any(x["recipient_email"] == poisoned for x in b), timeout=90,
                               what="the poison learner's badge, reconciled by a worker without the fault")
    assert len([b for b in badges if b["recipient_email"] == poisoned]) == 1
    assert len([b for b in badges if b["recipient_email"] == neighbours]) == 1


def test_an_event_the_rules_engine_fails_on_is_dead_lettered_and_replay_brings_it_back(stack: Stack) -> None:
    """An event that makes the rules engine raise (``progress.poison_learner``, as a bug its data
    would) must not end the progress agent: raised, it would crash the worker at every restart
    on the same envelope. It goes to the dead-letter topic (``progress_error``) and the other
    events of its partition are applied; a worker SIGKILLed and restarted with the fault stays
    up; once the fault is gone, `badges replay` applies it and the badge is issued once."""
    from badges.wire.envelope import decode_envelope
    from tests.support.cluster import wait_until

    poison = 2870  # learners of their own: the poison decision's test takes 850-1999
    same = same_partition(stack, poison, range(2871, 4000))
    fault = f"progress.poison_learner:{poison}"
    worker = restart_with(stack, BADGES_FAIL_POINT=fault)
    try:
        # in one batch: the poison event and a learner of the same partition after it
        poisoned, neighbour = f"learner{poison}@example.com", f"learner{same[0]}@example.com"
        stack.send([stack.event(COURSE_PASSING, n, {"is_passing": True, "course.course_key": COURSE})
                    for n in (poison, same[0])])
        stack.wait_badges(lambda b: any(x["recipient_email"] == neighbour for x in b),
                          what="the badge of the learner after the poison event")

        [letter] = wait_until(lambda: dead_letters(stack, poison, "progress_error"),
                              what="the poison event on the dead-letter topic")
        headers = dict(letter.headers())
        assert headers["dlq_source_topic"] == f"{stack.app_id}-learner-events".encode()
        assert b"injected poison event" in headers["dlq_detail"]
        [event] = decode_envelope(letter.value()).events  # the event itself, for whoever fixes it
        assert event.learner.id == poison

        worker = restart_with(stack, kill=True, BADGES_FAIL_POINT=fault)  # the same fault after a SIGKILL
        later = f"learner{same[1]}@example.com"
        stack.send([stack.event(COURSE_PASSING, same[1], {"is_passing": True, "course.course_key": COURSE})])
        stack.wait_badges(lambda b: any(x["recipient_email"] == later for x in b),
                          what="a badge of the poison event's partition after a restart with the fault")
        assert worker.proc is not None and worker.proc.poll() is None, "the worker crashed"
        assert not [b for b in stack.credly_badges() if b["recipient_email"] == poisoned]
    finally:
        restart_with(stack)
    stack.cli("replay", "--from-beginning", "--wait", "90")
    badges = stack.wait_badges(lambda b: any(x["recipient_email"] == poisoned for x in b),
                               what="the poison learner's badge, after the fix and a replay")
    for email in (poisoned, neighbour, later):
        assert len([b for b in badges if b["recipient_email"] == email]) == 1
