"""Open edX events in, Credly badges out, on the real broker with a real worker process."""

from __future__ import annotations

from typing import Iterator

import orjson
import pytest

from badges.wire.decode import KafkaDecoder
from badges.schemas.catalog import load_catalog
from tests.support.configs import config_yaml, demo_template, passing, requirement, rule, template
from tests.support.openedx import COURSE_PASSING, DEMO_COURSE
from tests.support.stack import Stack, make_stack

DEMO_T = "7d4f6a52-0000-4000-8000-0000000000aa"
OTHER_T = "7d4f6a52-0000-4000-8000-0000000000bb"
OTHER_COURSE = "course-v1:OpenedX+Other+2024"
CERT_CREATED = "org.openedx.learning.certificate.created.v1"

CONFIG = config_yaml(
    demo_template(DEMO_T, DEMO_COURSE),
    template(OTHER_T, [
        requirement("passed", passing(OTHER_COURSE), group="A"),
        requirement("certificate", [rule("course.course_key", OTHER_COURSE)], event_type=CERT_CREATED, group="B"),
    ]),
)


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("e2e"), [(DEMO_T, "Demo"), (OTHER_T, "Other")], "e2e")
    s.configure(CONFIG)
    s.start_worker()
    yield s
    s.stop()
    s.emulator.stop_thread()


def test_completing_event_issues_one_badge_with_learner_fields(stack: Stack) -> None:
    passing = stack.event(COURSE_PASSING, 101, {"is_passing": True, "course.course_key": DEMO_COURSE},
                          name="Ada Lovelace", email="ada@example.com", username="ada")
    stack.send([passing])
    badges = stack.wait_badges(lambda b: any(x["recipient_email"] == "ada@example.com" for x in b))
    mine = [b for b in badges if b["recipient_email"] == "ada@example.com"]
    assert len(mine) == 1
    badge = mine[0]
    assert badge["badge_template"]["id"] == DEMO_T
    assert (badge["issued_to_first_name"], badge["issued_to_last_name"]) == ("Ada", "Lovelace")
    # issued_at is the completing event's ce_time
    ce_time = dict(passing.headers)["ce_time"].decode()
    from datetime import datetime

    assert badge["issued_at"] == datetime.fromisoformat(ce_time).strftime("%Y-%m-%d %H:%M:%S %z")
    posts = [r for r in stack.credly_requests() if r["method"] == "POST" and r["path"].endswith("/badges")]
    assert len([p for p in posts if (p.get("body") or {}).get("recipient_email") == "ada@example.com"]) == 1


def test_no_award_before_completion_and_username_fallback(stack: Stack) -> None:
    # group A fulfilled, group B not yet: nothing may be issued
    stack.send([stack.event(COURSE_PASSING, 102, {"is_passing": True, "course.course_key": OTHER_COURSE},
                            name="", email="bob@example.com", username="bobby")])
    sentinel = stack.event(COURSE_PASSING, 103, {"is_passing": True, "course.course_key": DEMO_COURSE},
                           email="sentinel@example.com")
    stack.send([sentinel])
    stack.wait_badges(lambda b: any(x["recipient_email"] == "sentinel@example.com" for x in b))
    assert not [b for b in stack.credly_badges() if b["recipient_email"] == "bob@example.com"]
    # group B completes the template: the badge now, with the username for both names
    stack.send([stack.event(CERT_CREATED, 102, {"course.course_key": OTHER_COURSE},
                            name="", email="bob@example.com", username="bobby")])
    badges = stack.wait_badges(lambda b: any(x["recipient_email"] == "bob@example.com" for x in b))
    bob = [b for b in badges if b["recipient_email"] == "bob@example.com"]
    assert len(bob) == 1 and bob[0]["badge_template"]["id"] == OTHER_T
    assert (bob[0]["issued_to_first_name"], bob[0]["issued_to_last_name"]) == ("bobby", "bobby")


def test_penalty_revokes_once_and_lifecycle_events_are_published(stack: Stack) -> None:
    email = "carol@example.com"
    stack.send([stack.event(COURSE_PASSING, 104, {"is_passing": True, "course.course_key": DEMO_COURSE}, email=email)])
    stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b))
    stack.send([stack.event(COURSE_PASSING, 104, {"is_passing": False, "course.course_key": DEMO_COURSE}, email=email)])
    badges = stack.wait_badges(lambda b: any(x["recipient_email"] == email and x["state"] == "revoked" for x in b))
    assert len([b for b in badges if b["recipient_email"] == email]) == 1
    revokes = [r for r in stack.credly_requests() if r["method"] == "PUT" and r["path"].endswith("/revoke")]
    badge_id = next(b["id"] for b in badges if b["recipient_email"] == email)
    assert len([r for r in revokes if badge_id in r["path"]]) == 1
    # a passing event after the penalty does not award again (revoked is final for processing)
    stack.send([stack.event(COURSE_PASSING, 104, {"is_passing": True, "course.course_key": DEMO_COURSE}, email=email)])
    sentinel_email = "sentinel2@example.com"
    stack.send([stack.event(COURSE_PASSING, 105, {"is_passing": True, "course.course_key": DEMO_COURSE}, email=sentinel_email)])
    stack.wait_badges(lambda b: any(x["recipient_email"] == sentinel_email for x in b))
    assert len([b for b in stack.credly_badges() if b["recipient_email"] == email]) == 1

    # BADGE_AWARDED and BADGE_REVOKED for learner 104 on the lifecycle topic, in the bus format
    decoder = KafkaDecoder(load_catalog(), skip_own_output=False)
    messages = stack.read(stack.settings.lifecycle_topic, min_count=3)
    seen = []
    for m in messages:
        headers = dict(m.headers() or [])
        if headers.get("ce_type", b"").startswith(b"org.openedx.learning.badge."):
            ev = decoder.decode(m.headers(), m.value(), "lifecycle", None)
            if ev.learner.id == 104:
                seen.append((ev.event_type, ev.payload["template"]["uuid"], ev.payload["template"]["origin"]))
    assert ("org.openedx.learning.badge.awarded.v1", DEMO_T, "credly") in seen
    assert ("org.openedx.learning.badge.revoked.v1", DEMO_T, "credly") in seen


def test_progress_is_visible_in_the_table_changelog(stack: Stack) -> None:
    stack.send([stack.event(COURSE_PASSING, 106, {"is_passing": True, "course.course_key": OTHER_COURSE})])
    changelog = f"{stack.app_id}-progress-changelog"

    def learner_106() -> list[dict]:
        return [orjson.loads(m.value()) for m in stack.read(changelog) if m.key() == b"106"]

    from tests.support.cluster import wait_until

    states = wait_until(learner_106, what="learner 106 in the progress changelog")
    assert "passed" in states[-1]["templates"][OTHER_T]["fulfilled"]


def test_sigterm_stops_the_worker_cleanly(stack: Stack) -> None:
    """Last of the module: after Credly calls and lifecycle events, SIGTERM ends the worker with
    exit 0 and nothing alarming in its log."""
    worker = stack.workers[0]
    assert worker.stop() == 0
    log = worker.log_path.read_text()
    assert "Unclosed client session" not in log
    assert "Traceback" not in log
