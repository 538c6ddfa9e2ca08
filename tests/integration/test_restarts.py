"""A worker restarted with the same app id and data dir resumes everything (SPEC §9 "Restarts").

Each store a user can choose (``rocksdb``, the production default, and ``memory``), with
static and dynamic group membership, each kind of restart (SIGTERM, then start again; SIGKILL, then start again), the same local data dir:
the configuration, every learner's progress and the issuance records come back, events sent
while the worker was down are processed against the full configuration (none skipped as
"no active rule"), and a learner half-way through a template completes after the restart with
exactly one badge. A configuration changed while the worker is down, or killed while it
arrives, is what the restarted worker runs.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import httpx
import pytest

from tests.support.cluster import WorkerProcess, wait_until
from tests.support.configs import config_yaml, passing, requirement, template
from tests.support.openedx import COURSE_PASSING
from tests.support.stack import Stack, make_stack

T_AND = "7d4f6a52-0000-4000-8000-0000000000d1"  # course 1 AND course 2
T_LATE = "7d4f6a52-0000-4000-8000-0000000000d2"  # activated while the worker is down
C1, C2, C3 = ("course-v1:Org+R1+2024", "course-v1:Org+R2+2024", "course-v1:Org+R3+2024")
ADMIN = "restart-admin-token-0123456789"

BEFORE = config_yaml(
    template(T_AND, [requirement("c1", passing(C1), group="A"), requirement("c2", passing(C2), group="B")]),
    template(T_LATE, [requirement("c3", passing(C3))], active=False),
)
AFTER = config_yaml(
    template(T_AND, [requirement("c1", passing(C1), group="A"), requirement("c2", passing(C2), group="B")]),
    template(T_LATE, [requirement("c3", passing(C3))], active=True),
)


@pytest.fixture(scope="module", params=["rocksdb", "memory"])
def stack(request, broker, tmp_path_factory) -> Iterator[Stack]:
    store = request.param
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp(f"restart-{store}"),
                   [(T_AND, "Both"), (T_LATE, "Late")], f"restart-{store}")
    s.store = store  # type: ignore[attr-defined]  # the fixture's store, kept on the stack
    s.configure(BEFORE)
    yield s
    s.stop()
    s.emulator.stop_thread()


def start(stack: Stack) -> WorkerProcess:
    """The one worker of the test, always under the same name: the same local data dir."""
    for running in stack.workers:
        running.stop()
    stack.workers.clear()
    return _start(stack)


def running(stack: Stack) -> WorkerProcess:
    """The module's worker as the previous test left it when it still runs and is ready (a test
    begins with a worker, not with a restart: the restarts under test come after), else a new one.
    Saves a stop and a start per test (~15 s with rocksdb and static membership)."""
    if len(stack.workers) == 1:
        [worker] = stack.workers
        try:
            if worker.proc is not None and worker.proc.poll() is None and worker.health().get("ready"):
                return worker
        except httpx.HTTPError:
            pass
    return start(stack)


def _start(stack: Stack) -> WorkerProcess:
    store = stack.store  # type: ignore[attr-defined]  # set by the fixture
    # rocksdb workers run with static group membership (as a StatefulSet would), memory ones without
    membership = {"BADGES_GROUP_INSTANCE_ID": f"{stack.app_id}-w"} if store == "rocksdb" else {}
    return stack.start_worker("w", BADGES_STORE=store, BADGES_ADMIN_TOKEN=ADMIN, **membership)  # type: ignore[arg-type]  # the variables never name name or wait


def api(worker: WorkerProcess, path: str) -> Any:
    response = httpx.get(f"{worker.url}{path}", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5)
    response.raise_for_status()
    return response.json()


def skipped_no_rule(worker: WorkerProcess) -> float:
    text = httpx.get(f"{worker.url}/metrics", timeout=5).text
    found = re.search(r'^badges_events_skipped_total\{reason="no_active_rule"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def passed(stack: Stack, learner: int, course: str) -> Any:
    return stack.event(COURSE_PASSING, learner, {"is_passing": True, "course.course_key": course},
                       email=f"r{learner}@example.com")


def badges_of(stack: Stack, learner: int) -> list[dict[str, Any]]:
    return [b for b in stack.credly_badges() if b["recipient_email"] == f"r{learner}@example.com"]


def fulfilled(worker: WorkerProcess, learner: int, template_uuid: str) -> set[str]:
    detail = api(worker, f"/api/learners/{learner}")
    [tpl] = [t for t in detail["templates"] if t["template"] == template_uuid]
    return {r["id"] for g in tpl["groups"] for r in g["requirements"] if r.get("fulfilled")}


def restart(stack: Stack, worker: WorkerProcess, kind: str) -> WorkerProcess:
    if kind == "graceful":
        assert worker.stop() == 0
    else:
        worker.kill9()
    return start(stack)


@pytest.mark.parametrize("kind", ["graceful", "sigkill"])
def test_a_restarted_worker_resumes_configuration_progress_and_badges(stack: Stack, kind: str) -> None:
    base = 700 if kind == "graceful" else 800
    done, half, late = base + 1, base + 2, base + 3
    worker = running(stack)
    stack.send([passed(stack, done, C1), passed(stack, done, C2), passed(stack, half, C1)])
    stack.wait_badges(lambda b: badges_of(stack, done), what=f"the badge of learner {done}")
    wait_until(lambda: "c1" in fulfilled(worker, half, T_AND), what=f"c1 of learner {half}")

    worker = restart(stack, worker, kind)
    health = worker.health()
    assert health["ready"] and health["config_generation"] > 0, health
    templates = {t["uuid"]: t["processing"] for t in api(worker, "/api/templates")["templates"]}
    assert templates == {T_AND: True, T_LATE: False}
    assert fulfilled(worker, half, T_AND) == {"c1"}  # progress came back
    detail = api(worker, f"/api/learners/{done}")  # and so did the issuance record
    assert [t["issuance"]["status"] for t in detail["templates"] if t["template"] == T_AND] == ["issued"]

    # the half-way learner completes after the restart; the completed one's duplicate is a no-op
    stack.send([passed(stack, half, C2), passed(stack, done, C2), passed(stack, late, C1)])
    stack.wait_badges(lambda b: badges_of(stack, half), what=f"the badge of learner {half}")
    wait_until(lambda: "c1" in fulfilled(worker, late, T_AND), what=f"c1 of learner {late}")
    assert len(badges_of(stack, half)) == 1 and len(badges_of(stack, done)) == 1
    assert skipped_no_rule(worker) == 0


def test_events_sent_while_the_worker_is_down_are_processed_with_the_full_configuration(stack: Stack) -> None:
    """The failure this issue was filed for: a restarted worker came back with an empty
    configuration and skipped (and committed) the events waiting for it."""
    learner = 901
    worker = running(stack)
    stack.send([passed(stack, learner, C1)])
    wait_until(lambda: "c1" in fulfilled(worker, learner, T_AND), what="c1 before the kill")
    worker.kill9()
    stack.send([passed(stack, learner, C2)])  # completes the template while nobody runs
    worker = start(stack)
    stack.wait_badges(lambda b: badges_of(stack, learner), what="the badge earned while the worker was down")
    assert len(badges_of(stack, learner)) == 1
    assert skipped_no_rule(worker) == 0


@pytest.mark.parametrize("moment", ["while_down", "as_it_arrives"])
def test_a_configuration_changed_around_a_restart_is_the_one_the_worker_runs(stack: Stack, moment: str) -> None:
    learner = 950 if moment == "while_down" else 960
    stack.configure(BEFORE)
    worker = running(stack)
    wait_until(lambda: not {t["uuid"]: t["processing"] for t in api(worker, "/api/templates")["templates"]}[T_LATE],
               what="T_LATE inactive")
    if moment == "while_down":
        worker.kill9()
        stack.configure(AFTER)
    else:
        stack.configure(AFTER)
        worker.kill9()  # the change may or may not have reached the worker: either way
    worker = start(stack)
    assert {t["uuid"]: t["processing"] for t in api(worker, "/api/templates")["templates"]}[T_LATE]
    stack.send([passed(stack, learner, C3)])
    stack.wait_badges(lambda b: badges_of(stack, learner), what="a badge of the template activated around the restart")
    assert [b["badge_template"]["id"] for b in badges_of(stack, learner)] == [T_LATE]


def _changelog_writes(stack: Stack, table: str, learner: int) -> list[Any]:
    """The worker's own writes of a learner's record to a table's changelog, oldest first."""
    key = str(learner).encode()
    return [m for m in stack.read(f"{stack.app_id}-{table}-changelog") if m.key() == key]


