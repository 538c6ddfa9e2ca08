"""The admin API's bearer token (``BADGES_ADMIN_TOKEN``).

No token configured: every admin action is refused (403), so a worker started without one is
read-only. The comparison is constant-time; neither the expected nor the offered token ever
appears in a response or a log line.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from pydantic import SecretStr

from badges.web.http import HttpError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="badges admin"'}


def require_admin(request: web.Request, expected: SecretStr | None) -> None:
    token = expected.get_secret_value() if expected is not None else ""
    if not token:
        raise HttpError(403, "admin actions are disabled: BADGES_ADMIN_TOKEN is not set on this worker")
    header = request.headers.get("Authorization", "")
    scheme, _, offered = header.partition(" ")
    if scheme.lower() != "bearer" or not offered.strip():
        raise HttpError(401, "admin action: send Authorization: Bearer <BADGES_ADMIN_TOKEN>", _CHALLENGE)
    if not hmac.compare_digest(offered.strip().encode(), token.encode()):
        raise HttpError(401, "admin action: the bearer token is not valid", _CHALLENGE)
