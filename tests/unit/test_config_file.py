"""The configuration file: validation with YAML paths and lines, merge, export round trip."""

from __future__ import annotations

import textwrap
from importlib import resources

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from badges.config.entities import ConfigSnapshot, Organization, Template
from badges.config.file import (
    check_file,
    document_to_entities,
    export_document,
    validate_against,
    validate_file,
)
from badges.schemas.catalog import load_catalog

CATALOG = load_catalog()
ORG = "0b8a3f0e-0000-4000-8000-000000000001"
TPL_A = "7d4f6a52-0000-4000-8000-0000000000aa"
TPL_B = "7d4f6a52-0000-4000-8000-0000000000bb"
PASSING = "org.openedx.learning.course.passing.status.updated.v1"
TOKEN = "s3cr3t-credly-token-4242"

SPEC_EXAMPLE = """\
organizations:
  - uuid: 0b8a3f0e-0000-4000-8000-000000000001
    api_key_env: CREDLY_TOKEN_ACME      # or api_key: ...; tokens never printed back
templates:
  - uuid: 7d4f6a52-0000-4000-8000-0000000000aa   # Credly template id (synced first)
    active: true
    requirements:
      - id: demo                      # unique within the template
        event_type: org.openedx.learning.course.passing.status.updated.v1
        description: On the Demo course completion
        group: A                      # optional
        rules:
          - {key_path: is_passing, operator: "=", value: "true"}
          - {key_path: course.course_key, operator: "=", value: "course-v1:OpenedX+DemoX+Demo_Course"}
    penalties:
      - id: demo-failed
        event_type: org.openedx.learning.course.passing.status.updated.v1
        requirements: [demo]
        rules:
          - {key_path: is_passing, operator: "=", value: "false"}
          - {key_path: course.course_key, operator: "=", value: "course-v1:OpenedX+DemoX+Demo_Course"}
"""


def _synced(uuid: str, *, org: str = ORG, state: str = "active", active: bool = False,
            name: str = "Synced") -> Template:
    return Template(uuid=uuid, organization=org, name=name, description="From Credly",
                    image_url="https://credly.test/i.png", credly_state=state, is_active=active,
                    updated_at="2024-05-01T10:00:00Z")


def _snapshot(*templates: Template, orgs: list[Organization] | None = None) -> ConfigSnapshot:
    if orgs is None:
        orgs = [Organization(uuid=ORG, name="Acme", api_key_env="CREDLY_TOKEN_ACME")]
    return ConfigSnapshot.from_entities([*orgs, *templates])


def test_spec_example_validates_and_merges_onto_the_synced_template():
    doc, errors = validate_file(SPEC_EXAMPLE, CATALOG)
    assert errors == [] and doc is not None and doc.warnings == []
    snap = _snapshot(_synced(TPL_A, name="Demo badge"))
    assert validate_against(doc, snap) == []
    org, tpl = document_to_entities(doc, snap)
    assert org.name == "Acme" and org.api_key_env == "CREDLY_TOKEN_ACME"
    assert (tpl.name, tpl.description, tpl.credly_state) == ("Demo badge", "From Credly", "active")
    assert tpl.is_active is True
    assert [r.operator for r in tpl.requirements[0].rules] == ["eq", "eq"]
    assert tpl.penalties[0].requirements == ["demo"]


def test_validate_file_unpacks_and_has_named_parts():
    result = validate_file(SPEC_EXAMPLE.replace("api_key_env: CREDLY_TOKEN_ACME", "api_key: x"),
                           CATALOG)
    doc, errors = result
    assert doc is result.document and errors == result.errors == []
    assert [w.path for w in result.warnings] == ["organizations[0].api_key"]


def test_sample_configuration_validates():
    text = resources.files("badges.config").joinpath("sample.yaml").read_text()
    result = check_file(text, CATALOG)
    assert result.errors == [] and result.warnings == []
    doc = result.document
    assert [o.uuid for o in doc.organizations] == [ORG]
    assert [o.api_key_env for o in doc.organizations] == ["CREDLY_TOKEN_ACME"]
    assert [t.uuid for t in doc.templates] == [TPL_A, TPL_B, "7d4f6a52-0000-4000-8000-0000000000dd"]
    other = doc.templates[1]
    assert [(r.id, r.group) for r in other.requirements] == [
        ("other", "A"), ("other-ccx", "A"), ("other-certificate", "B")]
    graduate = doc.templates[2]  # the SPEC §8 keys
    assert (graduate.groups["electives"].min, graduate.complete_within, graduate.expires_after) == (
        2, "P180D", "P365D")
    assert graduate.requirements[0].badge == TPL_A


