"""The benchmark harness end to end, CI-sized (`python -m bench --smoke`).

It runs every phase on its own embedded broker, with real `badges worker` processes and real
Open edX messages, and checks what must hold whatever the timings: every event applied, exactly
one Credly badge per completed (learner, template) in its expected state, one successful issue
call each, nothing dead-lettered. Timings are recorded by the harness and never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench-smoke")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out), "--cache-dir", str(out / "cache"),
         "--results", "-"],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, f"bench --smoke exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return json.loads((out / "results.json").read_text())


def _backlog_runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [results["one"], results["two"], *results["flat"]]


def test_the_load_exercises_badges_and_revocations(results: dict[str, Any]) -> None:
    load = results["load"]
    assert load["messages"] > load["applied"] > 0  # some event types no rule uses, dropped at ingest
    assert load["badges"] > 0 and load["revoked"] > 0


def test_every_event_is_applied_once_by_one_worker(results: dict[str, Any]) -> None:
    one = results["one"]
    assert one["applied"] == one["wanted"] == results["load"]["applied"]
    for run in results["flat"]:
        assert run["applied"] == run["wanted"], run["label"]


def test_two_workers_apply_every_event(results: dict[str, Any]) -> None:
    two = results["two"]
    # a rebalance may re-deliver an envelope (applied idempotently), never lose one
    assert two["applied"] >= two["wanted"] >= results["load"]["applied"]


def test_exactly_one_badge_per_completion_and_nothing_dead_lettered(results: dict[str, Any]) -> None:
    for run in _backlog_runs(results):
        assert run["problems"] == [], run["label"]
        assert run["badges"] == run["badges_expected"] > 0, run["label"]
        assert run["issue_calls"] == run["badges_expected"], run["label"]
        assert run["dead_letters"] == 0, run["label"]
        assert run["ok"], run["label"]


def test_recovery_brings_progress_back(results: dict[str, Any]) -> None:
    recovery = results["recovery"]
    assert recovery["progress_keys"] > 0
    assert recovery["ok"], recovery["proof"]


def test_latency_runs_issue_every_expected_badge(results: dict[str, Any]) -> None:
    latency = results["latency"]
    assert latency["check"]["ok"], latency["check"]["problems"]
    for step in latency["check"]["steps"]:
        assert step["badges"] == step["badges_expected"] == step["issue_calls"]
        assert step["dead_letters"] == 0
    assert all(row["badges"] > 0 for row in latency["rows"])


def test_the_badge_dense_load_issues_every_badge_exactly_once(results: dict[str, Any]) -> None:
    dense, load = results["dense"], results["dense_load"]
    assert load["badges"] * 15 > load["messages"]  # about one badge per 10 events
    assert dense["applied"] == dense["wanted"] == load["applied"]
    assert dense["problems"] == [] and dense["ok"]
    assert dense["badges"] == dense["badges_expected"] == dense["issue_calls"] == load["badges"]
    latency = results["dense_latency"]
    assert latency["check"]["ok"], latency["check"]["problems"]
    for row in latency["rows"]:  # the stages the worker measures, in order along the path
        stages = row["stages_ms"]
        assert set(stages) == {"ingested", "progress", "decision_taken", "credly_call"}
        assert row["badges"] > 0


def test_baselines_read_the_same_topic(results: dict[str, Any]) -> None:
    load = results["load"]
    assert results["raw"]["messages"] == load["messages"]
    assert 0 < results["faust"]["messages"] <= load["messages"]
    assert {row["event_type"] for row in results["decode"]["rows"]}
