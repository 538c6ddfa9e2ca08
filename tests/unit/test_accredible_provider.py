"""The Accredible client and provider against the Accredible emulator, with injected faults:
the same exactly-once rules as Credly (lookup before any new POST after an unknown outcome)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from badges.accredible.client import AccredibleClient
from badges.accredible.emulator import AccredibleEmulatorServer
from badges.accredible.models import Group, group_template, template_uuid
from badges.accredible.provider import AccredibleProvider
from badges.config.entities import ConfigSnapshot, Organization
from badges.config.settings import load_settings
from badges.credly.sync import sync_templates
from badges.providers import build_providers
from badges.credly.errors import CredlyAuthError
from badges.credly.models import IssueRequest, evidence_summary

ORG = "5e1d0c2a-0000-4000-8000-0000000000a1"
KEY = "acc-key-ACME-0123456789abcdef"
OTHER_ORG = "5e1d0c2a-0000-4000-8000-0000000000a2"
GROUP = 4242
TEMPLATE = template_uuid(ORG, GROUP)
SEED = {
    "page_size": 2,
    "organizations": [{"uuid": ORG, "name": "ACME", "token": KEY},
                      {"uuid": OTHER_ORG, "name": "Other", "token": "acc-other"}],
    "groups": [{"id": GROUP, "org": ORG, "name": "Data Science", "course_description": "Passed"},
               {"id": 7, "org": ORG, "name": "Seven"}, {"id": 8, "org": ORG, "name": "Eight"},
               {"id": 9, "org": OTHER_ORG, "name": "Not ours"}],
}


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[AccredibleEmulatorServer]:
    server = AccredibleEmulatorServer(SEED)
    await server.start()
    yield server
    await server.stop()


def provider_for(server: AccredibleEmulatorServer, key: str = KEY) -> AccredibleProvider:
    client = AccredibleClient(server.api_url, lambda _org: key, timeout_s=0.5, max_attempts=4,
                              backoff_initial_s=0.01, backoff_max_s=0.05, rate_per_s=1000)
    return AccredibleProvider(client, {TEMPLATE: GROUP}.get)


@pytest_asyncio.fixture
async def accredible(emulator: AccredibleEmulatorServer) -> AsyncIterator[AccredibleProvider]:
    provider = provider_for(emulator)
    yield provider
    await provider.close()


def request(completed_at: str = "2024-05-01T23:20:30+02:00", **extra: object) -> IssueRequest:
    return IssueRequest.for_learner(email="ada@example.com", full_name="Ada Lovelace", username="ada",
                                    badge_template_id=TEMPLATE, completed_at=completed_at, **extra)  # type: ignore[arg-type]  # the optional fields


def posts(server: AccredibleEmulatorServer) -> list[int | None]:
    return [r.status for r in server.state.recorded("POST", "/credentials$")]


def searches(server: AccredibleEmulatorServer) -> int:
    return len(server.state.recorded("POST", "/credentials/search$"))


async def test_verify_and_groups_as_templates_over_every_page(accredible: AccredibleProvider,
                                                              emulator: AccredibleEmulatorServer) -> None:
    assert await accredible.verify(ORG) == ""
    templates = await accredible.list_templates(ORG)
    assert sorted(t.accredible_group_id for t in templates) == [7, 8, GROUP]  # type: ignore[attr-defined]  # GroupTemplates
    [ds] = [t for t in templates if t.name == "Data Science"]
    assert ds.id == TEMPLATE and ds.description == "Passed" and ds.state == "active"
    assert len(emulator.state.recorded("GET", "/issuer/all_groups$")) == 1 + 2


async def test_a_bad_key_is_an_auth_error_that_names_accredible_not_the_key(emulator: AccredibleEmulatorServer) -> None:
    provider = provider_for(emulator, key="wrong-key-secret")
    with pytest.raises(CredlyAuthError) as caught:
        await provider.verify(ORG)
    await provider.close()
    assert str(caught.value) == f"Accredible rejected the token for organization {ORG} (401)"
    assert "wrong-key-secret" not in repr(caught.value)


async def test_issue_sends_the_credential_and_records_it(accredible: AccredibleProvider,
                                                         emulator: AccredibleEmulatorServer) -> None:
    out = await accredible.issue_once(
        ORG, request(expires_at="2099-05-01T10:00:00+00:00",
                     evidence=evidence_summary(["Final exam"], "2024-05-01T21:20:30+00:00")),
        outcome_unknown=False)
    [stored] = emulator.state.credentials.values()
    assert out.ok and (out.badge_id, out.state, out.reconciled) == (str(stored.id), "issued", False)
    assert stored.group_id == GROUP and stored.recipient == {"name": "Ada Lovelace", "email": "ada@example.com"}
    assert stored.issued_on == "2024-05-01"  # the completing time in UTC
    assert stored.expired_on == "2099-05-01" and "Final exam" in stored.evidence_items[0]["description"]
    assert searches(emulator) == 0


async def test_500_500_then_ok_issues_exactly_one(accredible: AccredibleProvider,
                                                  emulator: AccredibleEmulatorServer) -> None:
    emulator.state.add_fault(mode="status", status=500, times=2, method="POST", path="/credentials$")
    out = await accredible.issue_once(ORG, request(), outcome_unknown=False)
    assert out.ok and out.attempts == 3 and len(emulator.state.credentials) == 1
    assert posts(emulator) == [500, 500, 200] and searches(emulator) == 2


async def test_stored_then_timeout_is_reconciled_without_a_second_post(accredible: AccredibleProvider,
                                                                       emulator: AccredibleEmulatorServer) -> None:
    emulator.state.add_fault(mode="store_then_hang", hang_s=5, method="POST", path="/credentials$")
    out = await accredible.issue_once(ORG, request(), outcome_unknown=False)
    [stored] = emulator.state.credentials.values()
    assert out.ok and out.reconciled and out.badge_id == str(stored.id)
    assert len(posts(emulator)) == 1 and searches(emulator) == 1


async def test_an_unknown_outcome_from_before_is_looked_up_first(accredible: AccredibleProvider,
                                                                 emulator: AccredibleEmulatorServer) -> None:
    first = await accredible.issue_once(ORG, request(), outcome_unknown=False)
    again = await accredible.issue_once(ORG, request(), outcome_unknown=True)
    assert again.reconciled and again.badge_id == first.badge_id and len(posts(emulator)) == 1


async def test_429_honours_retry_after_and_401_is_not_retried(accredible: AccredibleProvider,
                                                              emulator: AccredibleEmulatorServer) -> None:
    emulator.state.add_fault(mode="rate_limit", retry_after="0.3", method="POST", path="/credentials$")
    out = await accredible.issue_once(ORG, request(), outcome_unknown=False)
    first, second = emulator.state.recorded("POST", "/credentials$")
    assert out.ok and second.at - first.at >= 0.3
    emulator.state.add_fault(mode="status", status=401, times=5, method="POST", path="/credentials$")
    failed = await accredible.issue_once(ORG, request("2024-06-01T10:00:00+00:00"), outcome_unknown=False)
    assert not failed.ok and failed.error_type == "CredlyAuthError" and failed.attempts == 1


async def test_a_template_without_a_group_fails_clearly(accredible: AccredibleProvider) -> None:
    bare = IssueRequest.for_learner(email="ada@example.com", full_name="Ada", username="ada",
                                    badge_template_id=template_uuid(ORG, 1), completed_at="2024-05-01T10:00:00+00:00")
    out = await accredible.issue_once(ORG, bare, outcome_unknown=False)
    assert not out.ok and "templates sync" in (out.error or "")


async def test_revoke_expires_the_credential_and_the_lookup_still_finds_it(accredible: AccredibleProvider,
                                                                           emulator: AccredibleEmulatorServer) -> None:
    issued = await accredible.issue_once(ORG, request(), outcome_unknown=False)
    assert issued.badge_id is not None
    out = await accredible.revoke_once(ORG, issued.badge_id, reason="ignored")
    [stored] = emulator.state.credentials.values()
    assert out.ok and out.state == "revoked" and stored.expired
    # the outcomes of the issue and of the revoke lost: the same completion is found, not reissued
    found = await accredible.find_issued(ORG, request())
    assert found is not None and found.id == issued.badge_id and found.state == "expired"
    # a new completion on a later day is a new credential
    assert await accredible.find_issued(ORG, request("2030-01-02T10:00:00+00:00")) is None


async def test_revoking_an_expired_credential_keeps_its_date(accredible: AccredibleProvider,
                                                               emulator: AccredibleEmulatorServer) -> None:
    issued = await accredible.issue_once(ORG, request(expires_at="2024-06-01T00:00:00+00:00"), outcome_unknown=False)
    assert issued.badge_id is not None and issued.state == "expired"
    out = await accredible.revoke_once(ORG, issued.badge_id, reason="x")
    assert out.ok and out.already_revoked and not emulator.state.recorded("PUT")
    assert emulator.state.credentials[int(issued.badge_id)].expired_on == "2024-06-01"


async def test_revoke_of_an_unknown_credential_fails_without_retrying(accredible: AccredibleProvider) -> None:
    out = await accredible.revoke_once(ORG, "999", reason="x")
    assert not out.ok and out.error_type == "CredlyNotFound" and out.attempts == 1


def test_sync_stores_groups_as_inactive_templates_that_keep_their_group_id() -> None:
    org = Organization(uuid=ORG, provider="accredible", api_key_env="K")
    snap = ConfigSnapshot.from_entities([org])
    result = sync_templates(snap, ORG, [group_template(ORG, Group(id=GROUP, name="DS"))])
    [tpl] = result.entities
    assert (tpl.uuid, tpl.accredible_group_id, tpl.is_active, result.new) == (TEMPLATE, GROUP, False, 1)
    snap.put(tpl.model_copy(update={"is_active": True}))
    again = sync_templates(snap, ORG, [group_template(ORG, Group(id=GROUP, name="DS renamed"))])
    [renamed] = again.entities
    assert (renamed.name, renamed.is_active, renamed.accredible_group_id, again.new) == ("DS renamed", True, GROUP, 0)


async def test_each_organization_gets_its_own_provider() -> None:
    snap = ConfigSnapshot.from_entities([Organization(uuid=ORG, provider="accredible", api_key_env="K"),
                                         Organization(uuid=OTHER_ORG, api_key_env="K")])
    providers = build_providers(load_settings(), lambda: snap)
    try:
        assert [providers.for_org(o).name for o in (ORG, OTHER_ORG)] == ["accredible", "credly"]
    finally:
        await providers.close()