BAD = """\
organizations:
  - uuid: 0b8a3f0e-0000-4000-8000-000000000001
    api_key: s3cr3t-credly-token-4242
templates:
  - uuid: 7d4f6a52-0000-4000-8000-0000000000aa
    active: maybe
    colour: red
    requirements:
      - id: demo
        event_type: org.openedx.learning.course.passing.status.updated.v1
        rules:
          - {key_path: is_passing, operator: "=", value: "true"}
          - {key_path: course.course_key, operator: "=", value: "x"}
          - {key_path: is_pasing, operator: "=", value: "true"}
          - {key_path: is_passing, operator: "=", value: "sure"}
      - id: demo
        event_type: org.openedx.learning.course.passing.status.updatd.v1
    penalties:
      - id: failed
        event_type: org.openedx.learning.course.passing.status.updated.v1
        requirements: [demo, ghost, cert]
      - id: failed
        event_type: org.openedx.learning.course.passing.status.updated.v1
        requirements: []
  - uuid: 7d4f6a52-0000-4000-8000-0000000000bb
    active: true
    requirements:
      - id: cert
        event_type: org.openedx.learning.certificate.created.v1
        rules:
          - {key_path: course.course_key, operator: "<>", value: "x"}
  - uuid: 7d4f6a52-0000-4000-8000-0000000000cc
    active: yes
"""


def test_a_bad_file_reports_every_error_with_path_and_line():
    result = check_file(BAD, CATALOG)
    assert result.document is None
    by_path = {e.path: e for e in result.errors}
    expected_lines = {
        "templates[0].active": 6,
        "templates[0].colour": 7,
        "templates[0].requirements[0].rules[2].key_path": 14,
        "templates[0].requirements[0].rules[3].value": 15,
        "templates[0].requirements[1].id": 16,
        "templates[0].requirements[1].event_type": 17,
        "templates[0].penalties[0].requirements[1]": 21,
        "templates[0].penalties[0].requirements[2]": 21,
        "templates[0].penalties[1].id": 22,
        "templates[0].penalties[1].requirements": 24,
        "templates[1].requirements[0].rules[0].operator": 31,
        "templates[2].active": 33,
    }
    assert {p: by_path[p].line for p in expected_lines if p in by_path} == expected_lines
    assert len(result.errors) == len(expected_lines)

    key_path = str(by_path["templates[0].requirements[0].rules[2].key_path"])
    assert key_path.startswith(
        "templates[0].requirements[0].rules[2].key_path (line 14): unknown key path 'is_pasing' "
        f"for {PASSING}"
    )
    assert "valid: course.course_key, course.display_name," in key_path
    assert "is_passing" in key_path and "user.pii.email" in key_path
    assert "boolean field" in by_path["templates[0].requirements[0].rules[3].value"].message
    assert "maybe" in by_path["templates[0].active"].message
    assert "unknown field 'colour'" in by_path["templates[0].colour"].message
    assert "duplicate requirement id 'demo'" in by_path["templates[0].requirements[1].id"].message
    assert "unknown event type" in by_path["templates[0].requirements[1].event_type"].message
    assert "unknown requirement 'ghost'" in by_path["templates[0].penalties[0].requirements[1]"].message
    assert "belongs to templates[1]" in by_path["templates[0].penalties[0].requirements[2]"].message
    assert "duplicate penalty id" in by_path["templates[0].penalties[1].id"].message
    assert "at least one requirement" in by_path["templates[0].penalties[1].requirements"].message
    assert "operator must be one of" in by_path["templates[1].requirements[0].rules[0].operator"].message
    assert "needs at least one requirement" in by_path["templates[2].active"].message
    # errors come in file order; the inline token and the rule-less penalties on a frequent event
    # type are warnings, the token never echoed
    assert [e.line for e in result.errors] == sorted(e.line for e in result.errors)
    assert [w.path for w in result.warnings] == [
        "organizations[0].api_key", "templates[0].penalties[0].rules",
        "templates[0].penalties[1].rules"]
    assert all(TOKEN not in str(e) for e in result.errors + result.warnings)


