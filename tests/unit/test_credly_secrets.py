"""Tokens never appear in error messages, reprs, tracebacks or logs (HELPERS.md: security)."""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from badges.credly.client import CredlyClient, _credly_message
from badges.credly.emulator import EmulatorServer
from badges.credly.errors import CredlyError
from badges.credly.issuer import issue_once
from tests.support.credly import (
    ARCHIVED_TEMPLATE,
    ORG,
    OTHER_ORG,
    TOKEN,
    credly_client,
    credly_emulator,
    issue_request,
)

__all__ = ["credly_emulator"]

WRONG = "wrong-SECRET-token-4f9a8b7c"


def secrets() -> list[str]:
    out = []
    for token in (TOKEN, WRONG):
        out += [token, base64.b64encode(token.encode()).decode()]
    return out


def assert_clean(text: str) -> None:
    for secret in secrets():
        assert secret not in text


async def test_no_token_in_errors_reprs_tracebacks_or_logs(
    credly_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, aiohttp's included
    table = {ORG: TOKEN, OTHER_ORG: WRONG}
    state = credly_emulator.state
    errors: list[BaseException] = []
    texts: list[str] = []

    async def expect_error(call: Callable[[], Awaitable[Any]]) -> None:
        try:
            await call()
        except CredlyError as exc:
            errors.append(exc)
        else:  # pragma: no cover - each call below must fail
            raise AssertionError("expected a CredlyError")

    async with credly_client(credly_emulator, table.__getitem__, timeout_s=0.3,
                             max_attempts=2) as client:
        texts.append(repr(client))
        await expect_error(lambda: client.get_organization(OTHER_ORG))  # 401, wrong token
        await expect_error(lambda: client.issue_badge(ORG, issue_request(
            template=ARCHIVED_TEMPLATE)))  # 422
        await expect_error(lambda: client.get_event(ORG, "missing"))  # 404
        state.add_fault(mode="status", status=500, times=2, method="GET")
        await expect_error(lambda: client.get_organization(ORG))  # 5xx exhausted
        state.add_fault(mode="hang", times=2, method="GET", hang_s=30)
        await expect_error(lambda: client.get_organization(ORG))  # timeouts
        state.add_fault(mode="drop", times=4, method="GET")
        await expect_error(lambda: client.get_organization(ORG))  # connection cut
        state.add_fault(mode="rate_limit", retry_after="9999", method="GET")
        await expect_error(lambda: client.get_organization(ORG))  # 429 too long
        outcome = await issue_once(client, OTHER_ORG, issue_request(), outcome_unknown=False)
        texts.append(repr(outcome))

    assert len(errors) == 7
    for exc in errors:
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    texts.append(caplog.text)
    texts += [repr(r.to_json()) for r in state.recorded()]
    for text in texts:
        assert_clean(text)
    assert "Credly rejected the token" in caplog.text or any(
        "Credly rejected the token" in str(e) for e in errors)


def test_credly_error_bodies_are_scrubbed() -> None:
    body = f'{{"data": {{"message": "token {TOKEN} is not valid"}}}}'.encode()
    message = _credly_message(body, (TOKEN,))
    assert TOKEN not in message and "***" in message


def test_client_repr_shows_no_token() -> None:
    client = CredlyClient("https://sandbox-api.credly.com/v1/", lambda org: TOKEN)
    assert TOKEN not in repr(client) and "sandbox-api.credly.com" in repr(client)
