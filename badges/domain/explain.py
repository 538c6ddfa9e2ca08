"""A learner's progress explained group by group, for the web view (HTML and JSON).

Plain dicts and lists only, so the same result renders in a template and serializes as JSON.
"""

from __future__ import annotations

from typing import Any

from badges.domain.engine import counted_time, held_badges
from badges.domain.model import CompiledConfig, CompiledRequirement, CompiledTemplate
from badges.domain.progress import LearnerState, TemplateProgress
from badges.wire.timeparse import us_to_iso


def _requirement_view(req: CompiledRequirement, progress: TemplateProgress | None,
                      held: dict[str, int], aged_before: int | None, now_us: int) -> dict[str, Any]:
    """``aged_before``: fulfillments whose newest event is older no longer count
    (complete_within); ``held``: the badge requirements fulfilled now (badge of badges)."""
    fulfilled = progress["fulfilled"] if progress else {}
    resets = progress["resets"] if progress else {}
    rec = fulfilled.get(req.id)
    aged_out = (rec is not None and aged_before is not None
                and counted_time(rec, now_us) < aged_before)
    return {
        "id": req.id,
        "description": req.description,
        "event_type": req.event_type,
        "badge": req.badge,
        "not_before": us_to_iso(req.not_before_us) if req.not_before_us is not None else None,
        "not_after": us_to_iso(req.not_after_us) if req.not_after_us is not None else None,
        "rules": [r.describe() for r in req.rules],
        "fulfilled": (req.id in held) if req.badge else (rec is not None and not aged_out),
        "aged_out": aged_out,
        "fulfilled_by": dict(rec) if rec is not None else None,
        "last_reset_us": resets.get(req.id),
    }


def explain_template(
    template: CompiledTemplate, progress: TemplateProgress | None,
    view: dict[str, TemplateProgress] | None = None, now_us: int | None = None,
) -> dict[str, Any]:
    """``view``: the learner's progress of every template (for badge requirements); ``now_us``:
    the time fulfillments age out against (complete_within); None: none ages out."""
    now = now_us if now_us is not None else 0
    held = held_badges(template, view or {}, now)
    aged_before = (now_us - template.complete_within_us
                   if now_us is not None and template.complete_within_us is not None else None)
    groups = []
    counted: set[str] = set(held)
    for group in template.groups:
        reqs = [r for r in template.requirements if r.group == group.key]
        views = [_requirement_view(r, progress, held, aged_before, now) for r in reqs]
        count = sum(1 for v in views if v["fulfilled"])
        counted.update(v["id"] for v in views if v["fulfilled"])
        groups.append(
            {
                "name": group.name,
                "min": group.min,
                "size": len(views),
                "count": count,
                "fulfilled": count >= group.min,
                "requirements": views,
            }
        )
    badge = progress.get("badge") if progress else None
    return {
        "template": template.uuid,
        "known": True,
        "name": template.name,
        "organization": template.organization,
        "active": template.active,
        "complete": template.is_complete(counted),
        "complete_within": template.complete_within,
        "expires_after": template.expires_after,
        "dependencies": [
            {"requirement": r.id, "template": r.badge, "held": r.id in held}
            for r in template.badge_requirements
        ],
        "groups": groups,
        "penalties": [
            {
                "id": p.id,
                "description": p.description,
                "event_type": p.event_type,
                "targets": list(p.targets),
                "rules": [r.describe() for r in p.rules],
            }
            for p in template.penalties
        ],
        "badge": dict(badge) if badge else None,
    }


def explain(
    state: LearnerState | None, config: CompiledConfig, *, include_untouched: bool = False,
    now_us: int | None = None,
) -> list[dict[str, Any]]:
    """Every template the learner has progress for (and, if asked, every active template).

    A template that is no longer configured still shows its raw progress (``known: False``).
    """
    templates = state["templates"] if state else {}
    out = []
    for uuid, progress in templates.items():
        tpl = config.templates.get(uuid)
        if tpl is None:
            badge = progress.get("badge")
            out.append(
                {
                    "template": uuid,
                    "known": False,
                    "name": "",
                    "organization": "",
                    "active": False,
                    "complete": False,
                    "groups": [],
                    "penalties": [],
                    "fulfilled": {k: dict(v) for k, v in progress["fulfilled"].items()},
                    "badge": dict(badge) if badge else None,
                }
            )
        else:
            out.append(explain_template(tpl, progress, templates, now_us))
    if include_untouched:
        for uuid, tpl in config.templates.items():
            if tpl.active and uuid not in templates:
                out.append(explain_template(tpl, None, templates, now_us))
    return out
