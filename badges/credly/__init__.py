"""Everything that talks HTTP to Credly: client, exactly-once issuer, sandbox emulator."""

from .client import CredlyClient, TokenLookup
from .errors import (
    CredlyAuthError,
    CredlyError,
    CredlyNotFound,
    CredlyRateLimited,
    CredlyServerError,
    CredlyUnavailable,
    CredlyValidationError,
)
from .issuer import IssueOutcome, RevokeOutcome, issue_once, revoke_once
from .models import (
    Badge,
    BadgeTemplate,
    CredlyEvent,
    IssueRequest,
    CredlyOrganization,
    WebhookNotification,
    format_issued_at,
    split_name,
)

__all__ = [
    "Badge", "BadgeTemplate", "CredlyAuthError", "CredlyClient", "CredlyError", "CredlyEvent",
    "CredlyNotFound", "CredlyRateLimited", "CredlyServerError", "CredlyUnavailable",
    "CredlyValidationError", "IssueOutcome", "IssueRequest", "CredlyOrganization", "RevokeOutcome",
    "TokenLookup", "WebhookNotification", "format_issued_at", "issue_once", "revoke_once",
    "split_name",
]
