"""Removing a template or an organization (SPEC §8): what is refused, what is tombstoned."""

from __future__ import annotations

import pytest

from badges.config.entities import ConfigSnapshot
from badges.config.switch import TemplateSwitchError, removal_key
from tests.unit.test_domain_builders import (
    ORG,
    badge_req,
    organization,
    passing_rule,
    req,
    template,
)


def _snapshot(*templates):
    return ConfigSnapshot.from_entities([organization(), *templates])


def test_an_inactive_unreferenced_template_is_tombstoned():
    tpl = template([req("r", "org.openedx.learning.course.passing.status.updated.v1", passing_rule())],
                   active=False)
    assert removal_key(_snapshot(tpl), "template", tpl.uuid) == f"template/{tpl.uuid}"


@pytest.mark.parametrize("why", ["active", "required"])
def test_a_template_in_use_is_refused(why: str):
    tpl = template([req("r", "org.openedx.learning.course.passing.status.updated.v1")],
                   active=why == "active")
    user = template([badge_req("b", tpl.uuid)], active=False)
    with pytest.raises(TemplateSwitchError) as err:
        removal_key(_snapshot(tpl, user), "template", tpl.uuid)
    assert err.value.reason == "refused"
    assert ("deactivate it first" if why == "active" else user.uuid) in str(err.value)


def test_an_organization_is_removed_only_without_templates():
    tpl = template([], active=False)
    with pytest.raises(TemplateSwitchError, match="delete them first"):
        removal_key(_snapshot(tpl), "org", ORG)
    assert removal_key(_snapshot(), "org", ORG) == f"org/{ORG}"
    with pytest.raises(TemplateSwitchError) as err:
        removal_key(ConfigSnapshot(), "org", ORG)
    assert err.value.reason == "not_found"


def test_a_tombstone_deletes_the_entity_from_the_snapshot():
    tpl = template([], active=False)
    snap = _snapshot(tpl)
    snap.apply(removal_key(snap, "template", tpl.uuid), None)
    assert tpl.uuid not in snap.templates
