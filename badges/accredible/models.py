"""What we read from and send to Accredible, validated at the boundary.

Accredible groups are the templates of the worker. A group id is an integer and Accredible has
no organization id, while the rest of the code keys templates by a UUID: a group's template uuid
is the UUID5 of (organization uuid, group id), and the template entity keeps the group id
(``accredible_group_id``) for the calls. Deterministic, so a re-sync finds the same template.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from badges.credly.models import ISSUED_AT_FORMAT, BadgeTemplate, IssueRequest

TEMPLATE_NAMESPACE = uuid.UUID("3f0e8b5c-2d41-4c7a-9e1f-acc4ed1b1e00")
EXPIRED = "expired"
ISSUED = "issued"


def template_uuid(org_uuid: str, group_id: int) -> str:
    """The template uuid of an Accredible group of an organization."""
    return str(uuid.uuid5(TEMPLATE_NAMESPACE, f"{org_uuid}:{group_id}"))


def accredible_date(issued_at: str) -> str:
    """An ``IssueRequest`` time (ISSUED_AT_FORMAT, with offset) as Accredible's UTC date."""
    return datetime.strptime(issued_at, ISSUED_AT_FORMAT).astimezone(UTC).date().isoformat()


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Group(_Read):
    id: int
    name: str = ""
    course_name: str | None = None
    course_description: str | None = None
    course_link: str | None = None
    primary_design_id: int | None = None


class PageMeta(_Read):
    current_page: int = 1
    next_page: int | None = None
    total_pages: int = 1


class GroupsPage(_Read):
    groups: list[Group]
    meta: PageMeta = Field(default_factory=PageMeta)


class Recipient(_Read):
    name: str | None = None
    email: str | None = None
    id: int | str | None = None


class Credential(_Read):
    id: int
    group_id: int | None = None
    url: str | None = None
    expired: bool = False
    issued_on: str | None = None
    expired_on: str | None = None
    recipient: Recipient | None = None

    @property
    def state(self) -> str:
        return EXPIRED if self.expired else ISSUED


class CredentialEnvelope(_Read):
    credential: Credential


class CredentialList(_Read):
    credentials: list[Credential]


class GroupTemplate(BadgeTemplate):
    """A group as a template for the sync: Credly's template fields plus the group id."""

    accredible_group_id: int


def group_template(org_uuid: str, group: Group) -> GroupTemplate:
    return GroupTemplate(
        id=template_uuid(org_uuid, group.id), name=group.name or group.course_name or "",
        description=group.course_description, image_url=None, state="active",
        accredible_group_id=group.id,
    )


def recipient_name(request: IssueRequest) -> str:
    """The learner's name as one field again (``split_name`` uses one word for both halves)."""
    first, last = request.issued_to_first_name, request.issued_to_last_name
    return first if first == last else f"{first} {last}"


def credential_body(request: IssueRequest, group_id: int) -> dict[str, object]:
    """Body of ``POST credentials``. Accredible keeps dates, not times: ``issued_on`` is the
    completing event's date, ``expired_on`` the expiry's (docs/CONTRACT.md "Rules beyond the reference"); the evidence summary goes
    as evidence items."""
    credential: dict[str, object] = {
        "recipient": {"name": recipient_name(request), "email": request.recipient_email},
        "group_id": group_id,
        "issued_on": accredible_date(request.issued_at),
        "complete": True,
    }
    if request.expires_at:
        credential["expired_on"] = accredible_date(request.expires_at)
    if request.evidence:
        credential["evidence_items"] = [
            {"description": f"{e.title}: {e.description}", "category": "transcript"}
            for e in request.evidence
        ]
    return {"credential": credential}