def test_structure_errors_and_organizations():
    text = textwrap.dedent("""\
        organizations:
          - uuid: not-a-uuid
          - uuid: 0b8a3f0e-0000-4000-8000-000000000001
            api_key_env: A
            api_key: B
        templates:
          - active: true
            requirements: demo
        extra: 1
    """)
    errors = {(e.path, e.line, e.message) for e in validate_file(text, CATALOG)[1]}
    paths = {(p, line) for p, line, _ in errors}
    assert ("organizations[0].uuid", 2) in paths
    assert ("organizations[0]", 2) in paths  # no token source
    assert ("organizations[1]", 3) in paths  # both token sources
    assert ("templates[0].uuid", 7) in paths  # missing field: line of its mapping
    assert ("templates[0].requirements", 8) in paths
    assert ("extra", 9) in paths
    assert any("required field 'uuid'" in m for _, _, m in errors)
    assert any("expected a list" in m for _, _, m in errors)


def test_yaml_syntax_error_and_duplicate_keys_have_lines():
    doc, errors = validate_file("templates:\n  - uuid: [1\n", CATALOG)
    assert doc is None and len(errors) == 1 and errors[0].line is not None
    assert "YAML syntax error" in errors[0].message
    doc, errors = validate_file("templates: []\ntemplates: []\n", CATALOG)
    assert [(e.path, e.line) for e in errors] == [("templates", 2)]
    assert validate_file("", CATALOG)[1][0].message == "the file is empty"


def test_boolean_words_are_taken_as_written():
    text = SPEC_EXAMPLE.replace('value: "true"', "value: Yes").replace("active: true", "active: +")
    doc, errors = validate_file(text, CATALOG)
    assert errors == []
    assert doc.templates[0].active is True
    assert doc.templates[0].requirements[0].rules[0].value == "Yes"
    _, errors = validate_file(SPEC_EXAMPLE.replace('value: "true"', "value: on"), CATALOG)
    assert [e.path for e in errors] == ["templates[0].requirements[0].rules[0].value"]


def test_validate_against_the_configuration_topic():
    doc, _ = validate_file(SPEC_EXAMPLE.replace(
        "    active: true\n", "    active: true\n", 1), CATALOG)
    missing = validate_against(doc, _snapshot())
    assert [(e.path, e.line) for e in missing] == [("templates[0].uuid", 5)]
    assert "sync" in missing[0].message
    foreign = "0b8a3f0e-0000-4000-8000-0000000000ff"
    text = SPEC_EXAMPLE.replace("organizations:\n  - uuid: 0b8a3f0e-0000-4000-8000-000000000001\n"
                                "    api_key_env: CREDLY_TOKEN_ACME      # or api_key: ...; tokens "
                                "never printed back\n", "organizations: []\n")
    doc2, errors = validate_file(text, CATALOG)
    assert errors == []
    unconfigured = validate_against(doc2, _snapshot(_synced(TPL_A, org=foreign), orgs=[]))
    assert len(unconfigured) == 1 and foreign in unconfigured[0].message
    # the organization is configured in the topic: fine
    assert validate_against(doc2, _snapshot(_synced(TPL_A))) == []
    archived = validate_against(doc, _snapshot(_synced(TPL_A, state="archived")))
    assert [e.path for e in archived] == ["templates[0].active"]


def test_keeping_activation_from_the_topic_still_needs_requirements():
    text = f"organizations: []\ntemplates:\n  - uuid: {TPL_A}\n"
    doc, errors = validate_file(text, CATALOG)
    assert errors == [] and doc.templates[0].active is None
    assert validate_against(doc, _snapshot(_synced(TPL_A))) == []
    errors = validate_against(doc, _snapshot(_synced(TPL_A, active=True)))
    assert [(e.path, e.line) for e in errors] == [("templates[0]", 3)]
    [tpl] = document_to_entities(doc, _snapshot(_synced(TPL_A)))
    assert tpl.is_active is False


def _rich_snapshot(description: str = "On the Demo course: \"quoted\" # not a comment") -> ConfigSnapshot:
    doc, errors = validate_file(SPEC_EXAMPLE, CATALOG)
    assert errors == []
    base = _snapshot(
        _synced(TPL_A, name="Demo badge"),
        _synced(TPL_B, name="Other: badge #2", active=False),
        orgs=[Organization(uuid=ORG, name="Acme", api_key_env="CREDLY_TOKEN_ACME")],
    )
    entities = document_to_entities(doc, base)
    tpl = entities[1]
    assert isinstance(tpl, Template)
    req = tpl.requirements[0].model_copy(update={"description": description})
    extra = {"id": "any", "event_type": PASSING, "group": "A", "rules": []}
    tpl = Template.model_validate({**tpl.model_dump(), "requirements": [req.model_dump(), extra]})
    return ConfigSnapshot.from_entities([entities[0], tpl, base.templates[TPL_B]])


