"""Properties of the engine over generated configurations and event sequences (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from badges.domain.engine import apply_event
from tests.unit.test_domain_builders import (
    PASSING,
    compile_templates,
    course_rule,
    passing,
    passing_rule,
    pen,
    req,
    run,
    template,
    tpl_uuid,
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


def _build(specs, reverse_requirements=False, reverse_templates=False):
    tpls = []
    for n, (reqs, pens) in enumerate(specs):
        reqs = list(reversed(reqs)) if reverse_requirements else reqs
        pens = list(reversed(pens)) if reverse_requirements else pens
        tpls.append(template(reqs, pens, uuid=tpl_uuid(10_000 + n)))
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
    specs, events = scenario
    base = _summary(run(_build(specs), events))
    assert _summary(run(_build(specs, reverse_requirements=True), events)) == base
    assert _summary(run(_build(specs, reverse_templates=True), events)) == base
    assert _summary(run(_build(specs, True, True), events)) == base


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_duplicates_never_change_state(scenario):
    specs, events = scenario
    cfg = _build(specs)
    states: dict[int, object] = {}
    for event in events:
        first = apply_event(states.get(event.learner.id), cfg, event)
        second = apply_event(first.state, cfg, event)
        assert second.changed is False
        assert second.state == first.state
        assert all(d.replayed for d in second.decisions)
        # what the first pass decided, the second re-emits (crash between write and send)
        assert [(d.action, d.template) for d in second.decisions] == [
            (d.action, d.template) for d in first.decisions]
        if first.state is not None:
            states[event.learner.id] = first.state


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_final_fulfilled_sets_do_not_depend_on_delivery_order(scenario, rnd):
    specs, events = scenario
    cfg = _build(specs)
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
