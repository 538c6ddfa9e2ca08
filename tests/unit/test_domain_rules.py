"""SPEC §8 in the rules engine: N of M, windows, complete_within, expiry, badge of badges and
manual commands. (The properties over generated configurations are in test_domain_properties.)"""

from __future__ import annotations

from badges.domain.engine import apply_event
from badges.domain.explain import explain
from tests.unit.test_domain_builders import (
    BASE_US,
    DEMO,
    FOURTH,
    OTHER,
    PASSING,
    THIRD,
    badge_req,
    compile_templates,
    course_rule,
    manual,
    passing,
    passing_rule,
    pen,
    req,
    run,
    template,
    tpl_uuid,
    window,
)

FIFTH = "course-v1:edX+DemoX+Fifth_Course"


def _course(rid: str, course: str, group: str | None = None) -> dict:
    return req(rid, PASSING, passing_rule(), course_rule(course), group=group)


def _two_of_three(**rules):
    return template([_course("core", DEMO), _course("e1", OTHER, "electives"),
                     _course("e2", THIRD, "electives"), _course("e3", FOURTH, "electives")],
                    [pen("e1-failed", ["e1"], PASSING, passing_rule("false"), course_rule(OTHER))],
                    groups={"electives": {"min": 2}}, **rules)


# --- N of M ------------------------------------------------------------------------------------


def test_n_of_m_awards_at_the_nth_fulfillment_of_the_group():
    tpl = _two_of_three()
    r = run(compile_templates(tpl), [passing(1, DEMO, t=1), passing(1, OTHER, t=2)])
    assert r.awards() == []
    [award] = r.feed(passing(1, FOURTH, t=3))
    assert award.action == "award" and award.cause == ("e3",)
    assert r.feed(passing(1, THIRD, t=4)) == []  # a third elective changes nothing


def test_n_of_m_group_dropping_below_min_revokes():
    tpl = _two_of_three()
    r = run(compile_templates(tpl), [passing(1, DEMO, t=1), passing(1, OTHER, t=2),
                                     passing(1, THIRD, t=3)])
    assert r.awards() == [(1, tpl.uuid)]
    [revoke] = r.feed(passing(1, OTHER, False, t=4))
    assert revoke.action == "revoke" and revoke.cause == ("e1-failed",)


def test_n_of_m_penalty_leaving_enough_keeps_the_badge():
    tpl = _two_of_three()
    r = run(compile_templates(tpl), [passing(1, DEMO, t=1), passing(1, OTHER, t=2),
                                     passing(1, THIRD, t=3), passing(1, FOURTH, t=4)])
    assert r.feed(passing(1, OTHER, False, t=5)) == [] and r.revokes() == []


# --- windows -----------------------------------------------------------------------------------


def test_an_event_outside_the_window_does_not_match():
    tpl = template([window(_course("demo", DEMO), not_before=10, not_after=20)])
    cfg = compile_templates(tpl)
    r = run(cfg, [passing(1, DEMO, t=9), passing(1, DEMO, t=21)])
    assert r.awards() == [] and r.states == {}
    r.feed(passing(1, DEMO, t=20))  # bounds are inclusive
    assert r.awards() == [(1, tpl.uuid)]
    assert run(cfg, [passing(2, DEMO, t=10)]).awards() == [(2, tpl.uuid)]


# --- complete_within ---------------------------------------------------------------------------


def test_complete_within_ignores_aged_out_fulfillments_and_awards_at_the_first_fitting_event():
    tpl = template([_course("a", DEMO), _course("b", OTHER)], complete_within="PT10S")
    cfg = compile_templates(tpl)
    r = run(cfg, [passing(1, DEMO, t=0), passing(1, OTHER, t=11)])
    assert r.awards() == []  # DEMO (t=0) aged out by t=11
    [award] = r.feed(passing(1, DEMO, t=15))  # DEMO refreshed within the span of OTHER
    assert award.event.time_us == BASE_US + 15_000_000  # issued_at is the completing event
    assert award.cause == ("a",)
    # in time: the second fulfillment completes
    assert run(cfg, [passing(2, DEMO, t=0), passing(2, OTHER, t=10)]).awards() == [(2, tpl.uuid)]


def test_without_complete_within_an_old_fulfillment_still_counts():
    tpl = template([_course("a", DEMO), _course("b", OTHER)])
    r = run(compile_templates(tpl), [passing(1, DEMO, t=0), passing(1, OTHER, t=10**6)])
    assert r.awards() == [(1, tpl.uuid)]


