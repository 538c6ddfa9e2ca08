"""Switching a template on or off: the rules shared by `badges template activate|deactivate`
and the worker's admin API (docs/CONTRACT.md "Organizations and templates": activation needs at
least one requirement; only templates that are active in Credly can be activated; and, as the
configuration file refuses them, none whose requirements or penalties compilation finds fault
with: an unknown event type or key path, an event type without UserData, a value that is no
boolean word on a boolean field, ...). Removing a template or an organization:
the key to tombstone, refused while the entity is in use.
"""

from __future__ import annotations

from typing import Literal

from badges.config.entities import ConfigSnapshot, Template
from badges.domain.findings import Finding
from badges.domain.index import compile_template
from badges.schemas.catalog import Catalog


class TemplateSwitchError(ValueError):
    """Why a template cannot be switched; ``reason`` tells callers which status to answer."""

    def __init__(self, message: str, reason: Literal["not_found", "refused"]) -> None:
        super().__init__(message)
        self.reason = reason


def switch_template(snapshot: ConfigSnapshot, uuid: str, active: bool, catalog: Catalog) -> Template:
    """The template entity to publish, or TemplateSwitchError naming the broken rule."""
    template = snapshot.templates.get(uuid)
    if template is None:
        raise TemplateSwitchError(
            f"template {uuid} is not configured; sync it first (badges templates sync)", "not_found"
        )
    updated = template.model_copy(update={"is_active": active})
    if not active:
        return updated  # deactivating stays possible whatever the template holds
    # compilation is the one check of what the template means; this only says it for a switch
    findings: list[Finding] = []
    compile_template(updated, catalog, findings)
    if any(f.code == "active_without_requirements" for f in findings):
        raise TemplateSwitchError(
            f"template {uuid} has no requirement; add one with `badges config apply` first", "refused"
        )
    if template.credly_state not in (None, "active"):
        raise TemplateSwitchError(
            f"template {uuid} is {template.credly_state!r} in Credly; only active templates can be activated",
            "refused",
        )
    errors = [str(f) for f in findings if f.is_error]
    if errors:
        raise TemplateSwitchError(f"template {uuid} cannot be activated: {'; '.join(errors)}", "refused")
    return updated


def removal_key(snapshot: ConfigSnapshot, kind: Literal["template", "org"], uuid: str) -> str:
    """The configuration key to tombstone. A template is refused while active or while a badge
    requirement of another template names it; an organization while it has templates."""
    if kind == "template":
        template = snapshot.templates.get(uuid)
        if template is None:
            raise TemplateSwitchError(f"template {uuid} is not configured", "not_found")
        if template.is_active:
            raise TemplateSwitchError(
                f"template {uuid} is active; deactivate it first (badges template deactivate)", "refused")
        users = sorted(t.uuid for t in snapshot.templates.values()
                       if any(r.badge == uuid for r in t.requirements))
        if users:
            raise TemplateSwitchError(
                f"template {uuid} is required (badge) by {', '.join(users)}", "refused")
        return f"template/{uuid}"
    if uuid not in snapshot.organizations:
        raise TemplateSwitchError(f"organization {uuid} is not configured", "not_found")
    owned = sorted(t.uuid for t in snapshot.templates.values() if t.organization == uuid)
    if owned:
        raise TemplateSwitchError(
            f"organization {uuid} has {len(owned)} template(s); delete them first "
            f"(badges template delete): {', '.join(owned)}", "refused")
    return f"org/{uuid}"
