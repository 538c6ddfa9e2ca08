"""Accredible behind the provider interface, with the exactly-once rules of the Credly issuer.

Issuing is the same loop (``issue_with_lookup``): one POST per attempt, and before any new POST
after an unknown outcome (timeout, connection error, 5xx, 422) a lookup of the credential by
group and e-mail. Accredible has no revoked state: as Open edX Credentials does, a badge is
taken back by expiring its credential today; our records call that ``revoked``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from badges.config.entities import ConfigSnapshot
from badges.credly.errors import CredlyNotFound
from badges.credly.issuer import (
    REVOKED,
    IssueOutcome,
    RevokeOutcome,
    issue_with_lookup,
    revoke_with_retries,
)
from badges.credly.models import Badge, BadgeTemplate, BadgeTemplateRef, IssueRequest

from .client import AccredibleClient
from .models import Credential, accredible_date, credential_body, group_template

log = logging.getLogger(__name__)

GroupLookup = Callable[[str], "int | None"]


def group_lookup(snapshot: Callable[[], ConfigSnapshot]) -> GroupLookup:
    """template uuid → Accredible group id, from the current configuration."""

    def group_for(template: str) -> int | None:
        entity = snapshot().templates.get(template)
        return entity.accredible_group_id if entity is not None else None

    return group_for


def as_badge(credential: Credential, template: str) -> Badge:
    """A credential in the provider-neutral shape the sink records (id, state, dates)."""
    return Badge(
        id=str(credential.id), state=credential.state,
        recipient_email=credential.recipient.email if credential.recipient else None,
        issued_at=credential.issued_on, expires_at=credential.expired_on,
        badge_template=BadgeTemplateRef(id=template),
    )


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


class AccredibleProvider:
    name = "accredible"

    def __init__(self, client: AccredibleClient, group_for: GroupLookup) -> None:
        self.client = client
        self._group_for = group_for

    def _group(self, org: str, template: str) -> int:
        group = self._group_for(template)
        if group is None:
            raise CredlyNotFound(
                f"template {template} is not an Accredible group of organization {org}; "
                "run `badges templates sync`", org=org,
            )
        return group

    async def verify(self, org: str) -> str:
        """Any authorized call proves the key; Accredible tells no issuer name in it."""
        await self.client.check_key(org)
        return ""

    async def list_templates(self, org: str) -> list[BadgeTemplate]:
        return [group_template(org, g) for g in await self.client.list_groups(org)]

    async def issue_once(self, org: str, request: IssueRequest, *, outcome_unknown: bool) -> IssueOutcome:
        template = request.badge_template_id

        async def post() -> Badge:
            body = credential_body(request, self._group(org, template))
            return as_badge(await self.client.issue_credential(org, body), template)

        return await issue_with_lookup(
            self.client.retrying(), post=post, lookup=lambda: self.find_issued(org, request),
            outcome_unknown=outcome_unknown,
        )

    async def find_issued(self, org: str, request: IssueRequest) -> Badge | None:
        """The live credential of this group for this e-mail, else an expired one issued for the
        same completion (same ``issued_on``): the rule of the Credly lookup, on dates."""
        template = request.badge_template_id
        found = await self.client.search_credentials(
            org, group_id=self._group(org, template), email=request.recipient_email, retry=False,
        )
        issued_on = accredible_date(request.issued_at)
        live = [c for c in found if not c.expired and not (c.expired_on and c.expired_on <= issued_on)]
        if len(live) > 1:
            log.warning("Accredible holds %d live credentials of template %s for one recipient (org %s)",
                        len(live), template, org)
        match = live[0] if live else next((c for c in found if c.issued_on == issued_on), None)
        return as_badge(match, template) if match is not None else None

    async def revoke_once(self, org: str, badge_id: str, *, reason: str) -> RevokeOutcome:
        """Expire the credential today (``reason`` has no place in Accredible's API). One that
        has expired already counts as taken back, and keeps its date."""

        async def attempt() -> tuple[str | None, bool]:
            if (await self.client.get_credential(org, badge_id, retry=False)).expired:
                return REVOKED, True
            await self.client.expire_credential(org, badge_id, _today(), retry=False)
            return REVOKED, False

        return await revoke_with_retries(self.client.retrying(), attempt, badge_id)

    async def close(self) -> None:
        await self.client.close()
