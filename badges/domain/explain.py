"""A learner's progress explained group by group, for the web view (HTML and JSON).

Plain dicts and lists only, so the same result renders in a template and serializes as JSON.
"""

from __future__ import annotations

from typing import Any

from badges.domain.model import CompiledConfig, CompiledTemplate
from badges.domain.progress import LearnerState, TemplateProgress


def _requirement_view(req: Any, progress: TemplateProgress | None) -> dict[str, Any]:
    fulfilled = progress["fulfilled"] if progress else {}
    resets = progress["resets"] if progress else {}
    rec = fulfilled.get(req.id)
    return {
        "id": req.id,
        "description": req.description,
        "event_type": req.event_type,
        "rules": [r.describe() for r in req.rules],
        "fulfilled": rec is not None,
        "fulfilled_by": dict(rec) if rec is not None else None,
        "last_reset_us": resets.get(req.id),
    }


def explain_template(
    template: CompiledTemplate, progress: TemplateProgress | None
) -> dict[str, Any]:
    fulfilled = progress["fulfilled"] if progress else {}
    groups = []
    for group in template.groups:
        reqs = [r for r in template.requirements if r.group == group.key]
        views = [_requirement_view(r, progress) for r in reqs]
        groups.append(
            {
                "name": group.name,
                "fulfilled": any(v["fulfilled"] for v in views),
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
        "complete": template.is_complete(fulfilled),
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
    state: LearnerState | None, config: CompiledConfig, *, include_untouched: bool = False
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
            out.append(explain_template(tpl, progress))
    if include_untouched:
        for uuid, tpl in config.templates.items():
            if tpl.active and uuid not in templates:
                out.append(explain_template(tpl, None))
    return out
