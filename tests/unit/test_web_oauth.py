"""“Sign in with Open edX” against a loopback fake of the LMS's OAuth2 provider: staff get a
session, anyone else and a forged state do not."""

from __future__ import annotations

from typing import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from badges.config.settings import load_settings
from badges.embedded_broker import free_port
from badges.web import oauth, signin
from badges.web.auth import ROLE
from badges.web.http import error_middleware
from badges.web.render import SITE
from tests.support.fake_lms import CLIENT_ID, CLIENT_SECRET, FakeLms

HTML = {"Accept": "text/html"}


async def _secret_page(request: web.Request) -> web.Response:
    return web.json_response({"role": request[ROLE]})


@pytest.fixture
async def lms() -> AsyncIterator[tuple[FakeLms, str]]:
    fake = FakeLms()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


async def _client(lms_url: str | None, secret: str = CLIENT_SECRET) -> TestClient:
    port = free_port()
    settings = load_settings(viewer_token="v-tok-unit-1234", web_port=port, lms_url=lms_url,
                             oauth_client_id=CLIENT_ID if lms_url else None, oauth_client_secret=secret)
    app = web.Application()
    app[SITE] = {"app_id": "unit", "url": settings.web_url, "version": "0"}
    app.middlewares.append(error_middleware("unit"))
    signin.install(app, settings)
    app.router.add_get("/learners/1", _secret_page)
    app.router.add_get("/login", signin.login_form)
    app.router.add_get(oauth.START, oauth.start)
    app.router.add_get(oauth.COMPLETE, oauth.complete)
    client = TestClient(TestServer(app, port=port))
    await client.start_server()
    return client


async def _sign_in(client: TestClient) -> int:
    """Follow the browser's redirects through the LMS; the status of the return to the worker."""
    r = await client.get("/login/oauth?next=/learners/1", allow_redirects=False)
    assert r.status == 302
    at_lms = await client.session.get(r.headers["Location"], allow_redirects=False)
    assert at_lms.status == 302
    back = await client.session.get(at_lms.headers["Location"], allow_redirects=False, headers=HTML)
    if back.status == 303:
        assert back.headers["Location"] == "/learners/1"
    return back.status


async def test_staff_sign_in_and_get_a_viewer_session(lms: tuple[FakeLms, str]) -> None:
    fake, url = lms
    client = await _client(url)
    try:
        login = await (await client.get("/login", headers=HTML)).text()
        assert "Sign in with Open edX" in login
        assert (await client.get("/learners/1")).status == 401
        assert await _sign_in(client) == 303
        r = await client.get("/learners/1")
        assert r.status == 200 and (await r.json())["role"] == "viewer"
        sent = fake.token_requests[-1]
        assert sent["grant_type"] == "authorization_code" and sent["token_type"] == "jwt"
        assert sent["redirect_uri"] == f"{client.make_url('')}".rstrip("/") + oauth.COMPLETE
    finally:
        await client.close()


async def test_a_learner_who_is_not_staff_is_refused(lms: tuple[FakeLms, str]) -> None:
    fake, url = lms
    fake.user = {"username": "learner", "is_staff": False}
    client = await _client(url)
    try:
        assert await _sign_in(client) == 403
        assert (await client.get("/learners/1")).status == 401
    finally:
        await client.close()


async def test_a_forged_state_or_a_wrong_secret_signs_nobody_in(lms: tuple[FakeLms, str]) -> None:
    _, url = lms
    client = await _client(url)
    try:
        await client.get("/login/oauth", allow_redirects=False)  # a state exists, but not this one
        r = await client.get(f"{oauth.COMPLETE}?code=x&state=forged", headers=HTML)
        assert r.status == 403
        assert (await client.get("/learners/1")).status == 401
    finally:
        await client.close()
    client = await _client(url, secret="wrong-secret")
    try:
        assert await _sign_in(client) == 502  # the LMS refused the code exchange
        assert (await client.get("/learners/1")).status == 401
    finally:
        await client.close()


async def test_off_unless_configured() -> None:
    client = await _client(None)
    try:
        assert "Sign in with Open edX" not in await (await client.get("/login", headers=HTML)).text()
        assert (await client.get(oauth.START, allow_redirects=False)).status == 404
    finally:
        await client.close()
