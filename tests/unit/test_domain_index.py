"""The index: an event only reaches the requirements filed under its own key values."""

from __future__ import annotations

from badges.domain import matching
from badges.domain.engine import apply_event
from tests.unit.test_domain_builders import (
    CCX1,
    CCX_PASSING,
    DEMO,
    OTHER,
    PASSING,
    badge_req,
    ccx_passing,
    compile_templates,
    course_rule,
    passing,
    passing_rule,
    pen,
    req,
    rule,
    template,
    tpl_uuid,
    window,
)


def _course(n: int) -> str:
    return f"course-v1:Org+C{n}+2024"


def _many(n: int):
    return [
        template(
            [req(f"r{i}", PASSING, passing_rule(), course_rule(_course(i)))],
            [pen(f"p{i}", [f"r{i}"], PASSING, passing_rule("false"), course_rule(_course(i)))],
            uuid=tpl_uuid(100_000 + i),
        )
        for i in range(n)
    ]


def test_one_event_among_1000_templates_only_reaches_its_course(monkeypatch):
    templates = _many(1000)
    cfg = compile_templates(*templates)
    reqs, pens = cfg.index.candidates(PASSING, passing(1, _course(417), True).payload)
    assert [r.id for r in reqs] == ["r417"]
    assert [p.id for p in pens] == ["p417"]
    assert cfg.index.stats()[PASSING]["requirements"] == {
        "fallback": 0, "keyed": {"course.course_key": 1000}}

    # Count rule evaluations on the real path: a handful, not thousands.
    calls = 0
    real = matching.rule_matches

    def counting(rule_, payload):
        nonlocal calls
        calls += 1
        return real(rule_, payload)

    monkeypatch.setattr("badges.domain.index.all_match",
                        lambda rules, payload: all(counting(r, payload) for r in rules))
    outcome = apply_event(None, cfg, passing(1, _course(417), True, t=1))
    assert [d.template for d in outcome.decisions] == [templates[417].uuid]
    assert calls <= 4  # r417's two rules, p417's first rule fails
    calls = 0
    assert apply_event(None, cfg, passing(1, "course-v1:Org+Unknown+2024", True, t=1)).state is None
    assert calls == 0


def test_requirements_without_an_equality_rule_go_to_the_fallback_list():
    any_course = template([req("any", PASSING, rule("course.course_key", "!=", DEMO))])
    by_bool = template([req("passed", PASSING, passing_rule())])
    keyed = template([req("demo", PASSING, passing_rule(), course_rule(DEMO))])
    cfg = compile_templates(any_course, by_bool, keyed, *_many(50))
    stats = cfg.index.stats()[PASSING]["requirements"]
    assert stats["fallback"] == 1
    assert stats["keyed"] == {"course.course_key": 51, "is_passing": 1}
    reqs, _ = cfg.index.candidates(PASSING, passing(1, OTHER, True).payload)
    assert sorted(r.id for r in reqs) == ["any", "passed"]
    reqs, _ = cfg.index.candidates(PASSING, passing(1, DEMO, False).payload)
    assert sorted(r.id for r in reqs) == ["any", "demo"]  # 'any' is then rejected by its rule
    matched, _ = cfg.index.match(PASSING, passing(1, DEMO, False).payload)
    assert matched == []


def test_index_prefers_the_key_path_most_entries_share():
    # master_course_key is shared by every entry; ccx_course_key by one: probe one path only.
    tpls = [
        template([req(f"m{i}", CCX_PASSING, rule("course.master_course_key", "=", _course(i)))])
        for i in range(5)
    ]
    tpls.append(template([req("x", CCX_PASSING, rule("course.master_course_key", "=", DEMO),
                              rule("course.ccx_course_key", "=", CCX1))]))
    cfg = compile_templates(*tpls)
    assert cfg.index.stats()[CCX_PASSING]["requirements"]["keyed"] == {
        "course.master_course_key": 6}
    reqs, _ = cfg.index.candidates(CCX_PASSING, ccx_passing(1, CCX1, DEMO).payload)
    assert [r.id for r in reqs] == ["x"]


def test_inactive_templates_are_not_indexed_but_kept_for_display():
    off = template([req("demo", PASSING, passing_rule(), course_rule(DEMO))], active=False)
    cfg = compile_templates(off)
    assert cfg.index.size == 0
    assert off.uuid in cfg.templates and not cfg.templates[off.uuid].active


def test_stale_configuration_is_reported_not_fatal():
    tpl = template([req("demo", PASSING, rule("is_pasing", "=", "true")),
                    req("flag", PASSING, rule("is_passing", "=", "maybe"))],
                   [pen("p", ["nope"], PASSING)])
    cfg = compile_templates(tpl)
    joined = "\n".join(cfg.problems)
    assert "unknown key path 'is_pasing'" in joined
    assert "'is_passing' is a boolean field: the value must be one of true True yes Yes + / false False no No -, got 'maybe'" in joined
    assert "penalty 'p': unknown requirement 'nope'; requirements of this template: demo, flag; ignored" in joined
    assert apply_event(None, cfg, passing(1, DEMO, True, t=1)).state is None


ENROLLED = "org.openedx.learning.course.enrollment.created.v1"


