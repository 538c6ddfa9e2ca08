"""Merging what Credly says about templates into the configuration (sync and webhooks).

Accredible groups are merged the same way (as ``GroupTemplate``s, always ``active``).

docs/CONTRACT.md "Organizations and templates": only `active` templates are pulled; a new one is stored inactive; a re-sync updates
name, description, image and state but never `is_active`; a template that Credly moves out of
`active` (webhook) is deactivated.

Shared by the CLI (`badges templates sync`) and the worker (admin API, Credly webhook): the
callers only differ in how they read and publish the configuration topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from badges.config.entities import ConfigSnapshot, Template
from badges.credly.models import BadgeTemplate

if TYPE_CHECKING:
    from badges.providers import Providers

TEMPLATE_CREATED = "badge_template.created"
TEMPLATE_CHANGED = "badge_template.changed"
TEMPLATE_DELETED = "badge_template.deleted"
TEMPLATE_EVENTS = (TEMPLATE_CREATED, TEMPLATE_CHANGED, TEMPLATE_DELETED)


@dataclass
class SyncResult:
    organization: str
    pulled: int = 0
    new: int = 0
    entities: list[Template] = field(default_factory=list)
    # configured templates of this organization that Credly no longer lists as active
    no_longer_active: list[str] = field(default_factory=list)


class UnknownOrganization(LookupError):
    """No organization configured, or not the one asked for (the message says which)."""


def merge_template(snapshot: ConfigSnapshot, org_uuid: str, credly: BadgeTemplate) -> tuple[Template, bool]:
    """The template entity after Credly's view of it; True when it is new to us."""
    current = snapshot.templates.get(credly.id)
    fields = dict(
        organization=org_uuid,
        name=credly.name or "",
        description=credly.description or "",
        image_url=credly.image_url or "",
        credly_state=credly.state or "active",
        # an Accredible group's id (GroupTemplate); a Credly template has none
        **credly.model_dump(include={"accredible_group_id"}),
    )
    if current is None:
        return Template(uuid=credly.id, is_active=False, **fields), True
    updated = current.model_copy(update=fields)
    if updated.credly_state != "active":
        updated = updated.model_copy(update={"is_active": False})
    return updated, False


def sync_templates(snapshot: ConfigSnapshot, org_uuid: str, active: list[BadgeTemplate]) -> SyncResult:
    result = SyncResult(organization=org_uuid, pulled=len(active))
    seen = set()
    for credly in active:
        entity, is_new = merge_template(snapshot, org_uuid, credly)
        result.new += is_new
        seen.add(entity.uuid)
        if is_new or entity != snapshot.templates.get(entity.uuid):
            result.entities.append(entity)
    result.no_longer_active = sorted(
        uuid for uuid, t in snapshot.templates.items()
        if t.organization == org_uuid and uuid not in seen and t.credly_state == "active"
    )
    return result


def select_organizations(snapshot: ConfigSnapshot, only: str | None = None) -> list[str]:
    """The organizations a sync covers: ``only``, or every configured one."""
    orgs = [only] if only else sorted(snapshot.organizations)
    if not orgs:
        raise UnknownOrganization("no organization configured; add one with `badges org add`")
    for org in orgs:
        if org not in snapshot.organizations:
            raise UnknownOrganization(f"organization {org} is not configured; add it with `badges org add`")
    return orgs


async def pull_active_templates(providers: "Providers", snapshot: ConfigSnapshot, orgs: list[str]) -> list[SyncResult]:
    """Ask each organization's provider for its templates (Credly: the active ones; Accredible:
    its groups) and merge them (nothing published)."""
    results = []
    for org_uuid in orgs:
        active = await providers.for_org(org_uuid).list_templates(org_uuid)
        results.append(sync_templates(snapshot, org_uuid, active))
    return results


def apply_template_event(
    snapshot: ConfigSnapshot, org_uuid: str, event_type: str, credly: BadgeTemplate
) -> Template | None:
    """The template entity a Credly webhook event leads to; None when nothing changes.

    created/changed merge like a sync, except that a template unknown to us and not active in
    Credly is not stored (a sync would not pull it either; it arrives once Credly activates it).
    deleted deactivates a known template and records the state ``deleted``. A template that
    belongs to another organization is never touched.
    """
    current = snapshot.templates.get(credly.id)
    if current is not None and current.organization != org_uuid:
        return None
    if event_type == TEMPLATE_DELETED:
        if current is None:
            return None
        updated = current.model_copy(update={"is_active": False, "credly_state": "deleted"})
    elif event_type in (TEMPLATE_CREATED, TEMPLATE_CHANGED):
        if current is None and (credly.state or "active") != "active":
            return None
        updated, _ = merge_template(snapshot, org_uuid, credly)
    else:
        return None
    return None if updated == current else updated
