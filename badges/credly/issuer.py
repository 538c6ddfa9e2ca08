"""Exactly-once issuing and revoking on top of ``CredlyClient`` (docs/CONTRACT.md "Badge provider calls").

The rule: whenever Credly may have stored a badge without us knowing (timeout, connection error,
5xx, or an earlier attempt recorded as unknown by the caller), look the badge up before any new
POST. A 422 on issue is usually "already issued", so it is looked up too. A badge found that way
is *reconciled*: a success, not a failure.

Decision on 5xx: a 500/502/503/504 is treated as outcome-unknown. Gateways answer 502/504 after
the backend may have committed, and a template that allows duplicates would not protect us with a
422, so one GET per retry is the cheap price of never issuing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from tenacity import AsyncRetrying

from badges.wire.timeparse import iso_to_us

from .client import CredlyClient
from .errors import CredlyError, CredlyServerError, CredlyUnavailable, CredlyValidationError
from .models import ISSUED_AT_FORMAT, Badge, IssueRequest

log = logging.getLogger(__name__)

REVOKED = "revoked"


@dataclass(frozen=True)
class IssueOutcome:
    badge_id: str | None
    state: str | None
    reconciled: bool
    attempts: int
    error: str | None = None
    error_type: str | None = None
    # True when the call ended without knowing whether Credly stored the badge: the caller must
    # persist it and pass it back as ``outcome_unknown`` on its next try.
    outcome_unknown: bool = False

    @property
    def ok(self) -> bool:
        return self.badge_id is not None


@dataclass(frozen=True)
class RevokeOutcome:
    state: str | None
    already_revoked: bool
    attempts: int
    error: str | None = None
    error_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _Progress:
    """Mutable state carried across tenacity attempts."""

    def __init__(self, unknown: bool) -> None:
        self.unknown = unknown
        self.attempts = 0


async def find_issued(client: CredlyClient, org: str, request: IssueRequest) -> Badge | None:
    """The badge this request issued, if Credly has it: the live one of this template for this
    earner id (or email, for a request without one), else a revoked one issued for the same
    completion (same ``issued_at``).

    The revoked one matters after a crash that lost the outcomes of an issue *and* of the revoke
    after it: without it the lookup would find nothing and issue the badge a second time.
    """
    badges = await client.find_badges(
        org, recipient_email=request.recipient_email,
        badge_template_id=request.badge_template_id, retry=False,
        issuer_earner_id=request.issuer_earner_id,
    )
    # an expired badge is an earlier completion's: a renewal after it is a new badge
    issued = _instant(request.issued_at)
    live = [b for b in badges if b.state not in (REVOKED, "expired")
            and not _expired_before(b, issued)]
    if len(live) > 1:
        log.warning("Credly holds %d live badges of template %s for one recipient (org %s)",
                    len(live), request.badge_template_id, org)
    if live:
        return live[0]
    return next((b for b in badges if issued is not None and _instant(b.issued_at) == issued), None)


def _expired_before(badge: Badge, instant: int | None) -> bool:
    expires = _instant(badge.expires_at)
    return expires is not None and instant is not None and expires <= instant


def _instant(text: str | None) -> int | None:
    """An ``issued_at`` as sent (ISSUED_AT_FORMAT) or as Credly may render it (ISO 8601), in
    whole seconds since the epoch."""
    if not text:
        return None
    try:
        return int(datetime.strptime(text, ISSUED_AT_FORMAT).timestamp())
    except ValueError:
        pass
    try:
        return iso_to_us(text) // 1_000_000
    except ValueError:
        return None


async def issue_once(
    client: CredlyClient, org: str, request: IssueRequest, *, outcome_unknown: bool,
    max_attempts: int | None = None,
) -> IssueOutcome:
    """Issue the badge at most once; never raises ``CredlyError`` (the outcome says why)."""
    return await issue_with_lookup(
        client.retrying(max_attempts=max_attempts),
        post=lambda: client.issue_badge(org, request),
        lookup=lambda: find_issued(client, org, request),
        outcome_unknown=outcome_unknown,
    )


async def issue_with_lookup(
    retrying: AsyncRetrying, *, post: Callable[[], Awaitable[Badge]],
    lookup: Callable[[], Awaitable[Badge | None]], outcome_unknown: bool,
) -> IssueOutcome:
    """The exactly-once loop of every provider: ``post`` issues (one attempt), ``lookup`` finds
    what an earlier attempt may have stored. Never raises ``CredlyError``."""
    progress = _Progress(outcome_unknown)
    try:
        async for attempt in retrying:
            with attempt:
                progress.attempts = attempt.retry_state.attempt_number
                return await _issue_attempt(post, lookup, progress)
    except CredlyError as exc:
        log.warning("issue failed after %d attempts: %s", progress.attempts, exc)
        return IssueOutcome(
            badge_id=None, state=None, reconciled=False, attempts=progress.attempts,
            error=str(exc), error_type=type(exc).__name__, outcome_unknown=progress.unknown,
        )
    raise AssertionError("unreachable: tenacity re-raises")  # pragma: no cover


async def _issue_attempt(
    post: Callable[[], Awaitable[Badge]], lookup: Callable[[], Awaitable[Badge | None]],
    progress: _Progress,
) -> IssueOutcome:
    if progress.unknown:
        found = await lookup()  # a failure here keeps `unknown`
        if found is not None:
            return _reconciled(found, progress)
        progress.unknown = False
    try:
        badge = await post()
    except (CredlyUnavailable, CredlyServerError):
        progress.unknown = True
        raise
    except CredlyValidationError:
        progress.unknown = True  # until the lookup below answers
        found = await lookup()
        if found is not None:
            return _reconciled(found, progress)
        progress.unknown = False
        raise
    return IssueOutcome(
        badge_id=badge.id, state=badge.state, reconciled=False, attempts=progress.attempts
    )


def _reconciled(badge: Badge, progress: _Progress) -> IssueOutcome:
    progress.unknown = False
    log.info("badge %s found by lookup: reconciled, not issued again", badge.id)
    return IssueOutcome(
        badge_id=badge.id, state=badge.state, reconciled=True, attempts=progress.attempts
    )


async def revoke_once(
    client: CredlyClient, org: str, badge_id: str, *, reason: str,
    max_attempts: int | None = None,
) -> RevokeOutcome:
    """Revoke; a badge that is already revoked counts as success. Never raises ``CredlyError``."""

    async def attempt() -> tuple[str | None, bool]:
        try:
            badge = await client.revoke_badge(org, badge_id, reason, retry=False)
        except CredlyValidationError:
            current = await client.get_badge(org, badge_id, retry=False)
            if current.state == REVOKED:
                return REVOKED, True
            raise
        return badge.state, False

    return await revoke_with_retries(client.retrying(max_attempts=max_attempts), attempt, badge_id)


async def revoke_with_retries(
    retrying: AsyncRetrying, attempt: Callable[[], Awaitable[tuple[str | None, bool]]],
    badge_id: str,
) -> RevokeOutcome:
    """Every provider's revoke loop: ``attempt`` answers (state, already revoked) or raises."""
    attempts = 0
    try:
        async for try_ in retrying:
            with try_:
                attempts = try_.retry_state.attempt_number
                state, already = await attempt()
                return RevokeOutcome(state, already, attempts)
    except CredlyError as exc:
        log.warning("revoke of %s failed after %d attempts: %s", badge_id, attempts, exc)
        return RevokeOutcome(None, False, attempts, str(exc), type(exc).__name__)
    raise AssertionError("unreachable: tenacity re-raises")  # pragma: no cover
