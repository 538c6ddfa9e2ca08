"""Who may see what (docs/CONTRACT.md "Who may see what"): the viewer and admin bearer tokens, and which paths stay open.

Roles: ``viewer`` (``BADGES_VIEWER_TOKEN``: every page and GET API, read only) and ``admin``
(``BADGES_ADMIN_TOKEN``: that and the admin actions). A token that is not configured matches
nothing, so a worker started without tokens shows learner data to nobody and refuses every
admin action. Comparisons are constant-time; neither the expected nor the offered token ever
appears in a response or a log line.

Default deny: every path needs a role except the few listed in ``OPEN_PATHS`` (health, metrics,
the Credly webhook, the sign-in form and static files), so a route added later is protected
without anyone remembering to protect it.
"""

from __future__ import annotations

import hmac
from typing import Literal

from aiohttp import web
from pydantic import SecretStr

from badges.config.settings import Settings
from badges.web.http import HttpError
from badges.web.security import FailureThrottle, client_address

Role = Literal["viewer", "admin"]
ROLE: web.RequestKey[str] = web.RequestKey("badges_role", str)
# the signed-in browser's CSRF token, for the sign-out form of every page
CSRF: web.RequestKey[str] = web.RequestKey("badges_csrf", str)

OPEN_PATHS = frozenset({"/healthz", "/livez", "/metrics", "/credly/webhook", "/login", "/logout",
                        "/login/oauth", "/login/oauth/complete"})
OPEN_PREFIXES = ("/static/",)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="badges"'}


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _secret(value: SecretStr | None) -> bytes:
    return value.get_secret_value().encode() if value is not None else b""


def _matches(offered: bytes, expected: bytes) -> bool:
    return bool(expected) and hmac.compare_digest(offered, expected)


def bearer(request: web.Request) -> str | None:
    """The bearer token offered, None without an ``Authorization: Bearer`` header."""
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return offered.strip()


class Tokens:
    """The configured tokens, their roles and the throttle on wrong guesses."""

    def __init__(self, settings: Settings) -> None:
        self._admin = _secret(settings.admin_token)
        self._viewer = _secret(settings.viewer_token)
        self.throttle = FailureThrottle(settings.auth_max_failures, settings.auth_failure_window_s)

    @property
    def any_configured(self) -> bool:
        return bool(self._admin or self._viewer)

    def role_of(self, offered: str) -> Role | None:
        raw = offered.encode()
        # both compared, so the time does not tell which token a guess was near
        admin, viewer = _matches(raw, self._admin), _matches(raw, self._viewer)
        return "admin" if admin else "viewer" if viewer else None

    def check(self, request: web.Request, offered: str) -> Role | None:
        """The role of a token offered by this client, counting a wrong one (429 when over)."""
        client = client_address(request)
        self.throttle.check(client)
        role = self.role_of(offered) if offered else None
        if role is None:
            self.throttle.failed(client)
        return role

    def bearer_role(self, request: web.Request) -> Role | None:
        """None without a bearer header; 401 for a wrong token."""
        offered = bearer(request)
        if offered is None:
            return None
        role = self.check(request, offered)
        if role is None:
            raise HttpError(401, "the bearer token is not valid", _CHALLENGE)
        return role


def unauthenticated() -> HttpError:
    return HttpError(401, "sign in first: send Authorization: Bearer <BADGES_VIEWER_TOKEN or BADGES_ADMIN_TOKEN>",
                     _CHALLENGE)


def require_admin(request: web.Request, expected: SecretStr | None) -> None:
    """Admin actions: the admin bearer token only (never a session cookie, so no CSRF)."""
    token = _secret(expected)
    if not token:
        raise HttpError(403, "admin actions are disabled: BADGES_ADMIN_TOKEN is not set on this worker")
    offered = bearer(request)
    if not offered:
        raise HttpError(401, "admin action: send Authorization: Bearer <BADGES_ADMIN_TOKEN>", _CHALLENGE)
    if request.get(ROLE) == "viewer":
        raise HttpError(403, "admin action: the viewer token is read only")
    if not hmac.compare_digest(offered.encode(), token):
        raise HttpError(401, "admin action: the bearer token is not valid", _CHALLENGE)
