"""Configuration entities: keys, the topic wire format, tombstones, secrets."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from badges.config.entities import (
    ConfigSnapshot,
    DataRule,
    EntityDecodeError,
    Organization,
    Template,
    decode_entity,
    encode_entity,
    entity_key,
)

ORG = "0b8a3f0e-0000-4000-8000-000000000001"
TPL = "7d4f6a52-0000-4000-8000-0000000000aa"
TOKEN = "s3cr3t-credly-token-4242"


def _template(**kw) -> Template:
    data = dict(
        uuid=TPL, organization=ORG, name="Demo badge", description="d", image_url="https://x/i.png",
        credly_state="active", is_active=True,
        requirements=[{"id": "demo", "event_type": "org.openedx.learning.course.passing.status.updated.v1",
                       "group": "A",
                       "rules": [{"key_path": "is_passing", "operator": "=", "value": "true"}]}],
        penalties=[{"id": "p", "event_type": "org.openedx.learning.course.passing.status.updated.v1",
                    "requirements": ["demo"],
                    "rules": [{"key_path": "is_passing", "operator": "!=", "value": "true"}]}],
        updated_at="2024-05-01T10:00:00Z",
    )
    data.update(kw)
    return Template.model_validate(data)


@pytest.mark.parametrize("given,normal", [("=", "eq"), ("eq", "eq"), ("!=", "ne"), ("ne", "ne")])
def test_operators_normalize(given, normal):
    assert DataRule(key_path="is_passing", operator=given, value="true").operator == normal


def test_unknown_operator_is_rejected():
    with pytest.raises(ValidationError, match="operator must be one of"):
        DataRule(key_path="is_passing", operator="<", value="1")


def test_keys_and_round_trip():
    tpl = _template()
    org = Organization(uuid=ORG.upper(), name="Acme", api_key_env="CREDLY_TOKEN_ACME")
    assert entity_key(tpl) == f"template/{TPL}"
    assert entity_key(org) == f"org/{ORG}"  # canonical lower-case uuid
    for entity in (tpl, org):
        assert decode_entity(entity_key(entity).encode(), encode_entity(entity)) == entity
    assert decode_entity(f"template/{TPL}", None) is None
    assert decode_entity(f"template/{TPL}".encode(), b"") is None


def test_decode_rejects_bad_records_without_echoing_them():
    with pytest.raises(EntityDecodeError, match="unknown configuration key"):
        decode_entity("widget/1", b"{}")
    with pytest.raises(EntityDecodeError, match="not JSON"):
        decode_entity(f"template/{TPL}", b"{nope")
    other = "7d4f6a52-0000-4000-8000-0000000000bb"
    with pytest.raises(EntityDecodeError, match="record holds"):
        decode_entity(f"template/{other}", encode_entity(_template()))
    secret_value = json.dumps({"uuid": ORG, "api_key": TOKEN, "api_key_env": "X"}).encode()
    with pytest.raises(EntityDecodeError) as info:
        decode_entity(f"org/{ORG}", secret_value)
    assert TOKEN not in str(info.value)


def test_organization_needs_exactly_one_token_source():
    with pytest.raises(ValidationError, match="exactly one"):
        Organization(uuid=ORG)
    with pytest.raises(ValidationError, match="exactly one"):
        Organization(uuid=ORG, api_key_env="X", api_key=TOKEN)


def test_inline_token_travels_on_the_topic_but_is_never_shown():
    org = Organization(uuid=ORG, name="Acme", api_key=TOKEN)
    assert TOKEN in encode_entity(org).decode()
    assert decode_entity(entity_key(org), encode_entity(org)).api_key.get_secret_value() == TOKEN
    snapshot = ConfigSnapshot.from_entities([org])
    for shown in (repr(org), str(org), org.model_dump_json(), json.dumps(org.model_dump(mode="json")),
                  repr(snapshot)):
        assert TOKEN not in shown


def test_snapshot_from_records_applies_tombstones_in_order():
    tpl = _template()
    org = Organization(uuid=ORG, name="Acme", api_key_env="CREDLY_TOKEN_ACME")
    renamed = _template(name="Renamed")
    records = [
        (entity_key(org).encode(), encode_entity(org)),
        (entity_key(tpl).encode(), encode_entity(tpl)),
        (entity_key(renamed).encode(), encode_entity(renamed)),
    ]
    snap = ConfigSnapshot.from_records(records)
    assert snap.templates[TPL].name == "Renamed" and list(snap.organizations) == [ORG]
    snap.apply(entity_key(tpl).encode(), None)
    assert snap.templates == {}
    assert ConfigSnapshot.from_records(snap.records()) == snap


def test_newer_writers_fields_are_ignored():
    data = json.loads(encode_entity(_template()))
    data["some_future_field"] = 1
    assert decode_entity(f"template/{TPL}", json.dumps(data)) == _template()


def test_a_group_minimum_out_of_range_is_compilations_finding_not_a_lost_record() -> None:
    """A record whose group minimum does not fit still decodes: compilation says why (one place
    for that rule) instead of the whole template vanishing from the topic."""
    from badges.domain.findings import Finding
    from badges.domain.index import compile_template

    tpl = _template(requirements=[{"id": "demo", "group": "g",
                                   "event_type": "org.openedx.learning.course.passing.status.updated.v1"}],
                    groups={"g": {"min": 0}})
    decoded = decode_entity(entity_key(tpl), encode_entity(tpl))
    assert decoded == tpl and isinstance(decoded, Template)
    findings: list[Finding] = []
    compiled = compile_template(decoded, None, findings)
    assert [(f.code, f.place, f.effect) for f in findings] == [
        ("group_min_out_of_range", ("groups", "g", "min"), "taken as 1")]
    assert [g.min for g in compiled.groups] == [1]