@pytest.mark.parametrize("kind", ["graceful", "sigkill"])
def test_late_writes_of_an_evicted_worker_lose_the_recovery_to_the_owners_newer_records(
        stack: Stack, kind: str) -> None:
    """Issue 13: "a write with a lower version (an evicted worker) is ignored". A worker evicted
    from the group keeps producing until it notices (Kafka fences its commits, not its writes;
    tansu fences neither): its copies of a learner's records, older than the new owner's, land
    in the changelogs after them. Made by construction here: the worker's own earlier writes
    (real bytes, from the changelogs) sent again after its newer ones, then a restart, which
    recovers the tables from the changelogs. Without ``NewerWinsTable`` the learner goes back to
    half-way through the template with its badge's intent in flight."""
    learner = 1001 if kind == "graceful" else 1101
    worker = running(stack)
    stack.send([passed(stack, learner, C1)])
    wait_until(lambda: "c1" in fulfilled(worker, learner, T_AND), what=f"c1 of learner {learner}")
    stack.send([passed(stack, learner, C2)])
    stack.wait_badges(lambda b: badges_of(stack, learner), what=f"the badge of learner {learner}")
    issued = ["issued"]
    wait_until(lambda: [t["issuance"]["status"] for t in api(worker, f"/api/learners/{learner}")["templates"]
                        if t["template"] == T_AND] == issued, what="the issuance record of the badge")

    half_way = next(m for m in _changelog_writes(stack, "progress", learner) if b'"c2"' not in m.value())
    intent = next(m for m in _changelog_writes(stack, "issuance", learner) if b'"in_flight":true' in m.value())
    producer = stack.producer()
    for stale in (half_way, intent):  # the evicted worker's late copies, after the owner's writes
        producer.produce(stale.topic(), key=stale.key(), value=stale.value(), partition=stale.partition())
    assert producer.flush(30) == 0

    worker = restart(stack, worker, kind)
    assert fulfilled(worker, learner, T_AND) == {"c1", "c2"}
    [record] = [t["issuance"] for t in api(worker, f"/api/learners/{learner}")["templates"] if t["template"] == T_AND]
    assert record["status"] == "issued" and not record["in_flight"], record
    assert len(badges_of(stack, learner)) == 1
