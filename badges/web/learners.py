"""A learner's progress explained, and the badges with their Credly records.

Both read this worker's ``progress`` and ``issuance`` tables: co-partitioned by learner, so the
worker that owns a learner holds both records (``cluster`` routes requests there).
"""

from __future__ import annotations

import time

from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson

from badges.domain.explain import explain
from badges.domain.forget import is_forgotten
from badges.web.badge_index import FAILED_STATUSES, SortKey, decode_cursor, encode_cursor, record_status
from badges.web.cluster import self_url
from badges.web.http import HttpError
from badges.wire.envelope import learner_key, learner_partition

if TYPE_CHECKING:
    import faust

    from badges.runtime import Runtime

# what a page may show of an issuance record (the sink's working fields stay out)
ISSUANCE_FIELDS = (
    "status", "desired", "credly_id", "credly_state", "attempts", "last_error", "error_type",
    "updated", "issued_at", "completed_at", "decided_by", "decided_by_type", "revoked_by",
    "reconciled", "in_flight", "outcome_unknown", "badge_uuid", "organization",
    "expires_at", "cause", "reason",
)


def _load(table: faust.Table, key: bytes) -> Any:
    raw = table.data.get(key)
    return orjson.loads(raw) if raw is not None else None


def issuance_view(rec: dict[str, Any] | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    view = {k: rec.get(k) for k in ISSUANCE_FIELDS}
    view["status"] = record_status(rec)
    view["failed"] = view["status"] in FAILED_STATUSES
    return view


def learner_detail(runtime: "Runtime", learner_id: int) -> dict[str, Any]:
    key = learner_key(learner_id)
    state = _load(runtime.tables.progress, key)
    issuance = _load(runtime.tables.issuance, key) or {}
    if state is None and not issuance:
        raise HttpError(404, f"no progress recorded for learner {learner_id}")
    config = runtime.config.compiled()
    templates = explain(state, config, include_untouched=True, now_us=time.time_ns() // 1000)
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
    summary: Counter[str] = Counter()
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


def _names(runtime: "Runtime") -> dict[str, str]:
    return {uuid: t.name for uuid, t in runtime.config.compiled().templates.items()}


def local_badges(runtime: "Runtime", status: str | None, after: SortKey | None, limit: int) -> dict[str, Any]:
    """One page of the badges of the partitions this worker owns, from its index."""
    indexer = runtime.badge_index
    if not indexer.ready:
        raise HttpError(503, "this worker's badge index is being built; retry shortly")
    index = indexer.index
    keys, matching = index.page(status, after, limit)
    names = _names(runtime)
    rows = []
    for key, learner_id, template, rec in indexer.rows_of(keys):
        rows.append({**_badge_row(learner_id, template, rec, names), "cursor": encode_cursor(key)})
    return {"partitions": sorted(index.partitions), "counts": index.counts(), "matching": matching,
            "badges": rows, "more": matching > 0 and len(keys) == limit}


def merge_badges(answers: list[dict[str, Any]], partitions: int, limit: int) -> dict[str, Any]:
    """The workers' pages merged into one: counts summed, rows in index order, gaps named;
    ``next`` is the cursor of the page after this one (None on the last page)."""
    counts: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    covered: set[int] = set()
    matching = 0
    more = False
    workers = []
    for answer in answers:
        data = answer.get("data") or {}
        if answer["ok"]:
            counts.update(data.get("counts", {}))
            matching += data.get("matching", 0)
            covered.update(data.get("partitions", []))
            more = more or bool(data.get("more"))
            for row in data.get("badges", []):
                rows.append({**row, "worker": answer["url"]})
        workers.append({k: answer[k] for k in ("url", "self", "ok", "error")}
                       | {"partitions": data.get("partitions", answer["partitions"])})
    rows.sort(key=lambda r: decode_cursor(r["cursor"]))
    shown = rows[:limit]
    more = more or len(rows) > limit
    missing = sorted(set(range(partitions)) - covered)
    return {"counts": dict(counts), "matching": matching, "shown": len(shown), "badges": shown,
            "next": shown[-1]["cursor"] if more and shown else None,
            "workers": workers, "missing_partitions": missing, "complete": not missing}