def test_export_round_trips():
    snap = _rich_snapshot()
    text = export_document(snap)
    yaml.safe_load(text)  # any YAML tool reads it
    doc, errors = validate_file(text, CATALOG)
    assert errors == [], text
    assert validate_against(doc, snap) == []
    assert ConfigSnapshot.from_entities(document_to_entities(doc, snap)) == snap
    assert "# Demo badge - Credly state: active" in text


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))  # type: ignore[arg-type]  # "Cs" is a category
def test_export_round_trips_any_description(description):
    snap = _rich_snapshot(description)
    doc, errors = validate_file(export_document(snap), CATALOG)
    assert errors == []
    assert ConfigSnapshot.from_entities(document_to_entities(doc, snap)) == snap


def test_export_never_prints_tokens_and_shows_credly_deactivation():
    inline = Organization(uuid="0b8a3f0e-0000-4000-8000-000000000002", name="Inline Org",
                          api_key=TOKEN)
    env = Organization(uuid=ORG, name="Acme", api_key_env="CREDLY_TOKEN_ACME")
    moved = _synced(TPL_B, org=inline.uuid, state="archived", active=True)
    snap = ConfigSnapshot.from_entities([env, inline, moved])
    text = export_document(snap)
    assert TOKEN not in text
    assert "inline token is set" in text
    assert "active: false" in text
    doc, errors = validate_file(text, CATALOG)
    assert errors == [] and [o.uuid for o in doc.organizations] == [ORG]
    assert validate_against(doc, snap) == []  # the inline org stays configured in the topic
    assert doc.templates[0].active is False


def test_inline_api_key_in_the_file_is_a_warning_and_hidden():
    text = SPEC_EXAMPLE.replace("api_key_env: CREDLY_TOKEN_ACME", f"api_key: {TOKEN}")
    result = check_file(text, CATALOG)
    assert result.errors == []
    assert [(w.path, w.line, w.severity) for w in result.warnings] == [
        ("organizations[0].api_key", 3, "warning")]
    assert result.document.warnings == result.warnings
    assert TOKEN not in repr(result.document) and TOKEN not in str(result.document)
    [org, _] = document_to_entities(result.document, _snapshot(_synced(TPL_A)))
    assert org.api_key.get_secret_value() == TOKEN and TOKEN not in repr(org)


# --- SPEC §8: the optional keys ------------------------------------------------------------------

TPL_C = "7d4f6a52-0000-4000-8000-0000000000cc"

RULES_SPEC = f"""\
organizations:
  - uuid: {ORG}
    api_key_env: CREDLY_TOKEN_ACME
templates:
  - uuid: {TPL_A}
    active: true
    requirements:
      - id: demo
        event_type: {PASSING}
        rules:
          - {{key_path: is_passing, operator: "=", value: "true"}}
  - uuid: {TPL_B}
    active: true
    groups:
      electives: {{min: 2}}
    complete_within: P180D
    expires_after: P365D
    requirements:
      - id: core
        event_type: {PASSING}
        not_before: 2026-01-01T00:00:00Z
        not_after: 2026-12-31T23:59:59Z
        rules:
          - {{key_path: course.course_key, operator: "=", value: "course-v1:O+Core+1"}}
      - id: e1
        group: electives
        event_type: {PASSING}
        rules:
          - {{key_path: course.course_key, operator: "=", value: "course-v1:O+E1+1"}}
      - id: e2
        group: electives
        event_type: {PASSING}
        rules:
          - {{key_path: course.course_key, operator: "=", value: "course-v1:O+E2+1"}}
      - id: e3
        group: electives
        event_type: {PASSING}
        rules:
          - {{key_path: course.course_key, operator: "=", value: "course-v1:O+E3+1"}}
      - id: foundations-badge
        badge: {TPL_A}
"""


