"""The rules engine against every example of the Open edX Credentials badges documentation
(docs/badges/examples.rst) plus groups, penalties and the idempotence rules of SPEC §2."""

from __future__ import annotations

import copy

import orjson
import pytest

from badges.domain.engine import Award, Decision, Revoke, apply_event
from badges.domain.explain import explain
from tests.unit.test_domain_builders import (
    CCX1,
    CCX2,
    CCX3,
    CCX_PASSING,
    CERT_CREATED,
    DEMO,
    FOURTH,
    OTHER,
    OTHER_CCX,
    PASSING,
    THIRD,
    ccx_passing,
    certificate_created,
    compile_templates,
    course_rule,
    passing,
    passing_rule,
    pen,
    req,
    rule,
    run,
    template,
)

# --- the documented examples ------------------------------------------------------------------


def test_1_any_grade_update_zero_rules_matches_every_event_of_the_type():
    tpl = template([req("any", PASSING, description="On any grade update.")])
    r = run(compile_templates(tpl), [passing(1, DEMO, is_passing=False, t=1)])
    assert r.awards() == [(1, tpl.uuid)]
    # another type does not match a requirement with no rules
    r2 = run(compile_templates(tpl), [ccx_passing(2, CCX1, DEMO, t=1)])
    assert r2.awards() == [] and r2.states == {}


def test_2_any_course_completion():
    tpl = template([req("any", PASSING, passing_rule())])
    r = run(compile_templates(tpl), [passing(1, DEMO, False, t=1), ccx_passing(1, CCX1, DEMO, t=2)])
    assert r.awards() == []
    r.feed(passing(1, OTHER, True, t=3))
    assert r.awards() == [(1, tpl.uuid)]


def test_3_any_ccx_course_completion():
    tpl = template([req("ccx", CCX_PASSING, passing_rule())])
    r = run(compile_templates(tpl), [passing(1, DEMO, True, t=1)])
    assert r.awards() == []
    r.feed(ccx_passing(1, CCX2, DEMO, True, t=2))
    assert r.awards() == [(1, tpl.uuid)]


def test_4_any_course_except_demo():
    tpl = template([req("not-demo", PASSING, passing_rule(), course_rule(DEMO, "!="))])
    cfg = compile_templates(tpl)
    assert run(cfg, [passing(1, DEMO, True, t=1)]).awards() == []
    assert run(cfg, [passing(1, OTHER, True, t=1)]).awards() == [(1, tpl.uuid)]


def test_5_specific_course_completion():
    tpl = template([req("demo", PASSING, passing_rule(), course_rule(DEMO))])
    cfg = compile_templates(tpl)
    assert run(cfg, [passing(1, OTHER, True, t=1), passing(1, DEMO, False, t=2)]).awards() == []
    assert run(cfg, [passing(1, DEMO, True, t=1)]).awards() == [(1, tpl.uuid)]


def test_6_multiple_specific_courses_all_needed_no_award_before_completion():
    tpl = template([
        req("demo", PASSING, passing_rule(), course_rule(DEMO), group="A"),
        req("other", PASSING, passing_rule(), course_rule(OTHER), group="B"),
    ])
    r = run(compile_templates(tpl), [passing(1, DEMO, True, t=1)])
    # Open edX awards on the first requirement: a bug not to copy.
    assert r.awards() == []
    assert r.fulfilled(1, tpl.uuid) == {"demo"}
    decisions = r.feed(passing(1, OTHER, True, t=2))
    assert [d.action for d in decisions] == ["award"]
    assert decisions[0].event.time == passing(1, OTHER, t=2).time  # issued_at: completing event
    assert decisions[0].cause == ("other",)


def test_7_specific_ccx_course():
    tpl = template([req("ccx1", CCX_PASSING, passing_rule(), rule("course.ccx_course_key", "=", CCX1))])
    cfg = compile_templates(tpl)
    assert run(cfg, [ccx_passing(1, CCX2, DEMO, t=1)]).awards() == []
    assert run(cfg, [ccx_passing(1, CCX1, DEMO, t=1)]).awards() == [(1, tpl.uuid)]


