"""Credly behind the provider interface: the client and issuer functions, unchanged."""

from __future__ import annotations

from .client import CredlyClient
from .issuer import IssueOutcome, RevokeOutcome, find_issued, issue_once, revoke_once
from .models import Badge, BadgeTemplate, IssueRequest


class CredlyProvider:
    name = "credly"

    def __init__(self, client: CredlyClient) -> None:
        self.client = client

    async def verify(self, org: str) -> str:
        return (await self.client.get_organization(org)).name

    async def list_templates(self, org: str) -> list[BadgeTemplate]:
        return await self.client.list_badge_templates(org)

    async def issue_once(self, org: str, request: IssueRequest, *, outcome_unknown: bool) -> IssueOutcome:
        return await issue_once(self.client, org, request, outcome_unknown=outcome_unknown)

    async def revoke_once(self, org: str, badge_id: str, *, reason: str) -> RevokeOutcome:
        return await revoke_once(self.client, org, badge_id, reason=reason)

    async def find_issued(self, org: str, request: IssueRequest) -> Badge | None:
        return await find_issued(self.client, org, request)

    async def close(self) -> None:
        await self.client.close()
