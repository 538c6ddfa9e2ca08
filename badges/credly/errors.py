"""Errors of the Credly API, one class per behaviour the callers must tell apart (docs/CONTRACT.md "Badge provider calls").

The same classes are the taxonomy of every badge provider (Accredible raises them too): the
retry policy, the issuer and the sink tell behaviours apart, not services. The message names
the service.

Messages are built from the organization id, the HTTP status and Credly's own message only:
never from request headers, so that a token cannot leak through ``str``, ``repr`` or a
traceback.
"""

from __future__ import annotations


class CredlyError(Exception):
    """Base class; ``status`` is the HTTP status when Credly answered."""

    def __init__(self, message: str, *, org: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.org = org
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, org={self.org!r}, status={self.status!r})"


class CredlyAuthError(CredlyError):
    """401/403, or no token configured: retrying cannot help, an operator must act."""

    @classmethod
    def rejected(cls, org: str, status: int, service: str = "Credly") -> CredlyAuthError:
        return cls(
            f"{service} rejected the token for organization {org} ({status})", org=org, status=status
        )


class CredlyNotFound(CredlyError):
    """404: the organization, badge or event does not exist (for this token)."""


class CredlyValidationError(CredlyError):
    """422: Credly refused the body; ``credly_message`` is Credly's own explanation."""

    def __init__(
        self, message: str, *, org: str | None = None, status: int | None = 422,
        credly_message: str = "",
    ) -> None:
        super().__init__(message, org=org, status=status)
        self.credly_message = credly_message


class CredlyRateLimited(CredlyError):
    """429: retry no earlier than ``retry_after`` seconds (None when Credly gave no hint)."""

    def __init__(
        self, message: str, *, org: str | None = None, status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, org=org, status=status)
        self.retry_after = retry_after


class CredlyServerError(CredlyError):
    """5xx (or another unexpected status): transient; a POST may still have been stored."""

    def __init__(
        self, message: str, *, org: str | None = None, status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, org=org, status=status)
        self.retry_after = retry_after


class CredlyUnavailable(CredlyError):
    """Timeout, connection error or unreadable answer: the outcome of the call is UNKNOWN."""