def test_8_any_ccx_of_a_master_course():
    tpl = template([req("demo-ccx", CCX_PASSING, passing_rule(),
                        rule("course.master_course_key", "=", DEMO))])
    cfg = compile_templates(tpl)
    assert run(cfg, [ccx_passing(1, OTHER_CCX, OTHER, t=1)]).awards() == []
    assert run(cfg, [ccx_passing(1, CCX3, DEMO, t=1)]).awards() == [(1, tpl.uuid)]


def test_9_any_ccx_of_a_master_course_except_one():
    tpl = template([req("demo-ccx", CCX_PASSING, passing_rule(),
                        rule("course.master_course_key", "=", DEMO),
                        rule("course.ccx_course_key", "!=", CCX2))])
    cfg = compile_templates(tpl)
    assert run(cfg, [ccx_passing(1, CCX2, DEMO, t=1)]).awards() == []
    assert run(cfg, [ccx_passing(1, CCX1, DEMO, t=1)]).awards() == [(1, tpl.uuid)]


def test_10_one_of_several_courses_awards_once():
    tpl = template([
        req("demo", PASSING, passing_rule(), course_rule(DEMO), group="A"),
        req("other", PASSING, passing_rule(), course_rule(OTHER), group="A"),
    ])
    cfg = compile_templates(tpl)
    assert run(cfg, [passing(1, OTHER, True, t=1)]).awards() == [(1, tpl.uuid)]
    r = run(cfg, [passing(1, DEMO, True, t=1), passing(1, OTHER, True, t=2)])
    assert r.awards() == [(1, tpl.uuid)]
    assert r.fulfilled(1, tpl.uuid) == {"demo", "other"}


def test_11_master_course_or_its_ccx_except_one():
    tpl = template([
        req("demo", PASSING, passing_rule(), course_rule(DEMO), group="A"),
        req("demo-ccx", CCX_PASSING, passing_rule(), rule("course.master_course_key", "=", DEMO),
            rule("course.ccx_course_key", "!=", CCX3), group="A"),
    ])
    cfg = compile_templates(tpl)
    assert run(cfg, [ccx_passing(1, CCX3, DEMO, t=1)]).awards() == []
    assert run(cfg, [ccx_passing(1, CCX1, DEMO, t=1)]).awards() == [(1, tpl.uuid)]
    assert run(cfg, [passing(1, DEMO, t=1)]).awards() == [(1, tpl.uuid)]


def test_groups_a_or_b_and_c():
    tpl = template([
        req("a", PASSING, passing_rule(), course_rule(DEMO), group="AB"),
        req("b", PASSING, passing_rule(), course_rule(OTHER), group="AB"),
        req("c", CERT_CREATED, course_rule(THIRD)),  # no group: its own group
    ])
    cfg = compile_templates(tpl)
    r = run(cfg, [passing(1, DEMO, t=1), passing(1, OTHER, t=2)])
    assert r.awards() == []
    r.feed(certificate_created(1, THIRD, t=3))
    assert r.awards() == [(1, tpl.uuid)]
    r2 = run(cfg, [certificate_created(2, THIRD, t=1)])
    assert r2.awards() == []
    r2.feed(passing(2, OTHER, t=2))
    assert r2.awards() == [(2, tpl.uuid)]


def test_groups_a_or_b_and_c_or_d():
    tpl = template([
        req("a", PASSING, passing_rule(), course_rule(DEMO), group="X"),
        req("b", PASSING, passing_rule(), course_rule(OTHER), group="X"),
        req("c", PASSING, passing_rule(), course_rule(THIRD), group="Y"),
        req("d", PASSING, passing_rule(), course_rule(FOURTH), group="Y"),
    ])
    cfg = compile_templates(tpl)
    r = run(cfg, [passing(1, DEMO, t=1), passing(1, OTHER, t=2)])
    assert r.awards() == []
    r.feed(passing(1, FOURTH, t=3))
    assert r.awards() == [(1, tpl.uuid)]
    r.feed(passing(1, THIRD, t=4))
    assert r.awards() == [(1, tpl.uuid)]


