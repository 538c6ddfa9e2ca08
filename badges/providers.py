"""The badge provider interface, and the registry that picks an organization's provider.

An organization names its provider (``provider: credly | accredible``). Everything above this
interface - the sink's exactly-once records, template sync, the CLI - is the same for both;
below it each provider has its client, its lookup and its way to take a badge back (Credly
revokes, Accredible expires the credential).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from badges.config.entities import ConfigSnapshot
from badges.credly.issuer import IssueOutcome, RevokeOutcome
from badges.credly.models import Badge, BadgeTemplate, IssueRequest

if TYPE_CHECKING:
    from badges.config.settings import Settings
    from badges.credly.ratelimit import SharedRateLimit


class BadgeProvider(Protocol):
    """What the worker needs from a badge service. ``org`` is always our organization uuid."""

    name: str

    async def verify(self, org: str) -> str:
        """Check the organization's token; the organization's name ("" when the service has
        none). Raises ``CredlyAuthError`` (401/403) and the other ``CredlyError`` classes."""

    async def list_templates(self, org: str) -> list[BadgeTemplate]:
        """Every template the organization can issue now (Credly: active templates; Accredible:
        groups, ``GroupTemplate``)."""

    async def issue_once(self, org: str, request: IssueRequest, *, outcome_unknown: bool) -> IssueOutcome:
        """Issue at most once, looking up first when an earlier outcome is unknown."""

    async def revoke_once(self, org: str, badge_id: str, *, reason: str) -> RevokeOutcome:
        """Take the badge back; already taken back counts as success."""

    async def find_issued(self, org: str, request: IssueRequest) -> Badge | None:
        """The badge this request issued, if the service holds it."""

    async def close(self) -> None: ...


class Providers:
    """The providers of a worker or a command, by name; ``for_org`` follows configuration
    changes (an organization unknown to the configuration is Credly's, whose token lookup then
    fails with a clear message, as before providers existed)."""

    def __init__(self, by_name: dict[str, BadgeProvider], snapshot: Callable[[], ConfigSnapshot]) -> None:
        self.by_name = by_name
        self._snapshot = snapshot

    def provider_of(self, org: str) -> str:
        entity = self._snapshot().organizations.get(org)
        return entity.provider if entity is not None else "credly"

    def for_org(self, org: str) -> BadgeProvider:
        return self.by_name[self.provider_of(org)]  # the entity's provider is one of PROVIDERS

    async def close(self) -> None:
        for provider in self.by_name.values():
            await provider.close()


def build_providers(settings: "Settings", snapshot: Callable[[], ConfigSnapshot], *, metered: bool = False,
                    shared_limit: "SharedRateLimit | None" = None) -> Providers:
    """Both providers with the settings' timeouts, retries and rate (per organization)."""
    from badges.accredible.client import AccredibleClient, MeteredAccredibleClient
    from badges.accredible.provider import AccredibleProvider, group_lookup
    from badges.credly.client import CredlyClient
    from badges.credly.metered import MeteredCredlyClient
    from badges.credly.provider import CredlyProvider
    from badges.credly.tokens import token_lookup

    options = dict(
        timeout_s=settings.credly_timeout_s, max_attempts=settings.credly_max_attempts,
        backoff_max_s=settings.credly_backoff_max_s, rate_per_s=settings.credly_rate_per_s,
        shared_limit=shared_limit,
    )
    tokens = token_lookup(snapshot)
    credly_cls = MeteredCredlyClient if metered else CredlyClient
    accredible_cls = MeteredAccredibleClient if metered else AccredibleClient
    credly = CredlyProvider(credly_cls(settings.credly_base, tokens, **options))  # type: ignore[arg-type]  # **options: one dict of mixed values
    accredible = AccredibleProvider(
        accredible_cls(settings.accredible_base, tokens, **options),  # type: ignore[arg-type]  # ditto
        group_lookup(snapshot),
    )
    return Providers({"credly": credly, "accredible": accredible}, snapshot)
