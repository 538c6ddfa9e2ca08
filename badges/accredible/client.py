"""Async Accredible API client on the shared transport (``JsonApiClient``).

Same sessions, per-organization rate limiter, retries (5xx, 429 with Retry-After, network
errors) and error classes as Credly; only the authorization (``Bearer``), the paths and the
shapes differ. As for Credly, the POST that issues makes exactly one attempt: the provider
decides, after a lookup, whether to try again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from badges.credly.client import JsonApiClient, _parse
from badges.credly.errors import CredlyError
from badges.credly.metered import Metered

from .models import Credential, CredentialEnvelope, CredentialList, Group, GroupsPage

PAGE_SIZE = 50
MAX_PAGES = 1000  # a server whose next_page never ends must not keep a worker forever


class AccredibleClient(JsonApiClient):
    service = "Accredible"

    def authorization(self, token: str) -> str:
        return f"Bearer {token}"

    def url(self, *parts: str | int) -> str:
        return self.base_url + "/".join(str(p) for p in parts)

    def _parsed(self, model: Any, doc: dict[str, Any], org: str, *, unknown_outcome: bool = False) -> Any:
        return _parse(model, doc, org, unknown_outcome=unknown_outcome, service=self.service)

    async def check_key(self, org: str) -> None:
        """One authorized read (the first group): a bad key raises ``CredlyAuthError``."""
        await self._call(org, "GET", self.url("issuer", "all_groups"), params={"page_size": "1", "page": "1"})

    async def iter_groups(self, org: str) -> AsyncIterator[Group]:
        """Every group of the key's issuer, page after page (``meta.next_page``)."""
        page = 1
        for _ in range(MAX_PAGES):
            doc = await self._call(org, "GET", self.url("issuer", "all_groups"),
                                   params={"page_size": str(PAGE_SIZE), "page": str(page)})
            parsed: GroupsPage = self._parsed(GroupsPage, doc, org)
            for group in parsed.groups:
                yield group
            following = parsed.meta.next_page
            if following is None or following <= page:
                return
            page = following
        raise CredlyError(f"Accredible pagination for organization {org} does not end", org=org)

    async def list_groups(self, org: str) -> list[Group]:
        return [g async for g in self.iter_groups(org)]

    async def issue_credential(self, org: str, body: dict[str, Any]) -> Credential:
        """One POST, never retried here: see ``AccredibleProvider.issue_once``."""
        doc = await self._call(org, "POST", self.url("credentials"), body=body, retry=False)
        return self._parsed(CredentialEnvelope, doc, org, unknown_outcome=True).credential

    async def get_credential(self, org: str, credential_id: str, *, retry: bool = True) -> Credential:
        doc = await self._call(org, "GET", self.url("credentials", credential_id), retry=retry)
        return self._parsed(CredentialEnvelope, doc, org).credential

    async def expire_credential(self, org: str, credential_id: str, on: str, *, retry: bool = True) -> Credential:
        """Accredible's revocation, as Open edX Credentials does it: the credential expires."""
        doc = await self._call(org, "PUT", self.url("credentials", credential_id),
                               body={"credential": {"expired_on": on}}, retry=retry)
        return self._parsed(CredentialEnvelope, doc, org).credential

    async def search_credentials(self, org: str, *, group_id: int, email: str, retry: bool = True) -> list[Credential]:
        """Credentials of one group for one e-mail, re-checked here (see ``CredlyClient.find_badges``)."""
        doc = await self._call(org, "POST", self.url("credentials", "search"),
                               body={"group_id": group_id, "email": email, "page_size": PAGE_SIZE}, retry=retry)
        found: CredentialList = self._parsed(CredentialList, doc, org)
        wanted = email.casefold()
        return [c for c in found.credentials
                if c.group_id == group_id and c.recipient is not None
                and (c.recipient.email or "").casefold() == wanted]


class MeteredAccredibleClient(Metered, AccredibleClient):
    """Accredible's calls in the same call metrics as Credly's (``credly.metered``)."""