# --- penalties --------------------------------------------------------------------------------


def _demo_with_penalty():
    return template(
        [req("demo", PASSING, passing_rule(), course_rule(DEMO))],
        [pen("demo-failed", ["demo"], PASSING, passing_rule("false"), course_rule(DEMO))],
    )


def test_penalty_revokes_and_a_revoked_badge_is_never_awarded_again():
    tpl = _demo_with_penalty()
    r = run(compile_templates(tpl), [passing(1, DEMO, True, t=1)])
    assert r.awards() == [(1, tpl.uuid)]
    decisions = r.feed(passing(1, DEMO, False, t=2))
    assert [type(d) for d in decisions] == [Revoke]
    assert decisions[0].cause == ("demo-failed",)
    assert r.fulfilled(1, tpl.uuid) == set()
    badge = r.states[1]["templates"][tpl.uuid]["badge"]
    assert badge["status"] == "revoked" and badge["revoked_by"]["event_type"] == PASSING
    # passing again records progress but never re-awards
    assert r.feed(passing(1, DEMO, True, t=3)) == []
    assert r.fulfilled(1, tpl.uuid) == {"demo"}
    assert r.awards() == [(1, tpl.uuid)] and r.revokes() == [(1, tpl.uuid)]


def test_penalty_whose_rules_fail_does_nothing():
    tpl = _demo_with_penalty()
    r = run(compile_templates(tpl), [passing(1, DEMO, True, t=1)])
    assert r.feed(passing(1, OTHER, False, t=2)) == []  # other course: rule course_key fails
    assert r.fulfilled(1, tpl.uuid) == {"demo"}
    assert r.states[1]["templates"][tpl.uuid]["resets"] == {}


def test_penalty_before_completion_resets_progress_then_completion_awards():
    tpl = template(
        [req("demo", PASSING, passing_rule(), course_rule(DEMO), group="A"),
         req("other", PASSING, passing_rule(), course_rule(OTHER), group="B")],
        [pen("demo-failed", ["demo"], PASSING, passing_rule("false"), course_rule(DEMO))],
    )
    r = run(compile_templates(tpl), [passing(1, DEMO, True, t=1), passing(1, DEMO, False, t=2),
                                     passing(1, OTHER, True, t=3)])
    assert r.awards() == [] and r.revokes() == []
    assert r.fulfilled(1, tpl.uuid) == {"other"}
    r.feed(passing(1, DEMO, True, t=4))
    assert r.awards() == [(1, tpl.uuid)]


def test_penalty_on_one_requirement_of_a_group_keeps_the_badge_when_another_holds():
    tpl = template(
        [req("demo", PASSING, passing_rule(), course_rule(DEMO), group="A"),
         req("other", PASSING, passing_rule(), course_rule(OTHER), group="A")],
        [pen("demo-failed", ["demo"], PASSING, passing_rule("false"), course_rule(DEMO))],
    )
    r = run(compile_templates(tpl), [passing(1, DEMO, t=1), passing(1, OTHER, t=2)])
    assert r.awards() == [(1, tpl.uuid)]
    assert r.feed(passing(1, DEMO, False, t=3)) == []
    assert r.fulfilled(1, tpl.uuid) == {"other"}
    assert r.states[1]["templates"][tpl.uuid]["badge"]["status"] == "awarded"


