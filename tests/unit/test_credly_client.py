"""CredlyClient against the emulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64

import pytest

from badges.credly.client import CredlyClient, authorization_header
from badges.credly.emulator import EmulatorServer
from badges.credly.errors import (
    CredlyAuthError,
    CredlyError,
    CredlyNotFound,
    CredlyRateLimited,
    CredlyServerError,
    CredlyUnavailable,
    CredlyValidationError,
)
from tests.support.credly import (
    ARCHIVED_TEMPLATE,
    ORG,
    OTHER_ORG,
    TEMPLATE,
    TOKEN,
    credly,
    credly_client,
    credly_emulator,
    issue_request,
    make_seed,
    running_emulator,
    template_id,
    tokens,
)

__all__ = ["credly", "credly_emulator"]  # fixtures


async def test_get_organization(credly: CredlyClient, credly_emulator: EmulatorServer) -> None:
    org = await credly.get_organization(ORG)
    assert (org.id, org.name) == (ORG, "ACME Learning")
    [call] = credly_emulator.state.recorded("GET")
    assert call.path == f"/v1/organizations/{ORG}/" and call.status == 200


def test_authorization_header_is_base64_of_the_token() -> None:
    assert authorization_header("abc") == "Basic " + base64.b64encode(b"abc").decode()


async def test_wrong_token_is_rejected_with_a_clear_error(
    credly_emulator: EmulatorServer,
) -> None:
    async with credly_client(credly_emulator, tokens({ORG: "not-the-token"})) as client:
        with pytest.raises(CredlyAuthError) as err:
            await client.get_organization(ORG)
    assert str(err.value) == f"Credly rejected the token for organization {ORG} (401)"
    assert err.value.status == 401
    assert len(credly_emulator.state.recorded()) == 1  # never retried


async def test_token_of_another_organization_is_forbidden(
    credly_emulator: EmulatorServer,
) -> None:
    async with credly_client(credly_emulator, tokens({OTHER_ORG: TOKEN})) as client:
        with pytest.raises(CredlyAuthError) as err:
            await client.get_organization(OTHER_ORG)
    assert str(err.value) == f"Credly rejected the token for organization {OTHER_ORG} (403)"


async def test_missing_token_fails_before_any_request(credly_emulator: EmulatorServer) -> None:
    async with credly_client(credly_emulator, tokens({})) as client:
        with pytest.raises(CredlyAuthError, match=f"no Credly token .* {ORG}"):
            await client.get_organization(ORG)
    assert credly_emulator.state.recorded() == []


async def test_unknown_organization_is_not_found(credly: CredlyClient) -> None:
    unknown = "0b8a3f0e-0000-4000-8000-00000000dead"
    client = CredlyClient(credly.base_url, tokens({unknown: TOKEN}))
    try:
        with pytest.raises(CredlyNotFound, match="404"):
            await client.get_organization(unknown)
    finally:
        await client.close()


async def test_templates_every_page_only_active() -> None:
    async with running_emulator(make_seed(active=7, archived=3, page_size=3)) as server:
        async with credly_client(server) as client:
            got = await client.list_badge_templates(ORG)
        calls = server.state.recorded("GET", "/badge_templates")
    assert len(got) == 7 and len({t.id for t in got}) == 7
    assert all(t.state == "active" for t in got)
    assert ARCHIVED_TEMPLATE not in {t.id for t in got}
    assert {TEMPLATE, template_id(6)} <= {t.id for t in got}
    assert all(t.owner is not None and t.owner.id == ORG for t in got)
    # 7 active templates, 3 per page: three calls, each keeping the filter.
    assert [c.query.get("page") for c in calls] == [None, "2", "3"]
    assert all(c.query["filter"] == "state::active" for c in calls)


async def test_pagination_never_follows_another_host(credly: CredlyClient) -> None:
    with pytest.raises(CredlyError, match="outside"):
        credly._check_same_origin(ORG, "https://evil.example/v1/organizations/x?page=2")
    credly._check_same_origin(ORG, credly.base_url + "organizations/x/badge_templates?page=2")


async def test_issue_find_and_revoke(credly: CredlyClient, credly_emulator: EmulatorServer) -> None:
    other = template_id(1)
    issued = await credly.issue_badge(ORG, issue_request("ada+1@example.com"))
    await credly.issue_badge(ORG, issue_request("ada+1@example.com", template=other))
    await credly.issue_badge(ORG, issue_request("bob@example.com"))
    assert issued.state == "pending" and issued.template_id == TEMPLATE

    found = await credly.find_badges(ORG, recipient_email="Ada+1@Example.com",
                                     badge_template_id=TEMPLATE)
    assert [b.id for b in found] == [issued.id]
    lookup = credly_emulator.state.recorded("GET", "/badges")[-1]
    assert lookup.query["filter"] == (
        f"recipient_email::Ada+1@Example.com|badge_template_id::{TEMPLATE}"
    )

    revoked = await credly.revoke_badge(ORG, issued.id, "Open edX internal user credential "
                                                         "was revoked")
    assert revoked.state == "revoked"
    stored = credly_emulator.state.badges[issued.id]
    assert stored.revoke_reason == "Open edX internal user credential was revoked"
    assert (await credly.get_badge(ORG, issued.id)).state == "revoked"


async def test_issue_body_is_what_credly_expects(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    await credly.issue_badge(ORG, issue_request())
    [post] = credly_emulator.state.recorded("POST")
    assert post.body == {
        "recipient_email": "ada@example.com", "issued_to_first_name": "Ada",
        "issued_to_last_name": "Lovelace", "badge_template_id": TEMPLATE,
        "issued_at": "2024-05-01 10:20:30 +0200",
    }


async def test_issue_is_a_single_attempt(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    credly_emulator.state.add_fault(mode="status", status=500, method="POST")
    with pytest.raises(CredlyServerError, match="500"):
        await credly.issue_badge(ORG, issue_request())
    assert len(credly_emulator.state.recorded("POST")) == 1


async def test_duplicate_issue_is_a_validation_error_with_credly_message(
    credly: CredlyClient,
) -> None:
    await credly.issue_badge(ORG, issue_request())
    with pytest.raises(CredlyValidationError) as err:
        await credly.issue_badge(ORG, issue_request(email="ADA@example.com"))
    assert "already has this badge" in err.value.credly_message
    assert err.value.status == 422


async def test_get_event(credly: CredlyClient, credly_emulator: EmulatorServer) -> None:
    event = credly_emulator.state.create_event(ORG, "badge_template.changed", TEMPLATE,
                                               {"state": "archived", "name": "Renamed"})
    got = await credly.get_event(ORG, event.id)
    assert got.event_type == "badge_template.changed"
    assert got.badge_template is not None
    assert (got.badge_template.id, got.badge_template.state, got.badge_template.name) == (
        TEMPLATE, "archived", "Renamed")
    with pytest.raises(CredlyNotFound):
        await credly.get_event(ORG, "no-such-event")


async def test_get_is_retried_after_500s(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    credly_emulator.state.add_fault(mode="status", status=500, times=2, method="GET")
    assert (await credly.get_organization(ORG)).name == "ACME Learning"
    assert [c.status for c in credly_emulator.state.recorded()] == [500, 500, 200]


async def test_get_gives_up_after_max_attempts_with_the_last_error(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    credly_emulator.state.add_fault(mode="status", status=502, times=3, method="GET")
    credly_emulator.state.add_fault(mode="status", status=503, times=10, method="GET")
    with pytest.raises(CredlyServerError) as err:
        await credly.get_organization(ORG)
    assert err.value.status == 503
    assert len(credly_emulator.state.recorded()) == credly.max_attempts


async def test_timeouts_are_retried_then_reported_as_unknown(
    credly_emulator: EmulatorServer,
) -> None:
    credly_emulator.state.add_fault(mode="hang", times=1, method="GET")
    async with credly_client(credly_emulator, timeout_s=0.3, max_attempts=2) as client:
        assert (await client.get_organization(ORG)).id == ORG
        credly_emulator.state.add_fault(mode="hang", times=2, method="GET")
        with pytest.raises(CredlyUnavailable, match="outcome unknown"):
            await client.get_organization(ORG)


async def test_connection_drop_is_unavailable(credly_emulator: EmulatorServer) -> None:
    credly_emulator.state.add_fault(mode="drop", times=10)
    async with credly_client(credly_emulator, max_attempts=2) as client:
        with pytest.raises(CredlyUnavailable, match="connection error"):
            await client.get_organization(ORG)


async def test_connection_refused_is_unavailable() -> None:
    server = EmulatorServer(make_seed())
    await server.start()
    await server.stop()  # nothing listens on that port any more
    async with credly_client(server, max_attempts=2) as client:
        with pytest.raises(CredlyUnavailable):
            await client.get_organization(ORG)


async def test_429_waits_for_retry_after(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    credly_emulator.state.add_fault(mode="rate_limit", retry_after="1", method="GET")
    assert (await credly.get_organization(ORG)).id == ORG
    first, second = credly_emulator.state.recorded()
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0  # recorded by the emulator: the hint was honoured


async def test_retry_after_beyond_the_limit_gives_up(credly_emulator: EmulatorServer) -> None:
    credly_emulator.state.add_fault(mode="rate_limit", retry_after="3600", method="GET")
    async with credly_client(credly_emulator, max_retry_after_s=60) as client:
        with pytest.raises(CredlyRateLimited) as err:
            await client.get_organization(ORG)
    assert err.value.retry_after == 3600
    assert len(credly_emulator.state.recorded()) == 1


async def test_rate_limit_spaces_calls_per_organization(credly_emulator: EmulatorServer) -> None:
    rate, calls = 10.0, 6
    async with credly_client(credly_emulator, rate_per_s=rate) as client:
        await asyncio.gather(*(client.get_organization(ORG) for _ in range(calls)))
        await client.get_organization(OTHER_ORG)  # another organization, its own bucket
    seen = [r.at for r in credly_emulator.state.recorded() if r.org == ORG]
    assert len(seen) == calls
    # Each call waits 1/rate after the previous one; allow a little network jitter.
    assert max(seen) - min(seen) >= (calls - 1) / rate - 0.03


async def test_revoke_is_retried_on_500(
    credly: CredlyClient, credly_emulator: EmulatorServer
) -> None:
    badge = await credly.issue_badge(ORG, issue_request())
    credly_emulator.state.add_fault(mode="status", status=500, method="PUT")
    assert (await credly.revoke_badge(ORG, badge.id, "why")).state == "revoked"
    assert [c.status for c in credly_emulator.state.recorded("PUT")] == [500, 200]


async def test_revoke_unknown_badge_is_not_found(credly: CredlyClient) -> None:
    with pytest.raises(CredlyNotFound):
        await credly.revoke_badge(ORG, "00000000-0000-0000-0000-000000000000", "why")


async def test_token_rotation_uses_the_new_token(credly_emulator: EmulatorServer) -> None:
    table = {ORG: "stale"}
    async with credly_client(credly_emulator, table.__getitem__) as client:
        with pytest.raises(CredlyAuthError):
            await client.get_organization(ORG)
        table[ORG] = TOKEN
        assert (await client.get_organization(ORG)).id == ORG


async def test_token_lookup_errors_keep_their_token_free_message(
    credly_emulator: EmulatorServer,
) -> None:
    class MissingToken(LookupError):
        pass

    def token_for(org: str) -> str:
        raise MissingToken(f"organization {org}: environment variable CREDLY_X is not set")

    async with credly_client(credly_emulator, token_for) as client:
        with pytest.raises(CredlyAuthError, match="CREDLY_X is not set"):
            await client.get_organization(ORG)

    def broken(org: str) -> str:
        raise RuntimeError(f"cannot read {TOKEN}")  # an unknown message is not repeated

    async with credly_client(credly_emulator, broken) as client:
        with pytest.raises(CredlyAuthError) as err:
            await client.get_organization(ORG)
    assert TOKEN not in str(err.value) and "RuntimeError" in str(err.value)
