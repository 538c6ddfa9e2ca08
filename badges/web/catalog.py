"""Organizations and templates as the web view shows them (plain dicts: HTML and JSON alike).

Built from this worker's copy of the configuration topic (every worker has all of it). Tokens
never leave here: an organization shows where its token comes from, never the token.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from badges.config.entities import ConfigSnapshot, Organization, Template
from badges.config.switch import TemplateSwitchError, switch_template
from badges.domain.model import CompiledConfig, CompiledTemplate
from badges.domain.rule_language import OPERATOR_SIGNS
from badges.schemas.catalog import Catalog
from badges.web.http import HttpError

if TYPE_CHECKING:
    from badges.runtime import Runtime



def _token_source(org: Organization) -> dict[str, Any]:
    if org.api_key_env is not None:
        return {"kind": "environment", "variable": org.api_key_env,
                "set_on_this_worker": bool(os.environ.get(org.api_key_env))}
    return {"kind": "inline", "variable": None, "set_on_this_worker": True}


def organizations(runtime: "Runtime") -> dict[str, Any]:
    snapshot = runtime.config.snapshot()
    rows = []
    for org in sorted(snapshot.organizations.values(), key=lambda o: (o.name.lower(), o.uuid)):
        mine = [t for t in snapshot.templates.values() if t.organization == org.uuid]
        rows.append({
            "uuid": org.uuid,
            "name": org.name,
            "token": _token_source(org),
            "templates": len(mine),
            "active_templates": sum(1 for t in mine if t.is_active and t.credly_state == "active"),
        })
    return {"organizations": rows}


def problems_of(config: CompiledConfig, uuid: str) -> list[str]:
    prefix = f"template {uuid}"
    return [p for p in config.problems if p.startswith(prefix)]


def _rule(rule: Any) -> dict[str, str]:
    return {"key_path": rule.key_path, "operator": OPERATOR_SIGNS.get(rule.operator, rule.operator),
            "value": rule.value}


def _summary(tpl: Template, compiled: CompiledTemplate | None, snapshot: ConfigSnapshot,
             config: CompiledConfig) -> dict[str, Any]:
    org = snapshot.organizations.get(tpl.organization)
    return {
        "uuid": tpl.uuid,
        "name": tpl.name,
        "organization": {"uuid": tpl.organization, "name": org.name if org else ""},
        "active": tpl.is_active,  # as configured
        "processing": bool(compiled and compiled.active),  # what the engine does with it
        "credly_state": tpl.credly_state,
        "requirements": len(tpl.requirements),
        "penalties": len(tpl.penalties),
        "groups": len(compiled.groups) if compiled else 0,
        "problems": len(problems_of(config, tpl.uuid)),
    }


def templates(runtime: "Runtime") -> dict[str, Any]:
    snapshot, config = runtime.config.snapshot(), runtime.config.compiled()
    rows = [
        _summary(t, config.templates.get(t.uuid), snapshot, config)
        for t in sorted(snapshot.templates.values(), key=lambda t: (not t.is_active, t.name.lower(), t.uuid))
    ]
    return {"templates": rows, "active": sum(1 for r in rows if r["processing"]),
            "problems": list(config.problems)}


def activation_blocker(snapshot: ConfigSnapshot, uuid: str, catalog: Catalog) -> str | None:
    """Why `activate` would be refused (config.switch's rules), for the page's hint."""
    try:
        switch_template(snapshot, uuid, True, catalog)
    except TemplateSwitchError as exc:
        return str(exc)
    return None


def template_detail(runtime: "Runtime", uuid: str) -> dict[str, Any]:
    snapshot, config = runtime.config.snapshot(), runtime.config.compiled()
    tpl = snapshot.templates.get(uuid)
    if tpl is None:
        raise HttpError(404, f"template {uuid} is not configured")
    compiled = config.templates.get(uuid)
    groups = []
    if compiled is not None:
        for group in compiled.groups:
            groups.append({"name": group.name, "requirements": list(group.requirement_ids),
                           "own": group.name is None, "min": group.min})
    return {
        **_summary(tpl, compiled, snapshot, config),
        "description": tpl.description,
        "image_url": tpl.image_url,
        "updated_at": tpl.updated_at,
        "requirement_list": [
            {"id": r.id, "event_type": r.event_type, "description": r.description, "group": r.group,
             "rules": [_rule(x) for x in r.rules], "badge": r.badge, "not_before": r.not_before,
             "not_after": r.not_after}
            for r in tpl.requirements
        ],
        # the optional keys of docs/CONTRACT.md "Rules beyond the reference" (None: not configured)
        "complete_within": tpl.complete_within,
        "expires_after": tpl.expires_after,
        "required_by": sorted(t.uuid for t in snapshot.templates.values()
                              if any(r.badge == uuid for r in t.requirements)),
        "group_list": groups,
        "penalty_list": [
            {"id": p.id, "event_type": p.event_type, "description": p.description,
             "targets": list(p.requirements), "rules": [_rule(x) for x in p.rules]}
            for p in tpl.penalties
        ],
        "problem_list": problems_of(config, uuid),
        "activation_blocker": activation_blocker(snapshot, uuid, runtime.catalog),
    }