def test_penalty_across_mixed_groups_revokes():
    tpl = template(
        [req("a", PASSING, passing_rule(), course_rule(DEMO), group="A"),
         req("b", PASSING, passing_rule(), course_rule(OTHER), group="A"),
         req("c", CERT_CREATED, course_rule(THIRD), group="C")],
        # any failed grade resets a and c
        [pen("any-failure", ["a", "c"], PASSING, passing_rule("false"))],
    )
    r = run(compile_templates(tpl), [passing(1, DEMO, t=1), certificate_created(1, THIRD, t=2)])
    assert r.awards() == [(1, tpl.uuid)]
    decisions = r.feed(passing(1, FOURTH, False, t=3))
    assert [d.action for d in decisions] == ["revoke"]
    assert r.fulfilled(1, tpl.uuid) == set()
    assert set(r.states[1]["templates"][tpl.uuid]["resets"]) == {"a", "c"}


def test_same_event_fulfils_then_penalty_resets_requirements_first():
    # "any grade update" requirement, penalty on a failing grade: one failing event matches both.
    tpl = template([req("any", PASSING)], [pen("fail", ["any"], PASSING, passing_rule("false"))])
    r = run(compile_templates(tpl), [passing(1, DEMO, False, t=1)])
    assert r.awards() == []
    assert r.fulfilled(1, tpl.uuid) == set()
    r.feed(passing(1, DEMO, True, t=2))
    assert r.awards() == [(1, tpl.uuid)]


def test_penalty_older_than_the_fulfilling_event_does_not_undo_it():
    tpl = _demo_with_penalty()
    r = run(compile_templates(tpl), [passing(1, DEMO, True, t=5)])
    assert r.feed(passing(1, DEMO, False, t=3)) == []  # delivered late, happened before
    assert r.fulfilled(1, tpl.uuid) == {"demo"}
    assert r.states[1]["templates"][tpl.uuid]["badge"]["status"] == "awarded"


def test_stale_event_after_a_reset_is_ignored():
    tpl = _demo_with_penalty()
    first = passing(1, DEMO, True, t=1)
    r = run(compile_templates(tpl), [first, passing(1, DEMO, False, t=2)])
    state = r.states[1]
    outcome = apply_event(state, r.config, first)  # replayed from the topic
    assert outcome.changed is False
    assert [(d.action, d.replayed) for d in outcome.decisions] == [("award", True)]  # re-emitted, see below
    # an older, different passing event is stale too
    outcome = apply_event(state, r.config, passing(1, DEMO, True, t=0))
    assert outcome.changed is False
    assert r.fulfilled(1, tpl.uuid) == set()


def test_newer_matching_event_survives_a_penalty_delivered_after_it():
    """Pass (t1), pass again (t3), penalty (t2) delivered last: the t3 pass stands."""
    tpl = template([req("demo", PASSING, passing_rule(), course_rule(DEMO)),
                    req("other", PASSING, passing_rule(), course_rule(OTHER))],
                   [pen("demo-failed", ["demo"], PASSING, passing_rule("false"), course_rule(DEMO))])
    cfg = compile_templates(tpl)
    events = [passing(1, DEMO, True, t=1), passing(1, DEMO, True, t=3),
              passing(1, DEMO, False, t=2)]
    in_order = run(cfg, sorted(events, key=lambda e: e.time_us))
    shuffled = run(cfg, events)
    assert in_order.fulfilled(1, tpl.uuid) == shuffled.fulfilled(1, tpl.uuid) == {"demo"}


def test_penalty_without_state_records_the_reset_so_older_events_stay_stale():
    tpl = _demo_with_penalty()
    r = run(compile_templates(tpl), [passing(1, DEMO, False, t=5)])
    penalty_time = r.states[1]["templates"][tpl.uuid]["resets"]["demo"]
    assert r.states[1]["templates"][tpl.uuid]["fulfilled"] == {}
    older = passing(1, DEMO, True, t=4)
    assert older.time_us < penalty_time
    r.feed(older)
    assert r.fulfilled(1, tpl.uuid) == set() and r.awards() == []
    r.feed(passing(1, DEMO, True, t=6))
    assert r.awards() == [(1, tpl.uuid)]


# --- idempotence and re-emission ---------------------------------------------------------------


