"""“Sign in with Open edX”: the LMS's OAuth2 provider, for staff only (docs/CONTRACT.md "Who may see what").

On when ``BADGES_LMS_URL``, ``BADGES_OAUTH_CLIENT_ID`` and ``BADGES_OAUTH_CLIENT_SECRET`` are
set (an OAuth2 application created in the LMS admin, ``/admin/oauth2_provider/application/``:
confidential, authorization code, redirect URI ``{BADGES_WEB_CANONICAL_URL}/login/oauth/complete``).

The flow is the one Open edX services (auth-backends' ``EdXOAuth2``) use: the browser goes to
``{LMS}/oauth2/authorize`` with a random ``state`` kept in the session; the LMS sends it back
with a code; the worker exchanges the code at ``{LMS}/oauth2/access_token`` (client id and
secret, ``token_type=jwt``) and reads the user from the JWT's claims. The token comes straight
from the LMS over the worker's own connection (authenticated by the client secret), so its
claims are trusted as received, as auth-backends does. Only a user whose ``administrator``
claim (LMS ``is_staff``) is true is signed in, with the viewer role: admin actions keep needing
the admin token.
"""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp_session import get_session
from yarl import URL

from badges.config.settings import Settings
from badges.web.http import HttpError

log = logging.getLogger(__name__)

SETTINGS: web.AppKey[Settings] = web.AppKey("badges_oauth_settings", Settings)
START, COMPLETE = "/login/oauth", "/login/oauth/complete"
SCOPE = "user_id profile email"
TIMEOUT_S = 10.0


def configured(settings: Settings) -> bool:
    return bool(settings.lms_url and settings.oauth_client_id and settings.oauth_client_secret
                and settings.oauth_client_secret.get_secret_value())


def enabled(request: web.Request) -> bool:
    settings = request.app.get(SETTINGS)
    return settings is not None and configured(settings)


def _settings(request: web.Request) -> Settings:
    settings = request.app.get(SETTINGS)
    if settings is None or not configured(settings):
        raise HttpError(404, "sign-in with Open edX is not configured on this worker")
    return settings


def _lms(settings: Settings, path: str) -> URL:
    return URL(str(settings.lms_url).rstrip("/") + path)


def _redirect_uri(settings: Settings) -> str:
    return settings.web_url + COMPLETE


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT received from the LMS's token endpoint (see the module docstring)."""
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, orjson.JSONDecodeError):
        raise HttpError(502, "the LMS answered with an access token that is not a JWT") from None
    if not isinstance(claims, dict):
        raise HttpError(502, "the LMS answered with an access token that is not a JWT")
    return claims


async def start(request: web.Request) -> web.StreamResponse:
    from badges.web.signin import safe_next

    settings = _settings(request)
    session = await get_session(request)
    state = secrets.token_urlsafe(32)
    session["oauth_state"] = state
    session["oauth_next"] = safe_next(request.query.get("next"))
    target = _lms(settings, "/oauth2/authorize").with_query(
        response_type="code", client_id=settings.oauth_client_id or "", redirect_uri=_redirect_uri(settings),
        scope=SCOPE, state=state)
    raise web.HTTPFound(str(target))


async def _exchange(settings: Settings, code: str) -> dict[str, Any]:
    secret = settings.oauth_client_secret.get_secret_value() if settings.oauth_client_secret else ""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": _redirect_uri(settings),
            "client_id": settings.oauth_client_id or "", "client_secret": secret, "token_type": "jwt"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as client:
            async with client.post(_lms(settings, "/oauth2/access_token"), data=form) as resp:
                if resp.status != 200:
                    raise HttpError(502, f"the LMS refused the sign-in code ({resp.status})")
                doc = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise HttpError(502, f"the LMS did not answer the sign-in ({type(exc).__name__})") from None
    token = doc.get("access_token") if isinstance(doc, dict) else None
    if not isinstance(token, str):
        raise HttpError(502, "the LMS answered without an access token")
    return jwt_claims(token)


async def complete(request: web.Request) -> web.StreamResponse:
    from badges.web.signin import start_session

    settings = _settings(request)
    session = await get_session(request)
    expected = str(session.pop("oauth_state", ""))
    target = str(session.pop("oauth_next", "/"))
    offered = request.query.get("state", "")
    if not expected or not hmac.compare_digest(offered.encode(), expected.encode()):
        raise HttpError(403, "the sign-in did not start here or has expired; sign in again")
    if "error" in request.query or not request.query.get("code"):
        raise HttpError(403, f"the LMS did not sign you in ({request.query.get('error', 'no code')})")
    claims = await _exchange(settings, request.query["code"])
    username = str(claims.get("preferred_username") or claims.get("sub") or "?")
    if claims.get("administrator") is not True:
        log.warning("Open edX sign-in refused for %s: not staff", username)
        raise HttpError(403, "only Open edX staff may sign in here")
    await start_session(request, "viewer", user=username)
    log.info("Open edX sign-in of staff user %s", username)
    raise web.HTTPSeeOther(target)


def install(web_app: web.Application, settings: Settings) -> None:
    web_app[SETTINGS] = settings
