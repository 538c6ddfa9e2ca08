"""What we read from and send to Credly (docs/CONTRACT.md "Badge provider calls"), validated at the boundary.

Read models ignore unknown fields: Credly adds fields freely and we must not break on them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

ISSUED_AT_FORMAT = "%Y-%m-%d %H:%M:%S %z"

T = TypeVar("T")


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CredlyOrganization(_Read):
    id: str
    name: str


class TemplateOwner(_Read):
    id: str
    name: str | None = None


class BadgeTemplate(_Read):
    id: str
    name: str = ""
    description: str | None = None
    image_url: str | None = None
    state: str = ""
    owner: TemplateOwner | None = None


class BadgeTemplateRef(_Read):
    id: str
    name: str | None = None


class Badge(_Read):
    id: str
    state: str
    recipient_email: str | None = None
    issued_at: str | None = None
    badge_template: BadgeTemplateRef | None = None
    issuer_earner_id: str | None = None
    expires_at: str | None = None

    @property
    def template_id(self) -> str | None:
        return self.badge_template.id if self.badge_template else None


class CredlyEvent(_Read):
    """``GET organizations/{org}/events/{id}`` → ``data``; template events carry the template."""

    id: str
    event_type: str
    organization_id: str | None = None
    occurred_at: str | None = None
    badge_template: BadgeTemplate | None = None


class WebhookNotification(_Read):
    """The body Credly POSTs to the webhook: only ``id`` and ``organization_id`` are trusted."""

    id: str
    organization_id: str
    event_type: str | None = None
    occurred_at: str | None = None


class PageMetadata(_Read):
    count: int | None = None
    current_page: int = 1
    total_count: int | None = None
    total_pages: int = 1
    per: int | None = None
    previous_page_url: str | None = None
    next_page_url: str | None = None


class Page(_Read, Generic[T]):
    data: list[T]
    metadata: PageMetadata = Field(default_factory=PageMetadata)


class CredlyData(_Read, Generic[T]):
    data: T


def split_name(full_name: str | None, username: str) -> tuple[str, str]:
    """Split at the first space; one word fills both; empty falls back to username."""
    parts = (full_name or "").split(None, 1)
    if not parts:
        return username, username
    if len(parts) == 1:
        return parts[0], parts[0]
    return parts[0], parts[1].strip()


def format_issued_at(when: str | datetime) -> str:
    """Render the completing event's ``ce_time`` (ISO 8601) as Credly wants; naive means UTC."""
    moment = datetime.fromisoformat(when) if isinstance(when, str) else when
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.strftime(ISSUED_AT_FORMAT)


class Evidence(BaseModel):
    """Credly ``IdEvidence``: a titled text shown with the badge (the evidence summary)."""

    model_config = ConfigDict(frozen=True)

    type: str = "IdEvidence"
    title: str
    description: str


def evidence_summary(requirements: list[str], completed_at: str) -> list[Evidence]:
    """What completed the template and when: the requirements' names and the completing time."""
    names = ", ".join(requirements) if requirements else "all requirements"
    return [Evidence(title="Completed requirements",
                     description=f"{names} (completed {format_issued_at(completed_at)})")]


class IssueRequest(BaseModel):
    """Body of ``POST organizations/{org}/badges`` (unset optional fields are not sent)."""

    model_config = ConfigDict(frozen=True)

    recipient_email: str = Field(min_length=3)
    issued_to_first_name: str = Field(min_length=1)
    issued_to_last_name: str = Field(min_length=1)
    badge_template_id: str = Field(min_length=1)
    issued_at: str
    # the LMS user id (the lookup after an unknown outcome filters on it), the expiry
    # and the evidence summary.
    issuer_earner_id: str | None = None
    expires_at: str | None = None
    evidence: list[Evidence] | None = None

    @field_validator("issued_at", "expires_at")
    @classmethod
    def _issued_at(cls, value: str | None) -> str | None:
        if value is not None:
            datetime.strptime(value, ISSUED_AT_FORMAT)  # raises ValueError → ValidationError
        return value

    @classmethod
    def for_learner(
        cls, *, email: str, full_name: str | None, username: str, badge_template_id: str,
        completed_at: str | datetime, earner_id: int | str | None = None,
        expires_at: str | None = None, evidence: list[Evidence] | None = None,
    ) -> IssueRequest:
        first, last = split_name(full_name, username)
        return cls(
            recipient_email=email,
            issued_to_first_name=first,
            issued_to_last_name=last,
            badge_template_id=badge_template_id,
            issued_at=format_issued_at(completed_at),
            issuer_earner_id=str(earner_id) if earner_id is not None else None,
            expires_at=format_issued_at(expires_at) if expires_at else None,
            evidence=evidence,
        )

    def body(self) -> dict[str, object]:
        return self.model_dump(exclude_none=True)


class RevokeRequest(BaseModel):
    """Body of ``PUT organizations/{org}/badges/{id}/revoke``."""

    model_config = ConfigDict(frozen=True)

    reason: str = "Open edX internal user credential was revoked"


def badge_filter(*, recipient_email: str, badge_template_id: str,
                 issuer_earner_id: str | None = None) -> str:
    """Credly filter syntax: ``key::value`` pairs joined by ``|``. With an earner id the
    recipient is that id (an e-mail changed since the issue would miss the badge)."""
    who = (f"issuer_earner_id::{issuer_earner_id}" if issuer_earner_id is not None
           else f"recipient_email::{recipient_email}")
    return f"{who}|badge_template_id::{badge_template_id}"