def test_duplicate_events_change_nothing():
    tpl = template([req("demo", PASSING, passing_rule(), course_rule(DEMO), group="A"),
                    req("other", PASSING, passing_rule(), course_rule(OTHER), group="B")])
    cfg = compile_templates(tpl)
    event = passing(1, DEMO, True, t=1)
    first = apply_event(None, cfg, event)
    assert first.changed and first.matched_requirements == 1
    second = apply_event(first.state, cfg, event)
    assert second.changed is False and second.decisions == [] and second.state is first.state
    assert second.already_applied is True


def test_completing_event_applied_again_re_emits_the_award_as_replayed():
    tpl = _demo_with_penalty()
    cfg = compile_templates(tpl)
    event = passing(1, DEMO, True, t=1)
    first = apply_event(None, cfg, event)
    [award] = first.decisions
    assert isinstance(award, Award) and award.replayed is False
    again = apply_event(first.state, cfg, event)
    assert again.changed is False
    [replayed] = again.decisions
    assert replayed.replayed is True and replayed.action == "award"
    assert (replayed.template, replayed.event, replayed.learner) == (
        award.template, award.event, award.learner)
    # the revoking event likewise
    failing = passing(1, DEMO, False, t=2)
    revoked = apply_event(again.state, cfg, failing)
    [revoke] = revoked.decisions
    assert revoke.action == "revoke" and not revoke.replayed
    [replayed_revoke] = apply_event(revoked.state, cfg, failing).decisions
    assert replayed_revoke.action == "revoke" and replayed_revoke.replayed
    assert replayed_revoke.event == revoke.event
    # the completing event applied again after the revoke re-emits its award (a crash may have
    # lost both decisions after the state was written; the sink skips awards it saw revoked),
    # and never awards anew
    after = apply_event(revoked.state, cfg, event)
    assert after.changed is False and after.already_applied
    [late] = after.decisions
    assert late.action == "award" and late.replayed and late.event == award.event


def test_input_state_is_never_mutated_and_state_is_plain_json():
    tpl = _demo_with_penalty()
    other = template([req("other", PASSING, passing_rule(), course_rule(OTHER))])
    cfg = compile_templates(tpl, other)
    state = apply_event(None, cfg, passing(1, OTHER, True, t=1)).state
    frozen = copy.deepcopy(state)
    outcome = apply_event(state, cfg, passing(1, DEMO, True, t=2))
    assert state == frozen
    assert outcome.state["templates"][other.uuid] is state["templates"][other.uuid]  # shared
    assert orjson.loads(orjson.dumps(outcome.state)) == outcome.state


# --- templates, identity -----------------------------------------------------------------------


def test_inactive_template_records_nothing_and_keeps_its_state():
    active = _demo_with_penalty()
    cfg = compile_templates(active)
    state = apply_event(None, cfg, passing(1, DEMO, True, t=1)).state
    inactive = active.model_copy(update={"is_active": False})
    cfg_off = compile_templates(inactive)
    outcome = apply_event(state, cfg_off, passing(1, DEMO, False, t=2))
    assert outcome.changed is False and outcome.decisions == []
    assert outcome.state["templates"][active.uuid]["badge"]["status"] == "awarded"
    # a learner without state gets none from an inactive template
    assert apply_event(None, cfg_off, passing(2, DEMO, True, t=2)).state is None


def test_template_archived_in_credly_is_not_processed():
    tpl = template([req("demo", PASSING, passing_rule(), course_rule(DEMO))],
                   credly_state="archived")
    cfg = compile_templates(tpl)
    assert not cfg.templates[tpl.uuid].active
    assert apply_event(None, cfg, passing(1, DEMO, True, t=1)).decisions == []


def test_events_matching_nothing_create_no_state():
    cfg = compile_templates(_demo_with_penalty())
    outcome = apply_event(None, cfg, passing(1, OTHER, True, t=1))
    assert outcome.state is None and outcome.changed is False and outcome.decisions == []


