"""Exactly-once issuing and revoking against the emulator, with injected faults."""

from __future__ import annotations

import pytest

from badges.credly.client import CredlyClient
from badges.credly.emulator import EmulatorServer
from badges.credly.issuer import issue_once, revoke_once
from badges.credly.models import evidence_summary
from tests.support.credly import (
    ARCHIVED_TEMPLATE,
    ORG,
    TOKEN,
    credly,
    credly_client,
    credly_emulator,
    issue_request,
    tokens,
)

__all__ = ["credly", "credly_emulator"]  # fixtures

REASON = "Open edX internal user credential was revoked"


def posts(server: EmulatorServer) -> list[int | None]:
    return [r.status for r in server.state.recorded("POST", "/badges$")]


def lookups(server: EmulatorServer) -> int:
    return len(server.state.recorded("GET", "/badges$"))


async def test_issue(credly: CredlyClient, credly_emulator: EmulatorServer) -> None:
    out = await issue_once(credly, ORG, issue_request(), outcome_unknown=False)
    assert out.ok and not out.reconciled and out.attempts == 1 and out.error is None
    [badge] = credly_emulator.state.list_badges()
    assert (out.badge_id, out.state) == (badge.id, "pending")
    assert posts(credly_emulator) == [201] and lookups(credly_emulator) == 0


