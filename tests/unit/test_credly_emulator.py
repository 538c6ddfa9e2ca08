"""The emulator itself: Credly behaviour, control endpoints, webhooks, run modes."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from badges.credly.client import CredlyClient
from badges.credly.emulator import DEMO_ORG, DEMO_TOKEN, EmulatorServer, load_seed, serve
from badges.credly.errors import CredlyUnavailable
from badges.embedded_broker import free_port
from tests.support.credly import (
    ORG,
    TEMPLATE,
    TOKEN,
    credly,
    credly_client,
    credly_emulator,
    issue_request,
    make_seed,
    running_emulator,
    tokens,
)

__all__ = ["credly", "credly_emulator"]

GOOD_BODY = {"recipient_email": "ada@example.com", "issued_to_first_name": "Ada",
             "issued_to_last_name": "Lovelace", "badge_template_id": TEMPLATE,
             "issued_at": "2024-05-01 10:20:30 +0000"}


def basic(raw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(http: aiohttp.ClientSession, method: str, url: str, *,
               headers: dict[str, str] | None = None, **kw: Any) -> tuple[int, Any]:
    async with http.request(method, url, headers=headers, **kw) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None)


# --- Credly behaviour --------------------------------------------------------------------


async def test_basic_auth_variants(credly_emulator: EmulatorServer,
                                   http: aiohttp.ClientSession) -> None:
    url = credly_emulator.api_url + f"organizations/{ORG}"
    assert (await call(http, "GET", url, headers=basic(TOKEN)))[0] == 200
    assert (await call(http, "GET", url, headers=basic(TOKEN + ":")))[0] == 200  # user:""
    assert (await call(http, "GET", url))[0] == 401
    assert (await call(http, "GET", url, headers=basic("bad")))[0] == 401
    assert (await call(http, "GET", url, headers={"Authorization": "Basic !!!"}))[0] == 401
    assert (await call(http, "GET", url, headers={"Authorization": f"Bearer {TOKEN}"}))[0] == 401


async def test_issue_validation(credly_emulator: EmulatorServer,
                                http: aiohttp.ClientSession) -> None:
    url = credly_emulator.api_url + f"organizations/{ORG}/badges"
    status, doc = await call(http, "POST", url, headers=basic(TOKEN), json={})
    assert status == 422
    assert {e["attribute"] for e in doc["data"]["errors"]} == {
        "recipient_email", "issued_to_first_name", "issued_to_last_name",
        "badge_template_id", "issued_at"}
    for field, value in [("issued_at", "2024-05-01T10:20:30Z"), ("recipient_email", "nope"),
                         ("badge_template_id", "no-such-template")]:
        status, doc = await call(http, "POST", url, headers=basic(TOKEN),
                                 json={**GOOD_BODY, field: value})
        assert status == 422 and doc["data"]["errors"][0]["attribute"] == field
    status, _ = await call(http, "POST", url, headers=basic(TOKEN), data=b"{not json")
    assert status == 400
    status, doc = await call(http, "POST", url + "/", headers=basic(TOKEN), json=GOOD_BODY)
    assert status == 201 and doc["data"]["state"] == "pending"  # trailing slash accepted
    status, doc = await call(http, "POST", url, headers=basic(TOKEN), json=GOOD_BODY)
    assert status == 422 and "already has this badge" in doc["data"]["message"]


async def test_pagination_metadata_is_absolute(http: aiohttp.ClientSession) -> None:
    async with running_emulator(make_seed(active=5, archived=0, page_size=2)) as server:
        url = server.api_url + f"organizations/{ORG}/badge_templates?filter=state::active"
        _, first = await call(http, "GET", url, headers=basic(TOKEN))
        meta = first["metadata"]
        assert (meta["total_pages"], meta["total_count"], meta["count"]) == (3, 5, 2)
        assert meta["previous_page_url"] is None
        assert meta["next_page_url"].startswith(server.url + "/v1/organizations/")
        _, last = await call(http, "GET", meta["next_page_url"].replace("page=2", "page=3"),
                             headers=basic(TOKEN))
        assert last["metadata"]["next_page_url"] is None
        assert "filter=state" in last["metadata"]["previous_page_url"]
        status, _ = await call(http, "GET", url.replace("state::active", "color::red"),
                               headers=basic(TOKEN))
        assert status == 400  # unknown filter keys are refused, not ignored


# --- control endpoints -------------------------------------------------------------------


async def test_control_endpoints(credly_emulator: EmulatorServer,
                                 http: aiohttp.ClientSession) -> None:
    ctl = credly_emulator.url + "/_emulator"
    status, summary = await call(http, "POST", ctl + "/seed", json={
        "organizations": [{"uuid": "org-x", "name": "X", "token": "tok-x-secret"}],
        "templates": [{"uuid": "tpl-x", "org": "org-x", "name": "T", "state": "draft"}]})
    assert status == 200 and "tok-x-secret" not in json.dumps(summary)
    assert "org-x" in {o["id"] for o in summary["organizations"]}

    status, _ = await call(http, "POST", ctl + "/faults", json={"mode": "bogus"})
    assert status == 400
    status, _ = await call(http, "POST", ctl + "/faults",
                           json={"mode": "status", "status": 500, "method": "GET",
                                 "path": "/badge_templates"})
    assert status == 201
    both = tokens({ORG: TOKEN, "org-x": "tok-x-secret"})
    async with credly_client(credly_emulator, both) as client:
        await client.get_organization(ORG)  # the path does not match the fault
        assert await client.list_badge_templates("org-x") == []  # 500 retried; draft only
        await client.issue_badge(ORG, issue_request())
    _, faults = await call(http, "GET", ctl + "/faults")
    assert faults == []  # consumed once

    _, requests = await call(http, "GET", ctl + "/requests?method=GET&path=badge_templates")
    assert [r["status"] for r in requests] == [500, 200]
    _, badges = await call(http, "GET", ctl + "/badges?org=" + ORG)
    assert [b["recipient_email"] for b in badges] == ["ada@example.com"]

    await call(http, "DELETE", ctl + "/requests")
    assert (await call(http, "GET", ctl + "/requests"))[1] == []
    _, summary = await call(http, "POST", ctl + "/reset")
    assert summary["organizations"] == [] and summary["badges"] == 0


async def test_webhook_event_delivery_and_fetch(credly: CredlyClient,
                                                credly_emulator: EmulatorServer,
                                                http: aiohttp.ClientSession) -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def webhook(request: web.Request) -> web.Response:
        await received.put(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/credly/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        status, result = await call(
            http, "POST", credly_emulator.url + "/_emulator/events",
            json={"organization_id": ORG, "event_type": "badge_template.deleted",
                  "badge_template_id": TEMPLATE,
                  "deliver_to": f"http://127.0.0.1:{port}/credly/webhook"})
    finally:
        await runner.cleanup()
    assert status == 201 and result["delivery_status"] == 204
    note = received.get_nowait()
    assert set(note) == {"id", "organization_id", "event_type", "occurred_at"}  # ids only
    event = await credly.get_event(note["organization_id"], note["id"])
    assert event.event_type == "badge_template.deleted"
    assert event.badge_template is not None and event.badge_template.id == TEMPLATE
    assert TEMPLATE not in {t.id for t in await credly.list_badge_templates(ORG)}


async def test_store_then_drop_stores_but_the_client_never_hears(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    credly_emulator.state.add_fault(mode="store_then_drop", method="POST")
    with pytest.raises(CredlyUnavailable):
        await credly.issue_badge(ORG, issue_request())
    assert len(credly_emulator.state.list_badges()) == 1


# --- run modes -----------------------------------------------------------------------------


def test_background_thread_mode() -> None:
    server = EmulatorServer(make_seed()).start_in_thread()
    try:
        request = urllib.request.Request(server.api_url + f"organizations/{ORG}",
                                         headers=basic(TOKEN))
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert json.load(resp)["data"]["name"] == "ACME Learning"
        assert len(server.state.recorded()) == 1
    finally:
        server.stop_thread()


async def test_serve_with_the_demo_seed() -> None:
    port = free_port()
    task = asyncio.create_task(serve("127.0.0.1", port, None))
    client = CredlyClient(f"http://127.0.0.1:{port}/v1/", tokens({DEMO_ORG: DEMO_TOKEN}),
                          backoff_initial_s=0.05, backoff_max_s=0.2, max_attempts=50)
    try:
        org = await client.get_organization(DEMO_ORG)  # retried until the server listens
        assert org.name == "Demo Organization"
        assert len(await client.list_badge_templates(DEMO_ORG)) == 3  # archived one left out
    finally:
        await client.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_load_seed(tmp_path: Path, suffix: str) -> None:
    seed = make_seed()
    path = tmp_path / f"seed{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(seed))
    else:
        import yaml
        path.write_text(yaml.safe_dump(seed))
    assert load_seed(path) == seed
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just a list\n")
    with pytest.raises(ValueError):
        load_seed(bad)