def test_identity_keeps_the_latest_values():
    tpl = template([req("demo", PASSING, passing_rule(), course_rule(DEMO), group="A"),
                    req("other", PASSING, passing_rule(), course_rule(OTHER), group="B")])
    cfg = compile_templates(tpl)
    r = run(cfg, [passing(1, DEMO, True, t=1, email="old@example.test", name="Ada Old")])
    # an event matching nothing still refreshes a known learner's identity
    outcome = apply_event(r.states[1], cfg, passing(1, THIRD, True, t=2, email="new@example.test",
                                                    name="Ada Lovelace"))
    assert outcome.changed
    assert outcome.state["learner"]["email"] == "new@example.test"
    # an older event does not overwrite it
    older = apply_event(outcome.state, cfg, passing(1, THIRD, True, t=0, email="older@example.test"))
    assert older.changed is False
    decisions = apply_event(outcome.state, cfg, passing(1, OTHER, True, t=3,
                                                         email="new@example.test",
                                                         name="Ada Lovelace")).decisions
    assert decisions[0].learner.email == "new@example.test"
    assert decisions[0].learner.name == "Ada Lovelace"


def test_badge_record_keeps_the_completing_event_and_key_fields():
    tpl = template([req("any", PASSING, passing_rule())])
    cfg = compile_templates(tpl)
    event = passing(7, OTHER, True, t=9)
    state = apply_event(None, cfg, event).state
    badge = state["templates"][tpl.uuid]["badge"]
    assert badge["event_id"] == event.event_id and badge["time"] == event.time
    assert badge["key_fields"] == {"course.course_key": OTHER}


def test_decision_dict_round_trip():
    tpl = template([req("demo", PASSING, passing_rule(), course_rule(DEMO))])
    [award] = apply_event(None, compile_templates(tpl), passing(1, DEMO, True, t=1)).decisions
    data = orjson.loads(orjson.dumps(award.to_dict()))
    assert Decision.from_dict(data) == award
    assert data["action"] == "award" and data["template"] == tpl.uuid


def test_sample_configuration_other_course_via_ccx_and_certificate():
    from importlib import resources

    from badges.config.entities import ConfigSnapshot
    from badges.config.file import document_to_entities, validate_file
    from badges.domain.index import compile_config
    from tests.unit.test_domain_builders import CATALOG, organization

    text = resources.files("badges.config").joinpath("sample.yaml").read_text()
    doc, errors = validate_file(text, CATALOG)
    assert errors == []
    synced = [template([], uuid=t.uuid, active=False) for t in doc.templates]
    snapshot = ConfigSnapshot.from_entities([organization(), *synced])
    cfg = compile_config(ConfigSnapshot.from_entities(document_to_entities(doc, snapshot)), CATALOG)
    other = "7d4f6a52-0000-4000-8000-0000000000bb"
    base = "course-v1:OpenedX+Other+2024"
    r = run(cfg, [ccx_passing(1, "ccx-v1:OpenedX+Other+2024+ccx@2", base, t=1)])
    assert r.states == {}  # not the configured CCX
    r.feed(ccx_passing(1, "ccx-v1:OpenedX+Other+2024+ccx@1", base, t=2))
    assert r.awards() == []
    r.feed(certificate_created(1, base, t=3))
    assert r.awards() == [(1, other)]


# --- explain -----------------------------------------------------------------------------------


