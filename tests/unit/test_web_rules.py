"""Pure pieces behind the HTTP surface: template switching, webhook merging, input parsing,
admin auth, and the Credly call metrics (against the emulator over real HTTP)."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client import REGISTRY
from pydantic import SecretStr

from badges.config.entities import ConfigSnapshot, DataRule, Penalty, Requirement, Template
from badges.config.switch import TemplateSwitchError, switch_template
from badges.credly.metered import MeteredCredlyClient, endpoint_label
from badges.credly.models import BadgeTemplate
from badges.schemas.catalog import load_catalog
from badges.credly.sync import (
    TEMPLATE_CHANGED,
    TEMPLATE_CREATED,
    TEMPLATE_DELETED,
    UnknownOrganization,
    apply_template_event,
    select_organizations,
)
from badges.web.auth import require_admin
from badges.web.http import HttpError, parse_learner_id, parse_uuid
from tests.support.credly import ORG, TEMPLATE, credly_emulator, issue_request, tokens

__all__ = ["credly_emulator"]

OTHER_ORG = "0b8a3f0e-0000-4000-8000-0000000000f2"
T2 = "7d4f6a52-0000-4000-8000-0000000000b2"
PASSING = "org.openedx.learning.course.passing.status.updated.v1"
REQ = Requirement(id="r", event_type=PASSING)
CATALOG = load_catalog()


def snapshot(*templates: Template) -> ConfigSnapshot:
    return ConfigSnapshot.from_entities(templates)


def tpl(uuid: str = TEMPLATE, *, active: bool = False, state: str = "active", reqs: bool = True,
        org: str = ORG, req: Requirement = REQ, penalties: tuple[Penalty, ...] = ()) -> Template:
    return Template(uuid=uuid, organization=org, name="T", credly_state=state, is_active=active,
                    requirements=[req] if reqs else [], penalties=list(penalties))


# --- switching ----------------------------------------------------------------------------------


def test_switch_activates_and_deactivates() -> None:
    assert switch_template(snapshot(tpl()), TEMPLATE, True, CATALOG).is_active
    assert not switch_template(snapshot(tpl(active=True)), TEMPLATE, False, CATALOG).is_active


@pytest.mark.parametrize(("template", "active", "reason", "words"), [
    (None, True, "not_found", "not configured"),
    (tpl(reqs=False), True, "refused", "no requirement"),
    (tpl(state="archived"), True, "refused", "'archived' in Credly"),
])
def test_switch_refusals(template: Template | None, active: bool, reason: str, words: str) -> None:
    snap = snapshot(template) if template else snapshot()
    with pytest.raises(TemplateSwitchError) as err:
        switch_template(snap, TEMPLATE, active, CATALOG)
    assert err.value.reason == reason and words in str(err.value)


# What the configuration file refuses (config.file) cannot be activated through the admin API or
# `badges template activate` either: both switch with compilation's findings.
@pytest.mark.parametrize(("template", "words"), [
    (tpl(req=Requirement(id="g", event_type="org.openedx.learning.course.persistent_grade_summary.changed.v1")),
     "cannot drive requirements: it carries no UserData"),
    (tpl(req=Requirement(id="o", event_type="org.openedx.learning.badge.awarded.v1")),
     "cannot drive requirements: it is this worker's own output"),
    (tpl(req=Requirement(id="u", event_type="org.openedx.learning.no.such.event.v1")),
     "unknown event type 'org.openedx.learning.no.such.event.v1'"),
    (tpl(req=Requirement(id="k", event_type=PASSING, rules=[DataRule(key_path="is_pasing", value="true")])),
     "unknown key path 'is_pasing'"),
    (tpl(req=Requirement(id="b", event_type=PASSING, rules=[DataRule(key_path="is_passing", value="maybe")])),
     "'is_passing' is a boolean field"),
    (tpl(penalties=(Penalty(id="p", event_type=PASSING, requirements=["nope"]),)),
     "penalty 'p': unknown requirement 'nope'"),
    (tpl(penalties=(Penalty(id="p", event_type=PASSING, requirements=[]),)),
     "targets no requirement"),
    (tpl(req=Requirement(id="w", event_type=PASSING, not_before="2024-06-01T00:00:00Z",
                         not_after="2024-05-01T00:00:00Z")),
     "not_after is before not_before"),
])
def test_switch_refuses_to_activate_what_the_configuration_file_refuses(template: Template, words: str) -> None:
    with pytest.raises(TemplateSwitchError) as err:
        switch_template(snapshot(template), TEMPLATE, True, CATALOG)
    assert err.value.reason == "refused" and words in str(err.value)
    # deactivating stays possible whatever the template holds
    assert not switch_template(snapshot(template), TEMPLATE, False, CATALOG).is_active


def test_deactivating_never_needs_requirements() -> None:
    assert not switch_template(snapshot(tpl(reqs=False, state="archived")), TEMPLATE, False, CATALOG).is_active


# --- webhook merging -----------------------------------------------------------------------------


def credly(uuid: str = TEMPLATE, state: str = "active", name: str = "New name") -> BadgeTemplate:
    return BadgeTemplate(id=uuid, name=name, state=state, description="d", image_url="https://i/x.png")


def test_created_template_is_stored_inactive() -> None:
    entity = apply_template_event(snapshot(), ORG, TEMPLATE_CREATED, credly())
    assert entity is not None and (entity.is_active, entity.credly_state, entity.name) == (False, "active", "New name")


def test_created_but_not_active_is_not_stored() -> None:
    assert apply_template_event(snapshot(), ORG, TEMPLATE_CREATED, credly(state="draft")) is None


def test_changed_keeps_activation_while_active_and_drops_it_otherwise() -> None:
    current = tpl(active=True)
    kept = apply_template_event(snapshot(current), ORG, TEMPLATE_CHANGED, credly())
    assert kept is not None and kept.is_active and kept.requirements == current.requirements
    archived = apply_template_event(snapshot(current), ORG, TEMPLATE_CHANGED, credly(state="archived"))
    assert archived is not None and (archived.is_active, archived.credly_state) == (False, "archived")


def test_deleted_deactivates_a_known_template_only() -> None:
    gone = apply_template_event(snapshot(tpl(active=True)), ORG, TEMPLATE_DELETED, credly())
    assert gone is not None and (gone.is_active, gone.credly_state) == (False, "deleted")
    assert apply_template_event(snapshot(), ORG, TEMPLATE_DELETED, credly()) is None


def test_events_never_touch_another_organizations_template() -> None:
    theirs = tpl(active=True, org=OTHER_ORG)
    for event in (TEMPLATE_CHANGED, TEMPLATE_DELETED):
        assert apply_template_event(snapshot(theirs), ORG, event, credly(state="archived")) is None


def test_an_unchanged_template_needs_no_record() -> None:
    current = apply_template_event(snapshot(), ORG, TEMPLATE_CREATED, credly())
    assert current is not None
    assert apply_template_event(snapshot(current), ORG, TEMPLATE_CHANGED, credly()) is None


def test_select_organizations() -> None:
    from badges.config.entities import Organization

    snap = ConfigSnapshot.from_entities([Organization(uuid=ORG, api_key_env="X")])
    assert select_organizations(snap) == [ORG]
    assert select_organizations(snap, ORG) == [ORG]
    with pytest.raises(UnknownOrganization, match="is not configured"):
        select_organizations(snap, OTHER_ORG)
    with pytest.raises(UnknownOrganization, match="no organization configured"):
        select_organizations(ConfigSnapshot())


# --- input parsing and auth ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "7", "42", "9223372036854775807"])
def test_learner_ids(value: str) -> None:
    assert parse_learner_id(value) == int(value)


@pytest.mark.parametrize("value", ["", "-1", "+1", "007", "1.0", "1e3", "٣", "12345678901234567890", "abc"])
def test_bad_learner_ids(value: str) -> None:
    # a non-canonical form would hash to another partition than the learner's
    with pytest.raises(HttpError) as err:
        parse_learner_id(value)
    assert err.value.status == 400


def test_uuids_are_canonical() -> None:
    assert parse_uuid(TEMPLATE.upper()) == TEMPLATE
    with pytest.raises(HttpError):
        parse_uuid("7d4f6a52")


def _request(auth: str | None) -> web.Request:
    return make_mocked_request("POST", "/api/badges/retry-failed", headers={"Authorization": auth} if auth else {})


def test_admin_auth() -> None:
    token = SecretStr("s3cret-admin")
    require_admin(_request("Bearer s3cret-admin"), token)
    require_admin(_request("bearer s3cret-admin"), token)
    for header in (None, "Bearer", "Bearer wrong", "Basic s3cret-admin", "s3cret-admin"):
        with pytest.raises(HttpError) as err:
            require_admin(_request(header), token)
        assert err.value.status == 401 and "s3cret-admin" not in err.value.message
    for unset in (None, SecretStr("")):
        with pytest.raises(HttpError) as err:
            require_admin(_request("Bearer s3cret-admin"), unset)
        assert err.value.status == 403 and "BADGES_ADMIN_TOKEN is not set" in err.value.message


# --- Credly call metrics ------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "label"), [
    ("GET", "/v1/organizations/o/", "get_organization"),
    ("GET", "/v1/organizations/o/badge_templates", "list_badge_templates"),
    ("POST", "/v1/organizations/o/badges", "issue_badge"),
    ("GET", "/v1/organizations/o/badges", "find_badges"),
    ("GET", "/v1/organizations/o/badges/b1", "get_badge"),
    ("PUT", "/v1/organizations/o/badges/b1/revoke", "revoke_badge"),
    ("GET", "/v1/organizations/o/events/e1", "get_event"),
    ("DELETE", "/v1/organizations/o/badges/b1", "other"),
    ("GET", "/v1/issuer/all_groups", "list_badge_templates"),
    ("POST", "/v1/credentials", "issue_badge"),
    ("POST", "/v1/credentials/search", "find_badges"),
    ("PUT", "/v1/credentials/123", "revoke_badge"),
    ("DELETE", "/v1/credentials/123", "other"),
])
def test_endpoint_labels(method: str, path: str, label: str) -> None:
    assert endpoint_label(method, f"http://credly.test{path}") == label


def _calls(endpoint: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("badges_credly_calls_total", {"endpoint": endpoint, "outcome": outcome}) or 0.0


def _timed(endpoint: str) -> float:
    return REGISTRY.get_sample_value("badges_credly_call_seconds_count", {"endpoint": endpoint}) or 0.0


async def test_every_attempt_is_counted_with_its_outcome(credly_emulator) -> None:
    ok, failed, timed = _calls("issue_badge", "ok"), _calls("issue_badge", "server_error"), _timed("issue_badge")
    credly_emulator.state.add_fault(mode="status", status=500, times=1, method="POST")
    client = MeteredCredlyClient(credly_emulator.api_url, tokens(), timeout_s=2, backoff_initial_s=0.01,
                                 backoff_max_s=0.02, rate_per_s=1000)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the test counts calls, whatever the failure
            await client.issue_badge(ORG, issue_request())
        await client.issue_badge(ORG, issue_request())
        missing = _calls("get_badge", "no_token")
        with pytest.raises(Exception):  # noqa: B017 - ditto
            await client.get_badge("0b8a3f0e-0000-4000-8000-00000000dead", "b1")
    finally:
        await client.close()
    assert _calls("issue_badge", "server_error") == failed + 1
    assert _calls("issue_badge", "ok") == ok + 1
    assert _timed("issue_badge") == timed + 2
    assert _calls("get_badge", "no_token") == missing + 1  # counted, but no latency: nothing was sent