def test_index_prefers_a_selective_key_path_over_one_value_every_entry_shares():
    # every entry has mode = verified and its own course: file them by course, so that an
    # enrollment event checks one entry, not all of them
    tpls = [
        template([req(f"e{i}", ENROLLED, rule("course.course_key", "=", _course(i)),
                      rule("mode", "=", "verified"))])
        for i in range(20)
    ]
    cfg = compile_templates(*tpls)
    assert cfg.index.stats()[ENROLLED]["requirements"]["keyed"] == {"course.course_key": 20}
    reqs, _ = cfg.index.candidates(ENROLLED, {"course": {"course_key": _course(3)}, "mode": "verified"})
    assert [r.id for r in reqs] == ["e3"]


def test_the_new_kinds_keep_the_index_flat():
    """SPEC §8: windows and N-of-M requirements are filed like any other; badge requirements are
    not indexed at all (the award cascade reaches them through ``dependents``)."""
    from tests.unit.test_domain_builders import badge_req, window

    templates = []
    for i in range(0, 1000, 2):
        base = template([window(req(f"r{i}", PASSING, passing_rule(), course_rule(_course(i)), group="g"),
                                not_before=0),
                         req(f"s{i}", PASSING, passing_rule(), course_rule(_course(i + 1)), group="g")],
                        uuid=tpl_uuid(200_000 + i), groups={"g": {"min": 2}}, complete_within="P30D")
        templates += [base, template([badge_req("b", base.uuid)], uuid=tpl_uuid(200_001 + i))]
    cfg = compile_templates(*templates)
    assert cfg.index.size == 1000 and set(cfg.index.stats()) == {PASSING}
    assert cfg.index.stats()[PASSING]["requirements"] == {
        "fallback": 0, "keyed": {"course.course_key": 1000}}
    reqs, _ = cfg.index.candidates(PASSING, passing(1, _course(418), True).payload)
    assert [r.id for r in reqs] == ["r418"]
    assert len(cfg.dependents) == 500
    r = apply_event(None, cfg, passing(1, _course(418), True, t=1))
    r = apply_event(r.state, cfg, passing(1, _course(419), True, t=2))
    assert [d.template for d in r.decisions] == [tpl_uuid(200_418), tpl_uuid(200_419)]


def test_event_types_that_cannot_drive_requirements_are_reported():
    grades = "org.openedx.learning.course.persistent_grade_summary.changed.v1"
    cfg = compile_templates(template([req("g", grades)], [pen("p", ["g"], grades)]))
    assert [p.split(": ", 1)[1] for p in cfg.problems] == [
        f"event type {grades} cannot drive requirements: it carries no UserData",
    ] * 2


def test_what_the_file_validator_refuses_in_penalties_and_windows_is_reported():
    other = tpl_uuid()
    tpl = template([window(req("w"), not_before=10, not_after=5), badge_req("b", other)],
                   [pen("none", []), pen("badge", ["b"])])
    cfg = compile_templates(tpl, template([req("x")], uuid=other))
    joined = "\n".join(cfg.problems)
    assert "requirement 'w': not_after is before not_before: no event can match" in joined
    assert "penalty 'none': targets no requirement: a penalty targets at least one requirement of its template; never applied" in joined
    assert "penalty 'badge': requirement 'b' is a badge requirement: it follows that badge, a penalty cannot reset it; ignored" in joined
    # each finding is typed and placed inside its template, as the file validator reports it
    assert [(f.template, f.code, f.place) for f in cfg.findings if f.is_error] == [
        (tpl.uuid, "window_reversed", ("requirements", 0, "not_after")),
        (tpl.uuid, "penalty_without_target", ("penalties", 0, "requirements")),
        (tpl.uuid, "penalty_target_badge", ("penalties", 1, "requirements", 0)),
    ]


def test_a_duplicate_is_checked_whole_then_left_out():
    tpl = template([req("a", PASSING, rule("is_pasing", "=", "true"), group="g"), req("a", "no.such.type")],
                   [pen("p", ["a"], PASSING, passing_rule()), pen("p", [], PASSING, passing_rule())],
                   groups={"g": {"min": 0}, "nobody": {"min": 1}})
    cfg = compile_templates(tpl)
    assert [(f.code, f.place, f.related) for f in cfg.findings] == [
        ("key_path_unknown", ("requirements", 0, "rules", 0, "key_path"), None),
        ("duplicate_requirement", ("requirements", 1, "id"), ("requirements", 0)),
        ("event_type_refused", ("requirements", 1, "event_type"), None),
        ("duplicate_penalty", ("penalties", 1, "id"), ("penalties", 0)),
        ("penalty_without_target", ("penalties", 1, "requirements"), None),
        ("group_min_out_of_range", ("groups", "g", "min"), None),
        ("group_without_requirement", ("groups", "nobody"), None),
    ]
    compiled = cfg.templates[tpl.uuid]
    assert [r.id for r in compiled.requirements] == ["a"] and [p.id for p in compiled.penalties] == ["p"]


def test_rule_less_entries_on_a_frequent_event_type_are_warnings_not_problems():
    tpl = template([req("any", PASSING)], [pen("reset", ["any"], PASSING)])
    cfg = compile_templates(tpl)
    assert [(f.code, f.severity, f.place) for f in cfg.findings] == [
        ("rule_less_frequent", "warning", ("requirements", 0, "rules")),
        ("rule_less_frequent", "warning", ("penalties", 0, "rules")),
    ]
    assert cfg.problems == () and cfg.templates[tpl.uuid].active
