"""Run the Credly emulator in tests: seeds, a server fixture and a fast-retrying client.

Import the fixtures into a test module (``from tests.support.credly import credly_emulator``) or
use the context managers directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest_asyncio

from badges.credly.client import CredlyClient
from badges.credly.emulator import EmulatorServer
from badges.credly.models import IssueRequest

ORG = "0b8a3f0e-0000-4000-8000-000000000001"
TOKEN = "tok-ACME-7f3c9e21d4b86a50-secret"
OTHER_ORG = "0b8a3f0e-0000-4000-8000-000000000002"
OTHER_TOKEN = "tok-OTHER-1a2b3c4d5e6f-secret"
TEMPLATE = "7d4f6a52-0000-4000-8000-0000000000aa"
ARCHIVED_TEMPLATE = "7d4f6a52-0000-4000-8000-0000000000ff"


def template_id(n: int) -> str:
    return f"7d4f6a52-0000-4000-8000-{n:012x}"


def make_seed(*, active: int = 3, archived: int = 1, page_size: int = 50) -> dict[str, Any]:
    """Two organizations; ORG holds TEMPLATE, ``active - 1`` more active ones and archived ones."""
    templates: list[dict[str, Any]] = [{"uuid": TEMPLATE, "org": ORG, "name": "Demo Completion",
                  "description": "Completed the demo", "image_url": "https://img/demo.png",
                  "state": "active"}]
    templates += [{"uuid": template_id(n), "org": ORG, "name": f"Active {n}",
                   "description": f"active template {n}", "image_url": None, "state": "active"}
                  for n in range(1, active)]
    templates += [{"uuid": ARCHIVED_TEMPLATE if n == 0 else template_id(1000 + n), "org": ORG,
                   "name": f"Archived {n}", "description": "", "state": "archived"}
                  for n in range(archived)]
    templates.append({"uuid": template_id(5000), "org": OTHER_ORG, "name": "Other org",
                      "state": "active"})
    return {
        "page_size": page_size,
        "organizations": [{"uuid": ORG, "name": "ACME Learning", "token": TOKEN},
                          {"uuid": OTHER_ORG, "name": "Other Org", "token": OTHER_TOKEN}],
        "templates": templates,
    }


def tokens(mapping: dict[str, str] | None = None) -> Callable[[str], str]:
    """A ``token_for`` over a dict; a missing organization raises KeyError like os.environ."""
    table = dict({ORG: TOKEN, OTHER_ORG: OTHER_TOKEN} if mapping is None else mapping)
    return table.__getitem__


def issue_request(email: str = "ada@example.com", template: str = TEMPLATE,
                  name: str = "Ada Lovelace", completed_at: str = "2024-05-01T10:20:30+02:00",
                  **extra: Any) -> IssueRequest:
    """``extra``: earner_id, expires_at, evidence (SPEC §8)."""
    return IssueRequest.for_learner(email=email, full_name=name, username="ada",
                                    badge_template_id=template, completed_at=completed_at, **extra)


@asynccontextmanager
async def running_emulator(seed: dict[str, Any] | None = None,
                           **kwargs: Any) -> AsyncIterator[EmulatorServer]:
    server = EmulatorServer(make_seed() if seed is None else seed, **kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def credly_client(server: EmulatorServer, token_for: Callable[[str], str] | None = None,
                        **overrides: Any) -> AsyncIterator[CredlyClient]:
    """Short timeout and backoff so that failure tests stay fast (never below correctness)."""
    options: dict[str, Any] = {"timeout_s": 1.0, "max_attempts": 4, "backoff_initial_s": 0.01,
                               "backoff_max_s": 0.05, "rate_per_s": 1000.0}
    options.update(overrides)
    client = CredlyClient(server.api_url, token_for or tokens(), **options)
    try:
        yield client
    finally:
        await client.close()


@pytest_asyncio.fixture
async def credly_emulator() -> AsyncIterator[EmulatorServer]:
    async with running_emulator() as server:
        yield server


@pytest_asyncio.fixture
async def credly(credly_emulator: EmulatorServer) -> AsyncIterator[CredlyClient]:
    async with credly_client(credly_emulator) as client:
        yield client