def test_explain_shows_aged_out_fulfillments_and_n_of_m_counts():
    tpl = _two_of_three(complete_within="PT10S")
    r = run(compile_templates(tpl), [passing(1, DEMO, t=0), passing(1, OTHER, t=8)])
    [view] = explain(r.states[1], compile_templates(tpl), now_us=BASE_US + 12_000_000)
    core, electives = view["groups"]
    assert core["requirements"][0]["aged_out"] is True
    assert (electives["min"], electives["count"], electives["size"]) == (2, 1, 3)
    assert electives["requirements"][0]["aged_out"] is False
    assert view["complete_within"] == "PT10S"


# --- expiry ------------------------------------------------------------------------------------


def test_expiry_sets_expires_at_and_only_a_new_completion_after_it_awards_again():
    tpl = template([_course("a", DEMO), _course("b", OTHER)], expires_after="PT100S")
    cfg = compile_templates(tpl)
    r = run(cfg, [passing(1, DEMO, t=1), passing(1, OTHER, t=2)])
    [award] = r.decisions
    assert award.expires_at == "2023-11-14T22:15:02+00:00"  # t=2 + 100 s
    badge = r.states[1]["templates"][tpl.uuid]["badge"]
    assert badge["expires_at"] == award.expires_at and badge["expires_us"] == BASE_US + 102_000_000
    # after the expiry, one requirement again is not a new completion...
    assert r.feed(passing(1, DEMO, t=150)) == []
    # ...until every requirement is fulfilled after the expiry
    [renewal] = r.feed(passing(1, OTHER, t=160))
    assert renewal.action == "award" and renewal.renewal and not renewal.replayed
    assert r.states[1]["templates"][tpl.uuid]["badge"]["event_id"] == renewal.event.event_id
    # and a penalty-free template is not revoked by the expiry itself
    assert r.revokes() == []


# --- badge of badges ---------------------------------------------------------------------------


def _foundations_and_advanced():
    foundations = template([_course("demo", DEMO)],
                           [pen("demo-failed", ["demo"], PASSING, passing_rule("false"),
                                course_rule(DEMO))])
    advanced = template([badge_req("foundations", foundations.uuid), _course("other", OTHER)])
    return foundations, advanced


def test_badge_of_badges_awards_in_the_same_event_and_revokes_in_cascade():
    foundations, advanced = _foundations_and_advanced()
    capstone = template([badge_req("advanced", advanced.uuid)])
    cfg = compile_templates(capstone, advanced, foundations)
    r = run(cfg, [passing(1, OTHER, t=1)])
    assert r.awards() == []
    decisions = r.feed(passing(1, DEMO, t=2))
    assert [(d.action, d.template) for d in decisions] == [
        ("award", foundations.uuid), ("award", advanced.uuid), ("award", capstone.uuid)]
    assert {d.event.event_id for d in decisions} == {decisions[0].event.event_id}
    assert decisions[1].cause == ("foundations",)
    revokes = r.feed(passing(1, DEMO, False, t=3))
    assert [(d.action, d.template) for d in revokes] == [
        ("revoke", foundations.uuid), ("revoke", advanced.uuid), ("revoke", capstone.uuid)]
    # revoked badges are never awarded again by processing
    assert r.feed(passing(1, DEMO, t=4)) == []


def test_badge_requirement_met_before_the_own_requirement():
    foundations, advanced = _foundations_and_advanced()
    r = run(compile_templates(foundations, advanced), [passing(1, DEMO, t=1)])
    assert r.awards() == [(1, foundations.uuid)]
    [award] = r.feed(passing(1, OTHER, t=2))
    assert (award.template, award.cause) == (advanced.uuid, ("other",))


def test_badge_of_badges_applied_twice_re_emits_every_decision_as_replayed():
    foundations, advanced = _foundations_and_advanced()
    cfg = compile_templates(foundations, advanced)
    state = apply_event(None, cfg, passing(1, OTHER, t=1)).state
    event = passing(1, DEMO, t=2)
    first = apply_event(state, cfg, event)
    second = apply_event(first.state, cfg, event)
    assert second.changed is False and second.state is first.state
    assert [(d.action, d.template, d.replayed) for d in second.decisions] == [
        ("award", foundations.uuid, True), ("award", advanced.uuid, True)]


