"""Merging what Credly says about templates into the configuration (sync and webhooks).

SPEC §2: only `active` templates are pulled; a new one is stored inactive; a re-sync updates
name, description, image and state but never `is_active`; a template that Credly moves out of
`active` (webhook) is deactivated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from badges.config.entities import ConfigSnapshot, Template
from badges.credly.models import BadgeTemplate


@dataclass
class SyncResult:
    organization: str
    pulled: int = 0
    new: int = 0
    entities: list[Template] = field(default_factory=list)
    # configured templates of this organization that Credly no longer lists as active
    no_longer_active: list[str] = field(default_factory=list)


def merge_template(snapshot: ConfigSnapshot, org_uuid: str, credly: BadgeTemplate) -> tuple[Template, bool]:
    """The template entity after Credly's view of it; True when it is new to us."""
    current = snapshot.templates.get(credly.id)
    fields = dict(
        organization=org_uuid,
        name=credly.name or "",
        description=credly.description or "",
        image_url=credly.image_url or "",
        credly_state=credly.state or "active",
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
