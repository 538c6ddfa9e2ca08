"""Signing in on a bare aiohttp app with the worker's middlewares: tokens, the login form, the
session cookie, CSRF, throttling and the security headers (the real router is covered by
``tests/integration/test_web.py``)."""

from __future__ import annotations

import re
from typing import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from badges.config.settings import load_settings
from badges.web import signin
from badges.web.auth import ROLE, Tokens
from badges.web.http import HttpError, error_middleware
from badges.web.render import SITE, render_page
from badges.web.security import SECURITY_HEADERS, FailureThrottle, security_headers

ADMIN, VIEWER = "adm-unit-7a1c2b9d0e", "view-unit-3f8e6d5c4b"
HTML = {"Accept": "text/html"}


async def _secret_page(request: web.Request) -> web.Response:
    return web.json_response({"learner": "ada@example.com", "role": request[ROLE]})


def _app(**settings: object) -> web.Application:
    app = web.Application()
    app[SITE] = {"app_id": "unit", "url": "http://unit", "version": "0"}
    app.middlewares.append(security_headers)
    app.middlewares.append(error_middleware("unit"))
    signin.install(app, load_settings(admin_token=ADMIN, viewer_token=VIEWER, **settings))
    app.router.add_get("/api/learners/1", _secret_page)
    app.router.add_get("/learners/1", _secret_page)
    app.router.add_get("/page", lambda r: render_page(r, "find_learner.html", {}))  # type: ignore[arg-type, return-value]  # aiohttp also takes a plain function
    app.router.add_get("/healthz", lambda r: web.json_response({"ok": True}))  # type: ignore[arg-type, return-value]  # aiohttp also takes a plain function
    app.router.add_get("/login", signin.login_form)
    app.router.add_post("/login", signin.login_submit)
    app.router.add_post("/logout", signin.logout)
    return app


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(_app(auth_max_failures=3, auth_failure_window_s=60))) as c:
        yield c


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def test_bearer_tokens_and_roles(client: TestClient) -> None:
    r = await client.get("/api/learners/1")
    assert r.status == 401 and "ada@" not in await r.text()
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = await client.get("/api/learners/1", headers={"Authorization": f"Bearer {VIEWER}"})
    assert r.status == 200 and (await r.json())["role"] == "viewer"
    r = await client.get("/api/learners/1", headers={"Authorization": f"Bearer {ADMIN}"})
    assert (await r.json())["role"] == "admin"
    r = await client.get("/healthz")
    assert r.status == 200


async def test_html_without_sign_in_gets_the_login_page(client: TestClient) -> None:
    r = await client.get("/learners/1", headers=HTML)
    text = await r.text()
    assert r.status == 401 and "Sign in" in text and "ada@" not in text
    assert 'name="next" value="/learners/1"' in text


async def test_login_form_sets_a_signed_httponly_cookie(client: TestClient) -> None:
    form = await (await client.get("/login?next=/learners/1", headers=HTML)).text()
    r = await client.post("/login", data={"csrf_token": _csrf(form), "token": VIEWER, "next": "/learners/1"},
                          allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/learners/1"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and VIEWER not in cookie
    r = await client.get("/learners/1", headers=HTML)
    assert r.status == 200 and (await r.json())["role"] == "viewer"
    # a session cookie is read-only: it never authenticates anything but GET/HEAD
    r = await client.post("/api/learners/1")
    assert r.status in (401, 405)


async def test_tampered_cookie_is_refused(client: TestClient) -> None:
    client.session.cookie_jar.update_cookies({signin.COOKIE: "gAAAAABforged"})
    assert (await client.get("/api/learners/1")).status == 401


async def test_login_needs_the_csrf_token_of_the_session(client: TestClient) -> None:
    await client.get("/login", headers=HTML)
    r = await client.post("/login", data={"csrf_token": "forged", "token": VIEWER}, allow_redirects=False)
    assert r.status == 403
    assert (await client.get("/api/learners/1")).status == 401


async def test_logout_needs_csrf_and_ends_the_session(client: TestClient) -> None:
    form = await (await client.get("/login", headers=HTML)).text()
    await client.post("/login", data={"csrf_token": _csrf(form), "token": ADMIN}, allow_redirects=False)
    page = await (await client.get("/page", headers=HTML)).text()
    assert "Sign out" in page
    assert (await client.post("/logout", data={"csrf_token": "x"}, allow_redirects=False)).status == 403
    assert (await client.get("/api/learners/1")).status == 200
    r = await client.post("/logout", data={"csrf_token": _csrf(page)}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/login"
    assert (await client.get("/api/learners/1")).status == 401


async def test_open_redirect_is_refused(client: TestClient) -> None:
    form = await (await client.get("/login", headers=HTML)).text()
    r = await client.post("/login", data={"csrf_token": _csrf(form), "token": VIEWER, "next": "//evil.example/x"},
                          allow_redirects=False)
    assert r.headers["Location"] == "/"


async def test_failed_attempts_are_throttled(client: TestClient) -> None:
    for _ in range(3):
        assert (await client.get("/api/learners/1", headers={"Authorization": "Bearer wrong"})).status == 401
    r = await client.get("/api/learners/1", headers={"Authorization": f"Bearer {VIEWER}"})
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
    form = await (await client.get("/login", headers=HTML)).text()
    r = await client.post("/login", data={"csrf_token": _csrf(form), "token": VIEWER}, allow_redirects=False)
    assert r.status == 429


async def test_security_headers_on_every_answer(client: TestClient) -> None:
    for path in ("/healthz", "/api/learners/1", "/nothing"):
        r = await client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert r.headers[name] == value, (path, name)


def test_throttle_window_slides() -> None:
    now = [0.0]
    throttle = FailureThrottle(2, 10.0, clock=lambda: now[0])
    throttle.failed("a")
    throttle.failed("a")
    with pytest.raises(HttpError):
        throttle.check("a")
    throttle.check("b")
    now[0] = 10.5
    throttle.check("a")


def test_tokens_match_only_when_configured() -> None:
    tokens = Tokens(load_settings(admin_token=ADMIN))
    assert tokens.role_of(ADMIN) == "admin"
    assert tokens.role_of("") is None and tokens.role_of(VIEWER) is None


def test_session_key_agrees_across_workers_sharing_the_admin_token() -> None:
    one = signin.session_key(load_settings(admin_token=ADMIN))
    assert one == signin.session_key(load_settings(admin_token=ADMIN, viewer_token=VIEWER))
    assert one != signin.session_key(load_settings(admin_token=ADMIN, session_secret="other"))
    assert signin.session_key(load_settings()) != signin.session_key(load_settings())  # random