def test_explain_lists_groups_requirements_and_badge():
    tpl = template(
        [req("demo", PASSING, passing_rule(), course_rule(DEMO), group="A",
             description="Demo course"),
         req("other", PASSING, passing_rule(), course_rule(OTHER), group="A"),
         req("cert", CERT_CREATED, course_rule(DEMO))],
        [pen("demo-failed", ["demo"], PASSING, passing_rule("false"), course_rule(DEMO))],
        name="Demo badge",
    )
    cfg = compile_templates(tpl)
    event = passing(1, DEMO, True, t=1)
    r = run(cfg, [event])
    [view] = explain(r.states[1], cfg)
    assert view["name"] == "Demo badge" and view["complete"] is False and view["badge"] is None
    group_a, group_cert = view["groups"]
    assert group_a["name"] == "A" and group_a["fulfilled"] is True
    assert group_a["requirements"][0]["fulfilled_by"]["event_id"] == event.event_id
    assert group_a["requirements"][0]["rules"] == [
        "is_passing = true", f"course.course_key = {DEMO}"]
    assert group_a["requirements"][1]["fulfilled"] is False
    assert group_cert["name"] is None and group_cert["fulfilled"] is False
    assert view["penalties"][0]["targets"] == ["demo"]
    r.feed(certificate_created(1, DEMO, t=2))
    [view] = explain(r.states[1], cfg)
    assert view["complete"] is True and view["badge"]["status"] == "awarded"
    assert orjson.loads(orjson.dumps(view)) == view


@pytest.mark.parametrize("word,expected", [("true", True), ("Yes", True), ("+", True),
                                           ("no", False), ("-", False), ("False", False)])
def test_boolean_words(word, expected):
    tpl = template([req("demo", PASSING, rule("is_passing", "eq", word), course_rule(DEMO))])
    cfg = compile_templates(tpl)
    assert bool(run(cfg, [passing(1, DEMO, expected, t=1)]).awards())
    assert not run(cfg, [passing(1, DEMO, not expected, t=1)]).awards()


def test_missing_values_never_equal_anything():
    # the builders send course.end as null
    eq = template([req("eq", PASSING, rule("course.end", "=", "None"))])
    ne = template([req("ne", PASSING, rule("course.end", "!=", "2030-01-01"))])
    cfg = compile_templates(eq, ne)
    r = run(cfg, [passing(1, DEMO, True, t=1)])
    assert r.awards() == [(1, ne.uuid)]


def test_numbers_compare_as_their_string():
    tpl = template([req("big", CCX_PASSING, rule("course.max_students_allowed", "=", "200"))])
    assert run(compile_templates(tpl), [ccx_passing(1, CCX1, DEMO, t=1)]).awards()


def test_sample_configuration_graduate_needs_the_demo_badge_and_two_electives():
    from importlib import resources

    from badges.config.entities import ConfigSnapshot
    from badges.config.file import document_to_entities, validate_file
    from badges.domain.index import compile_config
    from tests.unit.test_domain_builders import CATALOG, organization

    text = resources.files("badges.config").joinpath("sample.yaml").read_text()
    doc, _ = validate_file(text, CATALOG)
    synced = [template([], uuid=t.uuid, active=False) for t in doc.templates]
    snapshot = ConfigSnapshot.from_entities([organization(), *synced])
    cfg = compile_config(ConfigSnapshot.from_entities(document_to_entities(doc, snapshot)), CATALOG)
    demo, graduate = "7d4f6a52-0000-4000-8000-0000000000aa", "7d4f6a52-0000-4000-8000-0000000000dd"
    # the test events are of November 2023: before elective-1's window opens
    r = run(cfg, [passing(1, "course-v1:OpenedX+Elective1+2024", t=1),
                  passing(1, "course-v1:OpenedX+Elective3+2024", t=2)])
    r.feed(passing(1, "course-v1:OpenedX+DemoX+Demo_Course", t=3))
    assert r.awards() == [(1, demo)]
    r = run(cfg, [passing(1, "course-v1:OpenedX+Elective2+2024", t=1),
                  passing(1, "course-v1:OpenedX+Elective3+2024", t=2)])
    assert r.awards() == []
    r.feed(passing(1, "course-v1:OpenedX+DemoX+Demo_Course", t=3))
    assert r.awards() == [(1, demo), (1, graduate)]
    r.feed(passing(1, "course-v1:OpenedX+DemoX+Demo_Course", False, t=4))
    assert r.revokes() == [(1, demo), (1, graduate)]
