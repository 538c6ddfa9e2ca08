"""Forgetting a learner (SPEC §9) on a real worker: through the admin API and the CLI, the
latest records of the progress and issuance changelogs (what compaction keeps) hold no name,
username or e-mail, and the badge is still never issued twice."""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

import httpx
import orjson
import pytest

from tests.support.cluster import VIEWER_AUTH, VIEWER_TOKEN, WorkerProcess, wait_until
from tests.support.configs import config_yaml, demo_template
from tests.support.openedx import COURSE_PASSING, DEMO_COURSE
from tests.support.stack import Stack, make_stack

DEMO_T = "7d4f6a52-0000-4000-8000-0000000000aa"
ADMIN = "adm-forget-1d9e7c3b5a"
CONFIG = config_yaml(demo_template(DEMO_T, DEMO_COURSE))
# (learner id, e-mail, username, name); the first is forgotten over HTTP, the second by the CLI
ADA = (301, "ada.forget@example.org", "ada-forget", "Ada Augusta Lovelace")
ALAN = (302, "alan.forget@example.org", "alan-forget", "Alan Mathison Turing")
KEPT = (303, "kept@example.org", "kept-learner", "Kept Learner")


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("forget"), [(DEMO_T, "Demo")], "forget")
    s.configure(CONFIG)
    s.start_worker(BADGES_ADMIN_TOKEN=ADMIN, BADGES_LOG_FORMAT="json")
    yield s
    s.stop()
    s.emulator.stop_thread()


def _passing(stack: Stack, who: tuple[int, str, str, str], **kw: Any) -> Any:
    lid, email, username, name = who
    return stack.event(COURSE_PASSING, lid, {"is_passing": True, "course.course_key": DEMO_COURSE},
                       email=email, username=username, name=name, **kw)


def _learner(worker: WorkerProcess, lid: int) -> dict[str, Any]:
    r = httpx.get(f"{worker.url}/api/learners/{lid}", headers=VIEWER_AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _latest(stack: Stack, table: str, keys: set[bytes]) -> dict[bytes, bytes]:
    """The last record per key of a changelog, read to its end: what compaction keeps."""
    latest: dict[bytes, bytes] = {}
    for m in stack.read(stack.settings.changelog_topic(table), min_count=1):
        if m.key() in keys:
            latest[m.key()] = m.value()
    return latest


def test_forget_removes_the_identity_from_the_changelogs(stack: Stack) -> None:
    worker = stack.workers[0]
    events = [_passing(stack, who) for who in (ADA, ALAN, KEPT)]
    stack.send(events)
    stack.wait_badges(lambda b: len({x["recipient_email"] for x in b} & {ADA[1], ALAN[1], KEPT[1]}) == 3)
    for who in (ADA, ALAN):
        wait_until(lambda: (_learner(worker, who[0])["templates"][0].get("issuance") or {}).get("status") == "issued",
                   what=f"learner {who[0]}'s issuance record")

    # the admin API refuses the viewer token, then takes the admin one
    url = f"{worker.url}/api/learners/{ADA[0]}/forget"
    assert httpx.post(url, timeout=10).status_code == 401
    assert httpx.post(url, headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}, timeout=10).status_code == 403
    answer = httpx.post(url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert answer.status_code == 202 and answer.json()["learner"] == ADA[0]
    # the retirement pipeline knows the username
    out = stack.cli("learner", "forget", "--username", ALAN[2]).stdout
    assert f"learner {ALAN[0]}" in out

    for who in (ADA, ALAN):
        data = wait_until(lambda: (d := _learner(worker, who[0]))["learner"]["forgotten"] and d, what="forgotten")
        assert data["learner"] == {"id": who[0], "username": "", "email": "", "name": "", "forgotten": True}
        assert data["templates"][0]["issuance"]["status"] == "issued"

    keys = {str(who[0]).encode() for who in (ADA, ALAN, KEPT)}

    def scrubbed() -> dict[str, dict[bytes, bytes]] | None:
        tables = {t: _latest(stack, t, keys) for t in ("progress", "issuance")}
        done = all(b'"forgotten' in tables[t].get(str(who[0]).encode(), b"") for t in tables for who in (ADA, ALAN))
        return tables if done else None

    tables = wait_until(scrubbed, timeout=30, interval=0.5, what="scrubbed records in both changelogs")
    for table, latest in tables.items():
        for who in (ADA, ALAN):
            value = latest[str(who[0]).encode()]
            for pii in who[1:]:
                assert pii.encode() not in value, (table, who[0], pii)
        assert KEPT[1].encode() in latest[str(KEPT[0]).encode()], f"{table}: other learners keep theirs"
    progress = orjson.loads(tables["progress"][str(ADA[0]).encode()])
    assert progress["templates"][DEMO_T]["badge"]["status"] == "awarded"
    issuance = orjson.loads(tables["issuance"][str(ADA[0]).encode()])
    assert issuance[DEMO_T]["status"] == "issued" and issuance[DEMO_T]["credly_id"]

    # the same completing event again (a replay): no second badge, no identity back
    skipped = _duplicates_skipped(worker)
    stack.send([events[0]])
    wait_until(lambda: _duplicates_skipped(worker) > skipped, what="the replayed award skipped by the sink")
    assert len([b for b in stack.credly_badges() if b["recipient_email"] == ADA[1]]) == 1
    assert _learner(worker, ADA[0])["learner"]["email"] == ""
    latest = _latest(stack, "progress", {str(ADA[0]).encode()})[str(ADA[0]).encode()]
    assert ADA[1].encode() not in latest


def _duplicates_skipped(worker: WorkerProcess) -> float:
    text = httpx.get(f"{worker.url}/metrics", timeout=10).text
    match = re.search(r'^badges_awards_total\{outcome="duplicate_skipped"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_forget_input_is_checked(stack: Stack) -> None:
    worker = stack.workers[0]
    auth = {"Authorization": f"Bearer {ADMIN}"}
    assert httpx.post(f"{worker.url}/api/learners/007/forget", headers=auth, timeout=10).status_code == 400
    both = stack.cli("learner", "forget", "--id", "1", "--username", "x", check=False)
    assert both.returncode == 2
    nobody = stack.cli("learner", "forget", "--username", "nobody-here").stdout
    assert "nothing to forget" in nobody


def test_json_log_lines_name_the_learner_template_and_event(stack: Stack) -> None:
    lines = [line for line in stack.workers[0].log_path.read_text().splitlines() if line.strip()]
    docs = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= d.keys() for d in docs)
    forgot = [d for d in docs if d.get("learner_id") == ADA[0] and "forgot" in d["message"]]
    assert {d["logger"] for d in forgot} == {"badges.agents.progress", "badges.agents.sink"}
    # The routine per-badge outcome line ("award: issued", with template and event_id) is at
    # debug since issue 20b, and debug lines of the libraries carry message contents: the
    # fields of a block of work are checked in tests/unit/test_logs.py.
    assert not any(pii in line for line in lines for pii in ADA[1:]), "no PII in the log"