def test_an_expired_badge_no_longer_fulfills_a_badge_requirement():
    foundations = template([_course("demo", DEMO)], expires_after="PT10S")
    advanced = template([badge_req("foundations", foundations.uuid), _course("other", OTHER)])
    r = run(compile_templates(foundations, advanced), [passing(1, DEMO, t=1)])
    assert r.feed(passing(1, OTHER, t=20)) == []


# --- manual commands ---------------------------------------------------------------------------


def test_manual_award_and_revoke_are_recorded_with_cause_and_reason():
    foundations, advanced = _foundations_and_advanced()
    cfg = compile_templates(foundations, advanced)
    r = run(cfg, [passing(1, OTHER, t=1)])
    [award, cascaded] = r.feed(manual(1, foundations.uuid, "award", "passed elsewhere", t=2))
    assert (award.action, award.cause, award.reason) == ("award", ("manual",), "passed elsewhere")
    assert award.learner.email == "learner1@example.test"  # the identity kept in the state
    assert cascaded.template == advanced.uuid
    badge = r.states[1]["templates"][foundations.uuid]["badge"]
    assert (badge["cause"], badge["reason"]) == ("manual", "passed elsewhere")
    revokes = r.feed(manual(1, foundations.uuid, "revoke", "fraud", t=3))
    assert [(d.template, d.cause, d.reason) for d in revokes] == [
        (foundations.uuid, ("manual",), "fraud"), (advanced.uuid, ("foundations",), "")]
    badge = r.states[1]["templates"][foundations.uuid]["badge"]
    assert (badge["status"], badge["cause"], badge["reason"]) == ("revoked", "manual", "fraud")
    # never re-awarded by processing
    assert r.feed(passing(1, DEMO, t=4)) == []


def test_manual_commands_are_idempotent_and_refuse_what_they_cannot_do():
    tpl = template([_course("demo", DEMO), _course("other", OTHER)])
    cfg = compile_templates(tpl)
    unknown = apply_event(None, cfg, manual(9, tpl.uuid))
    assert unknown.decisions == [] and "identity" in unknown.note
    state = apply_event(None, cfg, passing(1, OTHER, t=1)).state
    command = manual(1, tpl.uuid, "award", "ok", t=2)
    first = apply_event(state, cfg, command)
    again = apply_event(first.state, cfg, command)
    assert [d.replayed for d in again.decisions] == [True] and again.changed is False
    held = apply_event(first.state, cfg, manual(1, tpl.uuid, "award", t=3))
    assert held.decisions == [] and "already holds" in held.note
    nothing = apply_event(state, cfg, manual(1, tpl.uuid, "revoke", t=3))
    assert nothing.decisions == [] and "no badge" in nothing.note
    ghost = apply_event(state, cfg, manual(1, tpl_uuid(999_999)))
    assert ghost.decisions == [] and "not a configured template" in ghost.note


def test_manual_award_after_a_revocation_is_a_renewal():
    tpl = template([_course("demo", DEMO)],
                   [pen("failed", ["demo"], PASSING, passing_rule("false"), course_rule(DEMO))])
    r = run(compile_templates(tpl), [passing(1, DEMO, t=1), passing(1, DEMO, False, t=2)])
    assert r.revokes() == [(1, tpl.uuid)]
    [award] = r.feed(manual(1, tpl.uuid, "award", "appeal granted", t=3))
    assert award.renewal is True and award.reason == "appeal granted"


def test_a_configuration_with_a_cycle_still_compiles_and_never_loops():
    a_uuid, b_uuid = tpl_uuid(), tpl_uuid()
    a = template([badge_req("b", b_uuid), _course("demo", DEMO)], uuid=a_uuid)
    b = template([badge_req("a", a_uuid)], uuid=b_uuid)
    cfg = compile_templates(a, b)
    assert any("cycle" in p for p in cfg.problems) and cfg.dependents == {}
    assert run(cfg, [passing(1, DEMO, t=1)]).awards() == []


def test_progress_of_a_deleted_template_is_dropped_at_the_next_write():
    kept = template([_course("a", DEMO), _course("b", OTHER)])
    deleted = template([_course("c", DEMO), _course("d", THIRD)])
    r = run(compile_templates(kept, deleted), [passing(1, DEMO, t=1)])
    assert set(r.states[1]["templates"]) == {kept.uuid, deleted.uuid}
    r.config = compile_templates(kept)  # the deleted template's tombstone applied
    r.feed(passing(1, OTHER, t=2))
    assert set(r.states[1]["templates"]) == {kept.uuid}