async def test_500_500_then_ok_issues_exactly_one_badge(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    credly_emulator.state.add_fault(mode="status", status=500, times=2, method="POST")
    out = await issue_once(credly, ORG, issue_request(), outcome_unknown=False)
    assert out.ok and not out.reconciled and out.attempts == 3
    assert len(credly_emulator.state.list_badges()) == 1
    assert posts(credly_emulator) == [500, 500, 201]
    assert lookups(credly_emulator) == 2  # a 5xx may have stored it: looked up before each POST


async def test_500_after_storing_is_reconciled_without_a_second_post(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    credly_emulator.state.add_fault(mode="store_then_status", status=502, method="POST")
    out = await issue_once(credly, ORG, issue_request(), outcome_unknown=False)
    [badge] = credly_emulator.state.list_badges()
    assert out.ok and out.reconciled and out.badge_id == badge.id and out.attempts == 2
    assert len(posts(credly_emulator)) == 1


@pytest.mark.parametrize("mode", ["store_then_hang", "store_then_drop"])
async def test_unknown_outcome_after_storing_is_reconciled_by_lookup(
    credly_emulator: EmulatorServer, mode: str
) -> None:
    credly_emulator.state.add_fault(mode=mode, method="POST", hang_s=30)
    async with credly_client(credly_emulator, timeout_s=0.3) as client:
        out = await issue_once(client, ORG, issue_request(), outcome_unknown=False)
    [badge] = credly_emulator.state.list_badges()  # no duplicate
    assert out.ok and out.reconciled and out.badge_id == badge.id and out.error is None
    assert len(posts(credly_emulator)) == 1 and lookups(credly_emulator) == 1


async def test_422_already_issued_is_reconciled(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    first = await credly.issue_badge(ORG, issue_request())
    out = await issue_once(credly, ORG, issue_request(email="Ada@Example.com"),
                           outcome_unknown=False)
    assert out.ok and out.reconciled and out.badge_id == first.id and out.attempts == 1
    assert posts(credly_emulator) == [201, 422]
    assert len(credly_emulator.state.list_badges()) == 1


async def test_real_validation_error_fails_with_credly_message(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    out = await issue_once(credly, ORG, issue_request(template=ARCHIVED_TEMPLATE),
                           outcome_unknown=False)
    assert not out.ok and out.error_type == "CredlyValidationError"
    assert out.error is not None and "only active templates can issue badges" in out.error
    assert out.attempts == 1 and not out.outcome_unknown
    assert posts(credly_emulator) == [422] and lookups(credly_emulator) == 1


async def test_previous_unknown_outcome_looks_up_first(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    first = await credly.issue_badge(ORG, issue_request())
    out = await issue_once(credly, ORG, issue_request(), outcome_unknown=True)
    assert out.ok and out.reconciled and out.badge_id == first.id
    assert posts(credly_emulator) == [201]  # only the original one


async def test_previous_unknown_outcome_not_found_issues(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    out = await issue_once(credly, ORG, issue_request(), outcome_unknown=True)
    assert out.ok and not out.reconciled
    kinds = [(r.method, r.status) for r in credly_emulator.state.recorded()]
    assert kinds == [("GET", 200), ("POST", 201)]


async def test_a_revoked_badge_of_another_completion_does_not_count_as_issued(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    old = await credly.issue_badge(ORG, issue_request(completed_at="2023-01-02T03:04:05+00:00"))
    await credly.revoke_badge(ORG, old.id, REASON)
    out = await issue_once(credly, ORG, issue_request(), outcome_unknown=True)
    assert out.ok and not out.reconciled and out.badge_id != old.id


async def test_a_revoked_badge_of_this_completion_is_the_one_issued(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    # a crash lost the outcomes of the issue and of the revoke after it: never a second badge
    ours = await credly.issue_badge(ORG, issue_request())
    await credly.revoke_badge(ORG, ours.id, REASON)
    out = await issue_once(credly, ORG, issue_request(), outcome_unknown=True)
    assert out.ok and out.reconciled and out.badge_id == ours.id and out.state == "revoked"
    assert posts(credly_emulator) == [201]


@pytest.mark.parametrize("rendered", ["2024-05-01T08:20:30.000Z", "2024-05-01T03:20:30-05:00",
                                      "2024-05-01 08:20:30 +0000"])
def test_issued_at_is_compared_as_an_instant(rendered: str) -> None:
    from badges.credly.issuer import _instant

    assert _instant(rendered) == _instant(issue_request().issued_at)
    assert _instant("not a time") is None and _instant(None) is None


async def test_lookup_failures_never_lead_to_a_blind_post(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    credly_emulator.state.add_fault(mode="status", status=503, times=100, method="GET")
    out = await issue_once(credly, ORG, issue_request(), outcome_unknown=True)
    assert not out.ok and out.outcome_unknown and out.attempts == credly.max_attempts
    assert posts(credly_emulator) == []


async def test_429_waits_for_retry_after_then_issues(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    credly_emulator.state.add_fault(mode="rate_limit", retry_after="1", method="POST")
    out = await issue_once(credly, ORG, issue_request(), outcome_unknown=False)
    assert out.ok and out.attempts == 2
    first, second = credly_emulator.state.recorded("POST")
    assert (first.status, second.status) == (429, 201)
    assert second.at - first.at >= 1.0
    assert lookups(credly_emulator) == 0  # a 429 stored nothing


async def test_rejected_token_fails_at_once(credly_emulator: EmulatorServer) -> None:
    async with credly_client(credly_emulator, tokens({ORG: "nope"})) as client:
        out = await issue_once(client, ORG, issue_request(), outcome_unknown=False)
    assert not out.ok and out.attempts == 1 and out.error_type == "CredlyAuthError"
    assert out.error == f"Credly rejected the token for organization {ORG} (401)"
    assert len(credly_emulator.state.recorded()) == 1


async def test_not_found_fails_at_once(credly_emulator: EmulatorServer) -> None:
    unknown = "0b8a3f0e-0000-4000-8000-00000000dead"
    async with credly_client(credly_emulator, tokens({unknown: TOKEN})) as client:
        out = await issue_once(client, unknown, issue_request(), outcome_unknown=False)
    assert not out.ok and out.attempts == 1 and out.error_type == "CredlyNotFound"
    assert len(credly_emulator.state.recorded()) == 1


async def test_5xx_exhausted_fails_with_the_last_error(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    credly_emulator.state.add_fault(mode="status", status=500, times=3, method="POST")
    credly_emulator.state.add_fault(mode="status", status=503, times=100, method="POST")
    out = await issue_once(credly, ORG, issue_request(), outcome_unknown=False)
    assert not out.ok and out.attempts == credly.max_attempts
    assert out.error_type == "CredlyServerError" and out.error is not None and "503" in out.error
    assert out.outcome_unknown  # the caller must look up before its next try
    assert credly_emulator.state.list_badges() == []


async def test_timeouts_exhausted_leave_the_outcome_unknown(
    credly_emulator: EmulatorServer,
) -> None:
    credly_emulator.state.add_fault(mode="hang", times=100, method="POST", hang_s=30)
    async with credly_client(credly_emulator, timeout_s=0.2, max_attempts=3) as client:
        out = await issue_once(client, ORG, issue_request(), outcome_unknown=False)
    assert not out.ok and out.outcome_unknown and out.error_type == "CredlyUnavailable"
    assert len(posts(credly_emulator)) == 3 and lookups(credly_emulator) == 2


async def test_revoke(credly: CredlyClient, credly_emulator: EmulatorServer) -> None:
    badge = await credly.issue_badge(ORG, issue_request())
    out = await revoke_once(credly, ORG, badge.id, reason=REASON)
    assert out.ok and out.state == "revoked" and not out.already_revoked and out.attempts == 1
    assert credly_emulator.state.badges[badge.id].revoke_reason == REASON


async def test_revoke_already_revoked_is_success(credly: CredlyClient) -> None:
    badge = await credly.issue_badge(ORG, issue_request())
    await credly.revoke_badge(ORG, badge.id, REASON)
    out = await revoke_once(credly, ORG, badge.id, reason=REASON)
    assert out.ok and out.already_revoked and out.state == "revoked"


async def test_revoke_retries_on_500(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    badge = await credly.issue_badge(ORG, issue_request())
    credly_emulator.state.add_fault(mode="status", status=500, times=2, method="PUT")
    out = await revoke_once(credly, ORG, badge.id, reason=REASON)
    assert out.ok and out.attempts == 3 and not out.already_revoked
    assert [r.status for r in credly_emulator.state.recorded("PUT")] == [500, 500, 200]


async def test_revoke_timeout_after_revoking_is_success(credly_emulator: EmulatorServer) -> None:
    async with credly_client(credly_emulator, timeout_s=0.3) as client:
        badge = await client.issue_badge(ORG, issue_request())
        credly_emulator.state.add_fault(mode="store_then_hang", method="PUT", hang_s=30)
        out = await revoke_once(client, ORG, badge.id, reason=REASON)
    assert out.ok and out.already_revoked and out.attempts == 2


async def test_revoke_unknown_badge_fails_at_once(credly: CredlyClient) -> None:
    out = await revoke_once(credly, ORG, "00000000-0000-0000-0000-000000000000", reason=REASON)
    assert not out.ok and out.attempts == 1 and out.error_type == "CredlyNotFound"


# --- SPEC §8: earner id, expiry, evidence ------------------------------------------------------


async def test_issue_sends_earner_id_expiry_and_evidence_and_the_emulator_keeps_them(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    request = issue_request(earner_id=7, expires_at="2025-05-01T08:20:30+00:00",
                            evidence=evidence_summary(["demo"], "2024-05-01T10:20:30+02:00"))
    out = await issue_once(credly, ORG, request, outcome_unknown=False)
    [badge] = credly_emulator.state.list_badges()
    assert (badge.issuer_earner_id, badge.expires_at) == ("7", "2025-05-01 08:20:30 +0000")
    assert badge.evidence[0]["description"] == "demo (completed 2024-05-01 10:20:30 +0200)"
    assert out.badge_id is not None
    shown = (await credly.get_badge(ORG, out.badge_id)).model_dump()
    assert (shown["issuer_earner_id"], shown["expires_at"]) == ("7", "2025-05-01 08:20:30 +0000")


async def test_the_lookup_after_an_unknown_outcome_uses_the_earner_id(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    # the learner changed their e-mail since the issue whose outcome was lost
    ours = await credly.issue_badge(ORG, issue_request(earner_id=7))
    moved = issue_request(email="ada@new.example.com", earner_id=7)
    out = await issue_once(credly, ORG, moved, outcome_unknown=True)
    assert out.ok and out.reconciled and out.badge_id == ours.id
    [query] = [r.query for r in credly_emulator.state.recorded("GET", "/badges$")]
    assert query["filter"].startswith("issuer_earner_id::7|")
    # another earner's badge of the same template and e-mail is not ours
    other = await issue_once(credly, ORG, issue_request(email="ada@new.example.com", earner_id=8),
                             outcome_unknown=True)
    assert other.ok and not other.reconciled and other.badge_id != ours.id


async def test_an_expired_badge_is_not_the_one_a_renewal_issued(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    old = await credly.issue_badge(ORG, issue_request(
        earner_id=7, completed_at="2023-01-01T00:00:00+00:00", expires_at="2023-06-01T00:00:00+00:00"))
    out = await issue_once(credly, ORG, issue_request(earner_id=7), outcome_unknown=True)
    assert out.ok and not out.reconciled and out.badge_id != old.id
    assert len(credly_emulator.state.list_badges()) == 2