def test_new_keys_validate_merge_export_and_round_trip():
    doc, errors = validate_file(RULES_SPEC, CATALOG)
    assert errors == [] and doc.warnings == []
    snap = _snapshot(_synced(TPL_A), _synced(TPL_B))
    assert validate_against(doc, snap) == []
    org, a, b = document_to_entities(doc, snap)
    assert b.groups["electives"].min == 2
    assert (b.complete_within, b.expires_after) == ("P180D", "P365D")
    core, badge = b.requirements[0], b.requirements[-1]
    assert (core.not_before, core.not_after) == ("2026-01-01T00:00:00Z", "2026-12-31T23:59:59Z")
    assert (badge.badge, badge.event_type, badge.rules) == (TPL_A, "", [])
    merged = ConfigSnapshot.from_entities([org, a, b])
    # through the configuration topic and back
    assert ConfigSnapshot.from_records(merged.records()) == merged
    text = export_document(merged)
    doc2, errors2 = validate_file(text, CATALOG)
    assert errors2 == [], text
    assert ConfigSnapshot.from_entities(document_to_entities(doc2, merged)) == merged


def test_a_file_without_the_new_keys_means_what_it_meant_before():
    doc, _ = validate_file(SPEC_EXAMPLE, CATALOG)
    [_, tpl] = document_to_entities(doc, _snapshot(_synced(TPL_A)))
    assert (tpl.groups, tpl.complete_within, tpl.expires_after) == ({}, None, None)
    req = tpl.requirements[0]
    assert (req.badge, req.not_before, req.not_after) == (None, None, None)
    # and records written before the keys existed still decode to the same entity
    old = {k: v for k, v in tpl.model_dump(mode="json").items()
           if k not in ("groups", "complete_within", "expires_after")}
    old["requirements"] = [{k: v for k, v in r.items() if k not in ("badge", "not_before", "not_after")}
                           for r in old["requirements"]]
    assert Template.model_validate(old) == tpl
    assert "groups" not in export_document(_snapshot(tpl))


BAD_RULES = f"""\
organizations: []
templates:
  - uuid: {TPL_A}
    groups:
      electives: {{min: 3}}
      nobody: {{min: 1}}
      core: {{min: 0, max: 2}}
    complete_within: P1Y
    expires_after: soon
    requirements:
      - id: e1
        group: electives
        event_type: {PASSING}
        not_before: 2026-02-01
        rules: [{{key_path: is_passing, operator: "=", value: "true"}}]
      - id: e2
        group: electives
        event_type: {PASSING}
        not_before: 2026-12-01T00:00:00Z
        not_after: 2026-01-01T00:00:00Z
        rules: [{{key_path: is_passing, operator: "=", value: "true"}}]
      - id: c
        group: core
        badge: {TPL_B}
        event_type: {PASSING}
      - id: nothing
    penalties:
      - id: p
        event_type: {PASSING}
        requirements: [c]
        rules: [{{key_path: is_passing, operator: "=", value: "false"}}]
  - uuid: {TPL_B}
    requirements:
      - id: back
        badge: {TPL_A}
"""


def test_new_keys_report_every_error_with_path_and_line():
    result = check_file(BAD_RULES, CATALOG)
    assert result.document is None
    got = {(e.path, e.line): e.message for e in result.errors}
    expected = {
        ("templates[0].groups.electives.min", 5): "between 1 and 2",
        ("templates[0].groups.nobody", 6): "no requirement is in group 'nobody'",
        ("templates[0].groups.core.min", 7): "between 1 and 1",
        ("templates[0].groups.core.max", 7): "unknown field 'max'; valid: min",
        ("templates[0].complete_within", 8): "years and months",
        ("templates[0].expires_after", 9): "not an ISO 8601 duration",
        ("templates[0].requirements[0].not_before", 14): "needs a time zone",
        ("templates[0].requirements[1].not_after", 20): "before not_before",
        ("templates[0].requirements[2].event_type", 25): "a badge requirement has no event_type",
        ("templates[0].requirements[3].event_type", 26): "required field 'event_type' is missing",
        ("templates[0].penalties[0].requirements[0]", 30): "is a badge requirement",
        ("templates[1].requirements[0].badge", 35): "cycle: ",
    }
    for place, text in expected.items():
        assert text in got.get(place, ""), (place, got)
    assert len(got) == len(expected), got
    assert f"{TPL_A} -> {TPL_B} -> {TPL_A}" in got[("templates[1].requirements[0].badge", 35)]


