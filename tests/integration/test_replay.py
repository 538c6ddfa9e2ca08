"""`badges replay`: backfill through the normal path, never a badge twice."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Iterator

import pytest
import yaml

from tests.support.cluster import wait_until
from tests.support.configs import config_yaml, failing, passing, penalty, requirement, template
from tests.support.openedx import COURSE_PASSING
from tests.support.stack import Stack, make_stack

T1 = "7d4f6a52-0000-4000-8000-0000000000d1"  # active from the start
T2 = "7d4f6a52-0000-4000-8000-0000000000d2"  # activated later, backfilled by replay
COURSE = "course-v1:Org+Replay+2024"
LEARNERS = range(700, 712)


def config(t2_active: bool) -> str:
    def one(uuid: str, active: bool) -> dict:
        return template(uuid, [requirement("pass", passing(COURSE))],
                        [penalty("fail", ["pass"], failing(COURSE))], active=active)

    return config_yaml(one(T1, True), one(T2, t2_active))


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("replay"), [(T1, "One"), (T2, "Two")], "replay")
    s.configure(config(t2_active=False))
    s.start_worker()
    yield s
    s.stop()
    s.emulator.stop_thread()


def emails(stack: Stack, template: str) -> list[str]:
    return sorted(b["recipient_email"] for b in stack.credly_badges() if b["badge_template"]["id"] == template)


def replay(stack: Stack, *args: str) -> str:
    proc = stack.cli("replay", *args, "--wait", "60")
    return proc.stdout


def test_replay_changes_nothing_then_backfills_a_new_template_exactly_once(stack: Stack) -> None:
    # learners 700..711 pass; 700 and 701 then fail (penalty) and pass again
    events = [stack.event(COURSE_PASSING, u, {"is_passing": True, "course.course_key": COURSE}) for u in LEARNERS]
    events += [stack.event(COURSE_PASSING, u, {"is_passing": False, "course.course_key": COURSE}) for u in (700, 701)]
    events += [stack.event(COURSE_PASSING, u, {"is_passing": True, "course.course_key": COURSE}) for u in (700,)]
    stack.send(events)
    stack.wait_badges(lambda b: len([x for x in b if x["state"] == "revoked"]) == 2, what="12 badges, 2 revoked")
    before = stack.credly_badges()
    posts = len([r for r in stack.credly_requests() if r["method"] == "POST"])
    puts = len([r for r in stack.credly_requests() if r["method"] == "PUT"])

    out = replay(stack, "--from-beginning")
    assert re.search(r"read \d+ events, handed over 15 ", out), out
    assert "0 badges awarded, 0 revoked" in out, out
    assert stack.credly_badges() == before
    assert len([r for r in stack.credly_requests() if r["method"] == "POST"]) == posts
    assert len([r for r in stack.credly_requests() if r["method"] == "PUT"]) == puts

    # activate T2 and backfill it: replayed in order, the penalties apply as they did live
    stack.cli("template", "activate", T2)
    wait_until(lambda: "T2 active" if _export_active(stack, T2) else None, what="T2 active")
    out = replay(stack, "--from-beginning")
    # as live: every learner passed (12 awards), 700 and 701 failed afterwards (2 revoked), and
    # 700 passed again (a 13th fulfillment, but a revoked badge is not awarded again)
    assert "workers applied 15 events: 13 fulfillments added, 12 badges awarded, 2 revoked" in out, out
    expected = sorted(f"learner{u}@example.com" for u in LEARNERS)
    stack.wait_badges(lambda b: len([x for x in b if x["badge_template"]["id"] == T2 and x["state"] == "revoked"]) == 2,
                      what="T2 backfilled")
    assert emails(stack, T2) == expected
    # once more: nothing new
    out = replay(stack, "--from-beginning")
    assert "0 badges awarded, 0 revoked" in out, out
    assert emails(stack, T2) == expected and emails(stack, T1) == expected


def test_replay_since_selects_events_by_time(stack: Stack) -> None:
    cut = datetime.now(timezone.utc)
    stack.send([stack.event(COURSE_PASSING, 720, {"is_passing": True, "course.course_key": COURSE})])
    out = replay(stack, "--since", cut.isoformat())
    assert "handed over 1 " in out, out
    stack.wait_badges(lambda b: len([x for x in b if x["recipient_email"] == "learner720@example.com"]) == 2)


def test_replay_rejects_bad_arguments(stack: Stack) -> None:
    both = stack.cli("replay", "--from-beginning", "--since", "2024-01-01T00:00:00Z", check=False)
    assert both.returncode == 2 and "exactly one" in both.stderr
    bad_time = stack.cli("replay", "--since", "yesterday", check=False)
    assert bad_time.returncode == 2 and "ISO 8601" in bad_time.stderr


def _export_active(stack: Stack, uuid: str) -> bool:
    exported = yaml.safe_load(stack.cli("config", "export").stdout)
    return any(t["uuid"] == uuid and t["active"] for t in exported["templates"])
