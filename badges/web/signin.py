"""Signing in: bearer tokens for scripts, a login form and a session cookie for browsers.

The form takes a token (viewer or admin) and answers with a session cookie (aiohttp-session's
``EncryptedCookieStorage``: Fernet, so signed and encrypted; HttpOnly; SameSite=Lax; Secure when
the worker's canonical URL is https; expires after ``BADGES_SESSION_MAX_AGE_S``). The cookie
holds the role and a CSRF token, never the token signed in with.

The cookie key is ``BADGES_SESSION_SECRET``, or else derived from the admin token (else the
viewer token): every worker of a deployment that shares the tokens accepts every other worker's
cookies, which a request forwarded to a learner's owner relies on. Changing the token signs
everybody out.

A session cookie is accepted on GET and HEAD only. The two forms that change a session (login,
logout) carry a CSRF token bound to the session; admin actions take the admin bearer token
only, so a browser's cookie can never trigger one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from typing import Any, Awaitable, Callable, cast
from urllib.parse import parse_qs

from aiohttp import web
from aiohttp_session import Session, get_session, new_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from badges.config.settings import Settings
from badges.web import oauth
from badges.web.auth import CSRF, ROLE, Role, Tokens, is_open, unauthenticated
from badges.web.http import HttpError, is_api, read_body
from badges.web.render import render_page

COOKIE = "badges_session"
FORM_LIMIT = 4 * 1024
ROLES = ("viewer", "admin")
TOKENS: web.AppKey[Tokens] = web.AppKey("badges_tokens", Tokens)


def session_key(settings: Settings) -> bytes:
    """32 bytes for Fernet; random (sessions die with the process) when nothing is configured."""
    for secret in (settings.session_secret, settings.admin_token, settings.viewer_token):
        if secret is not None and secret.get_secret_value():
            return hashlib.sha256(b"badges session cookie\0" + secret.get_secret_value().encode()).digest()
    return os.urandom(32)


def _csrf(session: Session) -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def session_role(session: Session) -> Role | None:
    role = session.get("role")
    return cast(Role, role) if role in ROLES else None


def safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme): no open redirect after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_page(request: web.Request, session: Session, *, status: int = 200, error: str | None = None,
               target: str | None = None) -> web.Response:
    return render_page(request, "login.html", {
        "csrf_token": _csrf(session), "error": error, "next": safe_next(target or request.path_qs),
        "oauth": oauth.enabled(request),
    }, status=status)


def sign_in_middleware(tokens: Tokens) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Every path but the open ones needs a role: 401 JSON for APIs, the login page for HTML."""

    @web.middleware
    async def require_sign_in(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if is_open(request.path):
            return await handler(request)
        role = tokens.bearer_role(request)
        if role is None and request.method in ("GET", "HEAD"):
            session = await get_session(request)
            role = session_role(session)
            if role is not None and "csrf" in session:  # read only: no Set-Cookie on a page
                request[CSRF] = str(session["csrf"])
        if role is None:
            if is_api(request):
                raise unauthenticated()
            return login_page(request, await get_session(request), status=401)
        request[ROLE] = role
        return await handler(request)

    return require_sign_in


def install(web_app: web.Application, settings: Settings) -> Tokens:
    """Session cookies and the sign-in check on an aiohttp app (after the error middleware)."""
    tokens = Tokens(settings)
    web_app[TOKENS] = tokens
    oauth.install(web_app, settings)
    storage = EncryptedCookieStorage(
        session_key(settings), cookie_name=COOKIE, max_age=settings.session_max_age_s, httponly=True,
        samesite="Lax", secure=settings.web_url.startswith("https://"),
    )
    web_app.middlewares.append(session_middleware(storage))
    web_app.middlewares.append(sign_in_middleware(tokens))
    return tokens


async def read_form(request: web.Request) -> dict[str, str]:
    raw = await read_body(request, FORM_LIMIT)
    return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}


def check_csrf(session: Session, form: dict[str, str]) -> None:
    expected = str(session.get("csrf", ""))
    if not expected or not hmac.compare_digest(form.get("csrf_token", "").encode(), expected.encode()):
        raise HttpError(403, "the form has expired or did not come from this site; reload the page and retry")


async def start_session(request: web.Request, role: str, **extra: Any) -> Session:
    """A fresh session (a new CSRF token: nothing from before signing in carries over)."""
    session = await new_session(request)
    session["role"] = role
    session.update(extra)
    _csrf(session)
    return session


async def login_form(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    if session_role(session) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    return login_page(request, session, target=request.query.get("next"))


async def login_submit(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    form = await read_form(request)
    check_csrf(session, form)
    target = safe_next(form.get("next"))
    role = request.app[TOKENS].check(request, form.get("token", "").strip())
    if role is None:
        return login_page(request, session, status=401, error="That token is not valid.", target=target)
    await start_session(request, role)
    raise web.HTTPSeeOther(target)


async def logout(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    check_csrf(session, await read_form(request))
    session.invalidate()
    raise web.HTTPSeeOther("/login")
