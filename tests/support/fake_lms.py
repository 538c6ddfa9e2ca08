"""A loopback stand-in for the Open edX LMS's OAuth2 provider (django-oauth-toolkit as the LMS
configures it): ``/oauth2/authorize`` signs in ``user`` at once and sends the browser back with
a code; ``/oauth2/access_token`` trades it, for the registered client only, for a JWT access
token whose claims are the LMS's (``preferred_username``, ``administrator`` = is_staff, ...)."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CLIENT_ID, CLIENT_SECRET = "badges-sso-client", "badges-sso-secret-4b1d"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt(claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(secrets.token_bytes(32))}"


@dataclass
class FakeLms:
    user: dict[str, Any] = field(default_factory=lambda: {"username": "staffer", "is_staff": True})
    codes: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # code -> (redirect_uri, user)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
            return web.json_response({"error": "invalid_client"}, status=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = (q["redirect_uri"], dict(self.user))
        raise web.HTTPFound(f"{q['redirect_uri']}?code={code}&state={q.get('state', '')}")

    async def access_token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_requests.append({k: str(v) for k, v in form.items()})
        grant = self.codes.pop(str(form.get("code")), None)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return web.json_response({"error": "invalid_client"}, status=401)
        if grant is None or grant[0] != form.get("redirect_uri"):
            return web.json_response({"error": "invalid_grant"}, status=400)
        user = grant[1]
        claims = {"preferred_username": user["username"], "administrator": user["is_staff"],
                  "email": f"{user['username']}@example.org", "iss": "http://lms/oauth2", "scopes": ["user_id"]}
        return web.json_response({"access_token": jwt(claims), "token_type": "JWT", "expires_in": 3600})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/oauth2/authorize", self.authorize)
        app.router.add_post("/oauth2/access_token", self.access_token)
        return app
