"""The Grafana dashboard in the repository uses only metrics that a worker serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import badges.metrics  # noqa: F401 - registers every metric of the worker

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "badges-worker.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_info", "_created")


def _served() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def test_every_expression_names_served_metrics() -> None:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    assert exprs
    served = _served() | {n + s for n in _served() for s in SUFFIXES}
    used = {m for e in exprs for m in re.findall(r"\b(badges_[a-z_]+)", e)}
    assert used and used <= served, used - served
    # what the issue asks the dashboard to show
    assert {"badges_ingest_lag", "badges_badges", "badges_build_info"} <= used
