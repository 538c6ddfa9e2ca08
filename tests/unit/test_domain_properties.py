"""Properties of the engine over generated configurations and event sequences (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from badges.domain.engine import apply_event, held_badges
from tests.unit.test_domain_builders import (
    PASSING,
    badge_req,
    compile_templates,
    course_rule,
    passing,
    passing_rule,
    pen,
    req,
    run,
    template,
    tpl_uuid,
    window,
)

COURSES = ["course-v1:O+A+1", "course-v1:O+B+1", "course-v1:O+C+1"]


@st.composite
def requirement_specs(draw, rid: str):
    rules = []
    if draw(st.booleans()):
        rules.append(passing_rule(draw(st.sampled_from(["true", "false"]))))
    if draw(st.booleans()):
        rules.append(course_rule(draw(st.sampled_from(COURSES)), draw(st.sampled_from(["=", "!="]))))
    return req(rid, PASSING, *rules, group=draw(st.sampled_from([None, "A", "B"])))


@st.composite
def template_specs(draw, n: int):
    count = draw(st.integers(1, 4))
    reqs = [draw(requirement_specs(f"t{n}r{i}")) for i in range(count)]
    ids = [r["id"] for r in reqs]
    pens = []
    for k in range(draw(st.integers(0, 2))):
        targets = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=len(ids), unique=True))
        rules = [passing_rule("false")]
        if draw(st.booleans()):
            rules.append(course_rule(draw(st.sampled_from(COURSES))))
        pens.append(pen(f"t{n}p{k}", targets, PASSING, *rules))
    return reqs, pens


@st.composite
def scenarios(draw):
    n_templates = draw(st.integers(1, 4))
    specs = [draw(template_specs(n)) for n in range(n_templates)]
    n_events = draw(st.integers(1, 25))
    times = draw(st.permutations(range(n_events)))  # distinct times, arbitrary delivery order
    events = [
        passing(draw(st.sampled_from([1, 2])), draw(st.sampled_from(COURSES)), draw(st.booleans()),
                t=times[i], event_id=f"ev-{i}")
        for i in range(n_events)
    ]
    return specs, events


def _build(specs, reverse_requirements=False, reverse_templates=False, base=10_000):
    """Specs are (requirements, penalties) or (requirements, penalties, SPEC §8 keys)."""
    tpls = []
    for n, (reqs, pens, *rules) in enumerate(specs):
        reqs = list(reversed(reqs)) if reverse_requirements else reqs
        pens = list(reversed(pens)) if reverse_requirements else pens
        tpls.append(template(reqs, pens, uuid=tpl_uuid(base + n), **(rules[0] if rules else {})))
    if reverse_templates:
        tpls.reverse()
    return compile_templates(*tpls)


def _summary(r):
    awards = sorted((d.learner.id, d.template, d.event.event_id) for d in r.decisions
                    if d.action == "award")
    revokes = sorted((d.learner.id, d.template, d.event.event_id) for d in r.decisions
                     if d.action == "revoke")
    fulfilled = {
        (learner, uuid): sorted(progress["fulfilled"])
        for learner, state in r.states.items()
        for uuid, progress in state["templates"].items()
    }
    return awards, revokes, fulfilled


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_outcome_does_not_depend_on_configuration_order(scenario):
    _assert_configuration_order_irrelevant(*scenario)


def _assert_configuration_order_irrelevant(specs, events, base_uuid=10_000):
    base = _summary(run(_build(specs, base=base_uuid), events))
    for reverse in ((True, False), (False, True), (True, True)):
        assert _summary(run(_build(specs, *reverse, base=base_uuid), events)) == base


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_duplicates_never_change_state(scenario):
    specs, events = scenario
    _assert_duplicates_change_nothing(_build(specs), events, list)


def _assert_duplicates_change_nothing(cfg, events, arrange):
    """``arrange``: how the re-emitted decisions compare with the first ones (``list``: in the
    same order; ``sorted``: the same, in any order)."""
    states: dict[int, object] = {}
    for event in events:
        first = apply_event(states.get(event.learner.id), cfg, event)
        second = apply_event(first.state, cfg, event)
        assert second.changed is False
        assert second.state == first.state
        assert all(d.replayed for d in second.decisions)
        # what the first pass decided, the second re-emits (crash between write and send)
        assert arrange((d.action, d.template) for d in second.decisions) == arrange(
            (d.action, d.template) for d in first.decisions)
        if first.state is not None:
            states[event.learner.id] = first.state


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_final_fulfilled_sets_do_not_depend_on_delivery_order(scenario, rnd):
    specs, events = scenario
    _assert_delivery_order_irrelevant(_build(specs), events, rnd)


def _assert_delivery_order_irrelevant(cfg, events, rnd):
    shuffled = list(events)
    rnd.shuffle(shuffled)
    ordered = sorted(events, key=lambda e: e.time_us)
    assert _summary(run(cfg, shuffled))[2] == _summary(run(cfg, ordered))[2]


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_award_only_when_complete_and_at_most_once(scenario):
    specs, events = scenario
    cfg = _build(specs)
    r = run(cfg, [])
    for event in events:
        for d in r.feed(event):
            progress = r.states[d.learner.id]["templates"][d.template]
            if d.action == "award":
                assert cfg.templates[d.template].is_complete(progress["fulfilled"])
            else:
                assert not cfg.templates[d.template].is_complete(progress["fulfilled"])
    awards, revokes, _ = _summary(r)
    assert len({(a[0], a[1]) for a in awards}) == len(awards)
    assert len({(a[0], a[1]) for a in revokes}) == len(revokes)
    assert {(a[0], a[1]) for a in revokes} <= {(a[0], a[1]) for a in awards}


# --- SPEC §8 kinds: N of M, windows, complete_within, expiry, badge of badges -------------------

RICH = 20_000  # template uuids of the rich scenarios (badge requirements name them)


@st.composite
def rich_template_specs(draw, n: int, earlier: list[str]):
    reqs, pens = draw(template_specs(n))
    reqs = [dict(r) for r in reqs]
    for r in reqs:
        if draw(st.booleans()):
            lo = draw(st.integers(0, 20))
            r.update(window(r, not_before=lo, not_after=lo + draw(st.integers(0, 10))))
    if earlier and draw(st.booleans()):
        reqs.append(badge_req(f"t{n}b", draw(st.sampled_from(earlier)),
                              group=draw(st.sampled_from([None, "A", "B"]))))
    sizes: dict[str, int] = {}
    for r in reqs:
        if r.get("group"):
            sizes[r["group"]] = sizes.get(r["group"], 0) + 1
    rules: dict[str, Any] = {"groups": {g: {"min": draw(st.integers(1, size))} for g, size in sizes.items()}}
    if draw(st.booleans()):
        rules["complete_within"] = f"PT{draw(st.integers(2, 15))}S"
    if draw(st.booleans()):
        rules["expires_after"] = f"PT{draw(st.integers(2, 15))}S"
    return reqs, pens, rules


@st.composite
def rich_scenarios(draw):
    specs = []
    for n in range(draw(st.integers(1, 4))):
        specs.append(draw(rich_template_specs(n, [tpl_uuid(RICH + k) for k in range(n)])))
    n_events = draw(st.integers(1, 25))
    times = draw(st.permutations(range(n_events)))
    events = [
        passing(draw(st.sampled_from([1, 2])), draw(st.sampled_from(COURSES)), draw(st.booleans()),
                t=times[i], event_id=f"ev-{i}")
        for i in range(n_events)
    ]
    return specs, events


@settings(max_examples=200, deadline=None)
@given(rich_scenarios())
def test_new_kinds_outcome_does_not_depend_on_configuration_order(scenario):
    _assert_configuration_order_irrelevant(*scenario, base_uuid=RICH)


@settings(max_examples=200, deadline=None)
@given(rich_scenarios())
def test_new_kinds_duplicates_never_change_state_and_re_emit_the_decisions(scenario):
    # a badge of badges awarded by the cascade on the first pass may be re-emitted before the
    # badge it names on the second (in the order of the touched templates)
    specs, events = scenario
    _assert_duplicates_change_nothing(_build(specs, base=RICH), events, sorted)


@settings(max_examples=200, deadline=None)
@given(rich_scenarios(), st.randoms(use_true_random=False))
def test_new_kinds_final_fulfilled_sets_do_not_depend_on_delivery_order(scenario, rnd):
    specs, events = scenario
    _assert_delivery_order_irrelevant(_build(specs, base=RICH), events, rnd)


@settings(max_examples=200, deadline=None)
@given(rich_scenarios())
def test_new_kinds_award_only_when_complete_within_and_never_twice_while_held(scenario):
    specs, events = scenario
    cfg = _build(specs, base=RICH)
    r = run(cfg, [])
    for event in sorted(events, key=lambda e: e.time_us):
        before = r.states.get(event.learner.id, {"templates": {}})["templates"]
        for d in r.feed(event):
            state = r.states[d.learner.id]["templates"]
            tpl = cfg.templates[d.template]
            # held before or after the event: requirements come first, penalties after, so an
            # event may award a badge of badges and then revoke it with the badge it names
            held = {**held_badges(tpl, before, event.time_us), **held_badges(tpl, state, event.time_us)}
            counted = set(held)
            for rid, rec in state[d.template]["fulfilled"].items():
                if tpl.complete_within_us is None or rec["latest_us"] >= event.time_us - tpl.complete_within_us:
                    counted.add(rid)
            if d.action == "award":
                assert tpl.is_complete(counted)
            else:
                after = held_badges(tpl, state, event.time_us)
                assert not tpl.is_complete(set(state[d.template]["fulfilled"]) | set(after))
    awards = [(d.learner.id, d.template) for d in r.decisions if d.action == "award" and not d.renewal]
    assert len(set(awards)) == len(awards)
