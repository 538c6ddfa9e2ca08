"""A learner's progress explained, and the badges with their Credly records.

Both read this worker's ``progress`` and ``issuance`` tables: co-partitioned by learner, so the
worker that owns a learner holds both records (``cluster`` routes requests there).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson

from badges.domain.explain import explain
from badges.domain.forget import is_forgotten
from badges.tables.definitions import ISSUANCE, PROGRESS
from badges.web.cluster import local_partitions, self_url
from badges.web.http import HttpError
from badges.wire.envelope import learner_key, learner_partition

if TYPE_CHECKING:
    from badges.workers.app import Runtime

# what a page may show of an issuance record (the sink's working fields stay out)
ISSUANCE_FIELDS = (
    "status", "desired", "credly_id", "credly_state", "attempts", "last_error", "error_type",
    "updated", "issued_at", "completed_at", "decided_by", "decided_by_type", "revoked_by",
    "reconciled", "in_flight", "outcome_unknown", "badge_uuid", "organization",
)
FAILED_STATUSES = ("failed", "revoke_failed")


def _load(runtime: "Runtime", table: str, key: bytes) -> Any:
    raw = runtime.tables[table].data.get(key)
    return orjson.loads(raw) if raw is not None else None


def issuance_view(rec: dict[str, Any] | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    view = {k: rec.get(k) for k in ISSUANCE_FIELDS}
    view["status"] = rec.get("status") or ("in_flight" if rec.get("in_flight") else "pending")
    view["failed"] = view["status"] in FAILED_STATUSES
    return view


def learner_detail(runtime: "Runtime", learner_id: int) -> dict[str, Any]:
    key = learner_key(learner_id)
    state = _load(runtime, PROGRESS, key)
    issuance = _load(runtime, ISSUANCE, key) or {}
    if state is None and not issuance:
        raise HttpError(404, f"no progress recorded for learner {learner_id}")
    config = runtime.config.compiled()
    templates = explain(state, config, include_untouched=True)
    # badges decided first, then templates with progress, then the untouched ones; by name
    templates.sort(key=lambda t: (0 if t.get("badge") else 1 if any(g["fulfilled"] for g in t["groups"]) else 2,
                                  (t["name"] or t["template"]).lower()))
    seen = set()
    for tpl in templates:
        seen.add(tpl["template"])
        tpl["issuance"] = issuance_view(issuance.get(tpl["template"]))
        for group in tpl["groups"]:
            group["label"] = group["name"] or (group["requirements"][0]["id"] if group["requirements"] else "")
    identity = (state or {}).get("learner") or {}
    summary = Counter()
    for tpl in templates:
        badge = tpl.get("badge") or {}
        summary[badge.get("status") or ("complete" if tpl["complete"] else "in_progress")] += 1
    return {
        "learner": {"id": learner_id, "username": identity.get("username", ""),
                    "email": identity.get("email", ""), "name": identity.get("name", ""),
                    "forgotten": is_forgotten(state)},
        "partition": learner_partition(learner_id, runtime.settings.partitions),
        "served_by": self_url(runtime),
        "templates": templates,
        "summary": dict(summary),
        # issuance records of templates no longer configured
        "other_issuance": {t: issuance_view(r) for t, r in issuance.items() if t not in seen},
    }


def _badge_row(learner_id: int, template: str, rec: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    learner = rec.get("learner") or {}
    return {
        "learner": {"id": learner_id, "username": learner.get("username", ""), "email": learner.get("email", "")},
        "template": {"uuid": template, "name": names.get(template, "")},
        **(issuance_view(rec) or {}),
    }


def _sort(rows: list[dict[str, Any]]) -> None:
    """Failed first, then the most recently updated (two stable sorts)."""
    rows.sort(key=lambda r: (r.get("updated") or "", -r["learner"]["id"]), reverse=True)
    rows.sort(key=lambda r: not r["failed"])


def local_badges(runtime: "Runtime", status: str | None, limit: int) -> dict[str, Any]:
    """The issuance records of the partitions this worker owns (one page of them)."""
    owned = local_partitions(runtime)
    partitions = runtime.settings.partitions
    names = {uuid: t.name for uuid, t in runtime.config.compiled().templates.items()}
    counts: Counter[str] = Counter()
    rows = []
    for key, raw in list(runtime.tables[ISSUANCE].data.items()):
        try:
            learner_id = int(key)
        except ValueError:
            continue
        if learner_partition(learner_id, partitions) not in owned:
            continue  # a stale local copy of a partition that moved to another worker
        for template, rec in orjson.loads(raw).items():
            row = _badge_row(learner_id, template, rec, names)
            counts[row["status"]] += 1
            if status is None or row["status"] == status:
                rows.append(row)
    _sort(rows)
    return {"partitions": sorted(owned), "counts": dict(counts), "matching": len(rows), "badges": rows[:limit]}


def merge_badges(answers: list[dict[str, Any]], partitions: int, limit: int) -> dict[str, Any]:
    """The workers' pages merged into one: counts summed, rows re-sorted, gaps named."""
    counts: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    covered: set[int] = set()
    matching = 0
    workers = []
    for answer in answers:
        data = answer.get("data") or {}
        if answer["ok"]:
            counts.update(data.get("counts", {}))
            matching += data.get("matching", 0)
            covered.update(data.get("partitions", []))
            for row in data.get("badges", []):
                rows.append({**row, "worker": answer["url"]})
        workers.append({k: answer[k] for k in ("url", "self", "ok", "error")}
                       | {"partitions": data.get("partitions", answer["partitions"])})
    _sort(rows)
    missing = sorted(set(range(partitions)) - covered)
    return {"counts": dict(counts), "matching": matching, "shown": min(limit, len(rows)),
            "badges": rows[:limit], "workers": workers, "missing_partitions": missing,
            "complete": not missing}
