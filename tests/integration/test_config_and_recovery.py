"""Configuration through the CLI reaches running workers; progress survives kill -9."""

from __future__ import annotations

from typing import Iterator

import orjson
import pytest
import yaml

from tests.support.cluster import wait_until
from tests.support.configs import config_yaml, passing, requirement, template
from tests.support.openedx import COURSE_PASSING
from tests.support.stack import Stack, make_stack

T_AND = "7d4f6a52-0000-4000-8000-0000000000c1"  # two groups: A (course 1) AND B (course 2)
T_LIVE = "7d4f6a52-0000-4000-8000-0000000000c2"  # activated and deactivated while running
C1, C2, C3 = ("course-v1:Org+C1+2024", "course-v1:Org+C2+2024", "course-v1:Org+C3+2024")


CONFIG = config_yaml(
    template(T_AND, [requirement("c1", passing(C1), group="A"), requirement("c2", passing(C2), group="B")]),
    template(T_LIVE, [requirement("c3", passing(C3))], active=False),
)

BAD_CONFIG = """\
organizations:
  - uuid: 0b8a3f0e-0000-4000-8000-000000000001
    api_key_env: CREDLY_TOKEN_ACME
templates:
  - uuid: 7d4f6a52-0000-4000-8000-0000000000c1
    active: true
    requirements:
      - id: r1
        event_type: org.openedx.learning.course.passing.status.updated.v1
        rules:
          - {key_path: is_pasing, operator: "=", value: "true"}
          - {key_path: is_passing, operator: "=", value: "maybe"}
      - id: r1
        event_type: org.openedx.learning.no.such.event.v1
    penalties:
      - id: p1
        event_type: org.openedx.learning.course.passing.status.updated.v1
        requirements: [nope]
"""


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("cfg"), [(T_AND, "Both"), (T_LIVE, "Live")], "cfg")
    # the worker starts before any configuration exists: everything below arrives live
    s.start_worker()
    s.configure(CONFIG)
    yield s
    s.stop()
    s.emulator.stop_thread()


def progress_of(stack: Stack, learner: int) -> dict | None:
    records = [m for m in stack.read(f"{stack.app_id}-progress-changelog") if m.key() == str(learner).encode()]
    return orjson.loads(records[-1].value()) if records else None


def test_validate_names_every_error_with_its_place(stack: Stack) -> None:
    path = stack.workdir / "bad.yaml"
    path.write_text(BAD_CONFIG)
    proc = stack.cli("config", "validate", str(path), check=False)
    assert proc.returncode != 0
    out = proc.stderr
    assert "templates[0].requirements[0].rules[0].key_path (line 11)" in out and "is_pasing" in out
    assert "course.course_key" in out  # the valid key paths are listed
    assert "templates[0].requirements[0].rules[1].value (line 12)" in out
    assert "templates[0].requirements[1].id" in out  # duplicate id
    assert "templates[0].requirements[1].event_type" in out and "no.such.event" in out
    assert "templates[0].penalties[0].requirements" in out and "nope" in out
    assert "CREDLY_TOKEN" not in out.replace("CREDLY_TOKEN_ACME", "")
    # apply refuses it and publishes nothing
    assert stack.cli("config", "apply", str(path), check=False).returncode != 0


def test_config_applied_through_the_cli_reaches_the_running_worker(stack: Stack) -> None:
    stack.send([stack.event(COURSE_PASSING, 501, {"is_passing": True, "course.course_key": C1}, email="e501@example.com")])
    wait_until(lambda: progress_of(stack, 501), what="progress of learner 501")
    assert "c1" in progress_of(stack, 501)["templates"][T_AND]["fulfilled"]  # type: ignore[index]  # not None after the wait
    exported = yaml.safe_load(stack.cli("config", "export").stdout)
    assert {t["uuid"]: t["active"] for t in exported["templates"]} == {T_AND: True, T_LIVE: False}


def test_inactive_template_records_nothing_and_activation_works_at_once(stack: Stack) -> None:
    stack.send([stack.event(COURSE_PASSING, 502, {"is_passing": True, "course.course_key": C3}, email="e502@example.com")])
    # a sentinel on the active template shows the first event has been processed
    stack.send([stack.event(COURSE_PASSING, 502, {"is_passing": True, "course.course_key": C1}, email="e502@example.com")])
    wait_until(lambda: (p := progress_of(stack, 502)) and T_AND in p["templates"], what="sentinel progress")
    assert T_LIVE not in progress_of(stack, 502)["templates"]  # type: ignore[index]  # not None after the wait
    stack.cli("template", "activate", T_LIVE)
    # activation does not reprocess the old event (that is replay's job): a new one completes it

    def issued() -> bool:
        stack.send([stack.event(COURSE_PASSING, 503, {"is_passing": True, "course.course_key": C3}, email="e503@example.com")])
        return any(b["recipient_email"] == "e503@example.com" for b in stack.wait_badges(lambda b: True))

    wait_until(issued, timeout=30, interval=1.0, what="the activated template to issue")
    assert not [b for b in stack.credly_badges() if b["recipient_email"] == "e502@example.com" and b["badge_template"]["id"] == T_LIVE]
    assert len([b for b in stack.credly_badges() if b["recipient_email"] == "e503@example.com"]) == 1
    stack.cli("template", "deactivate", T_LIVE)
    assert "active: false" in stack.cli("config", "export").stdout.split(T_LIVE, 1)[1].split("uuid:", 1)[0]


def test_progress_survives_kill_9_and_the_next_event_completes_exactly_once(stack: Stack) -> None:
    email = "e510@example.com"
    stack.send([stack.event(COURSE_PASSING, 510, {"is_passing": True, "course.course_key": C1}, email=email)])
    wait_until(lambda: (p := progress_of(stack, 510)) and "c1" in p["templates"][T_AND]["fulfilled"], what="c1 of 510")
    [worker] = stack.workers
    worker.kill9()
    stack.workers.clear()
    stack.start_worker("restarted")
    stack.send([stack.event(COURSE_PASSING, 510, {"is_passing": True, "course.course_key": C2}, email=email)])
    badges = stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b))
    assert len([b for b in badges if b["recipient_email"] == email]) == 1
    # and it stays one: a later duplicate of the completing event changes nothing
    posts_before = len([r for r in stack.credly_requests() if r["method"] == "POST"])
    sentinel = "e511@example.com"
    stack.send([stack.event(COURSE_PASSING, 511, {"is_passing": True, "course.course_key": C1}, email=sentinel),
                stack.event(COURSE_PASSING, 511, {"is_passing": True, "course.course_key": C2}, email=sentinel)])
    stack.wait_badges(lambda b: any(x["recipient_email"] == sentinel for x in b))
    assert len([b for b in stack.credly_badges() if b["recipient_email"] == email]) == 1
    assert len([r for r in stack.credly_requests() if r["method"] == "POST"]) == posts_before + 1