def test_a_badge_of_an_unknown_template_or_a_cycle_through_the_topic_is_an_error():
    text = RULES_SPEC.replace(f"badge: {TPL_A}", f"badge: {TPL_C}")
    doc, errors = validate_file(text, CATALOG)
    assert errors == []
    snap = _snapshot(_synced(TPL_A), _synced(TPL_B))
    [unknown] = validate_against(doc, snap)
    assert (unknown.path, unknown.line) == ("templates[1].requirements[4].badge", 41)
    assert "unknown template" in unknown.message
    # TPL_C (in the topic, not in the file) names TPL_B's badge: TPL_B -> TPL_C -> TPL_B
    back = Template.model_validate({**_synced(TPL_C).model_dump(),
                                    "requirements": [{"id": "x", "badge": TPL_B}]})
    [cycle] = validate_against(doc, _snapshot(_synced(TPL_A), _synced(TPL_B), back))
    assert cycle.path == "templates[1].requirements[4].badge" and "cycle" in cycle.message


def test_rule_less_requirement_on_a_frequent_event_type_is_a_warning():
    text = SPEC_EXAMPLE.replace(
        "        group: A                      # optional\n        rules:\n"
        "          - {key_path: is_passing, operator: \"=\", value: \"true\"}\n"
        "          - {key_path: course.course_key, operator: \"=\", value: \"course-v1:OpenedX+DemoX+Demo_Course\"}\n",
        "        group: A\n")
    result = check_file(text, CATALOG)
    assert result.errors == [] and result.document is not None
    [warning] = result.warnings
    assert (warning.path, warning.line) == ("templates[0].requirements[0].rules", 8)
    assert "every org.openedx.learning.course.passing.status.updated.v1 event" in warning.message
    # a rare event type (a certificate being created) is no warning
    rare = text.replace("event_type: org.openedx.learning.course.passing.status.updated.v1\n"
                        "        description", "event_type: org.openedx.learning.certificate.created.v1\n"
                        "        description")
    assert check_file(rare, CATALOG).warnings == []


def test_config_validate_prints_warnings_and_exits_zero(tmp_path):
    from typer.testing import CliRunner

    from badges.cli.main import app

    path = tmp_path / "rule-less.yaml"
    path.write_text(SPEC_EXAMPLE.replace(
        "        rules:\n          - {key_path: is_passing, operator: \"=\", value: \"false\"}\n"
        "          - {key_path: course.course_key, operator: \"=\", value: \"course-v1:OpenedX+DemoX+Demo_Course\"}\n",
        ""))
    result = CliRunner().invoke(app, ["config", "validate", "--offline", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "templates[0].penalties[0].rules" in result.output
    assert "valid" in result.output


ACC_ORG = "5e1d0c2a-0000-4000-8000-0000000000a1"


def test_provider_key_validates_with_its_line_merges_and_exports():
    text = textwrap.dedent(f"""\
        organizations:
          - uuid: {ACC_ORG}
            provider: accredible
            api_key_env: ACCREDIBLE_KEY
          - uuid: {ORG}
            provider: badgr
            api_key_env: CREDLY_TOKEN_ACME
        templates: []
    """)
    errors = {(e.path, e.line) for e in validate_file(text, CATALOG)[1]}
    assert errors == {("organizations[1].provider", 6)}
    doc, errors = validate_file(text.replace("provider: badgr\n    ", ""), CATALOG)
    assert errors == [] and doc is not None
    acc, credly = document_to_entities(doc, ConfigSnapshot())
    assert (acc.provider, credly.provider) == ("accredible", "credly")
    exported = export_document(ConfigSnapshot.from_entities([acc, credly]))
    assert exported.count("provider: accredible") == 1 and "provider: credly" not in exported
    assert ConfigSnapshot.from_entities(document_to_entities(validate_file(exported, CATALOG)[0], ConfigSnapshot())) \
        == ConfigSnapshot.from_entities([acc, credly])


def test_a_file_without_provider_keeps_the_provider_the_organization_was_added_with():
    added = Organization(uuid=ACC_ORG, name="On Accredible", provider="accredible", api_key_env="K")
    doc, errors = validate_file(f"organizations:\n  - uuid: {ACC_ORG}\n    api_key_env: K\ntemplates: []\n", CATALOG)
    assert errors == [] and doc is not None
    [org] = document_to_entities(doc, ConfigSnapshot.from_entities([added]))
    assert (org.provider, org.name) == ("accredible", "On Accredible")


def test_event_types_that_cannot_drive_requirements_are_refused_where_they_are_written():
    text = textwrap.dedent(f"""\
        templates:
          - uuid: {TPL_A}
            requirements:
              - id: grades
                event_type: org.openedx.learning.course.persistent_grade_summary.changed.v1
              - id: mine
                event_type: org.openedx.learning.badge.awarded.v1
            penalties:
              - id: p
                event_type: org.openedx.learning.course.persistent_grade_summary.changed.v1
                requirements: [grades]
        """)
    result = check_file(text, CATALOG)
    assert result.document is None
    assert [str(e) for e in result.errors] == [
        "templates[0].requirements[0].event_type (line 5): event type "
        "org.openedx.learning.course.persistent_grade_summary.changed.v1 cannot drive requirements: "
        "it carries no UserData",
        "templates[0].requirements[1].event_type (line 7): event type "
        "org.openedx.learning.badge.awarded.v1 cannot drive requirements: it is this worker's own output",
        "templates[0].penalties[0].event_type (line 10): event type "
        "org.openedx.learning.course.persistent_grade_summary.changed.v1 cannot drive requirements: "
        "it carries no UserData",
    ]


# --- one rule, one place: the validator reports compilation's findings ---------------------------


def test_every_semantic_error_is_a_finding_of_compilation_at_its_yaml_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file validator has no copy of the rules: what compilation finds in a template is what
    the file reports, each finding at ``templates[i]`` + its place; with compilation finding
    nothing, only the structural errors and the file's own (keys, uuids, cycles) are left."""
    import badges.config.file as file_module
    from badges.domain.findings import Finding
    from badges.domain.index import compile_template
    from badges.domain.model import CompiledTemplate
    from badges.schemas.catalog import Catalog

    made: list[tuple[str, str]] = []  # (template uuid, YAML path under it) of each error found

    def spy(entity: Template, catalog: Catalog | None, findings: list[Finding]) -> CompiledTemplate:
        start = len(findings)
        compiled = compile_template(entity, catalog, findings)
        made.extend((entity.uuid, file_module.format_path(f.place)) for f in findings[start:] if f.is_error)
        return compiled

    monkeypatch.setattr(file_module, "compile_template", spy)
    reported = {e.path for e in check_file(BAD_RULES, CATALOG).errors}
    index = {TPL_A: 0, TPL_B: 1}
    from_compilation = {f"templates[{index[uuid]}].{place}" for uuid, place in made}
    assert {
        "templates[0].groups.electives.min", "templates[0].groups.nobody", "templates[0].groups.core.min",
        "templates[0].requirements[1].not_after", "templates[0].penalties[0].requirements[0]",
    } <= from_compilation <= reported
    # the placeholder of the requirement without an event type is not reported twice
    assert "templates[0].requirements[3].event_type" in from_compilation

    monkeypatch.setattr(file_module, "compile_template", lambda entity, catalog, findings: None)
    without = {e.path for e in check_file(BAD_RULES, CATALOG).errors}
    assert without == reported - (from_compilation - {"templates[0].requirements[3].event_type"})
    assert without.isdisjoint({"templates[0].groups.electives.min", "templates[0].requirements[1].not_after"})


def test_a_duplicate_id_names_the_first_and_is_still_checked() -> None:
    text = SPEC_EXAMPLE.replace(
        "    penalties:\n",
        "      - id: demo\n"
        "        event_type: org.openedx.learning.course.passing.status.updated.v1\n"
        "        rules:\n"
        "          - {key_path: is_pasing, operator: \"=\", value: \"true\"}\n"
        "    penalties:\n")
    errors = [str(e) for e in check_file(text, CATALOG).errors]
    assert errors[0] == ("templates[0].requirements[1].id (line 15): duplicate requirement id 'demo' "
                         "(also templates[0].requirements[0], line 8)")
    assert errors[1].startswith("templates[0].requirements[1].rules[0].key_path (line 18): unknown key path "
                                "'is_pasing'")
    assert len(errors) == 2


def test_activation_kept_from_the_topic_is_checked_by_compilation_too() -> None:
    doc, errors = validate_file(f"organizations: []\ntemplates:\n  - uuid: {TPL_A}\n", CATALOG)
    assert errors == []
    [error] = validate_against(doc, _snapshot(_synced(TPL_A, active=True)))
    assert str(error) == ("templates[0] (line 3): the template is active in the configuration topic "
                          "and needs at least one requirement")
