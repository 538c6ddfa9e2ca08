"""Properties of the engine over generated configurations and event sequences (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from badges.domain.engine import apply_event, held_badges
from tests.unit.test_domain_builders import (
    BASE_US,
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
    # Per (learner, template): the requirements fulfilled at the end and the last reset of each.
    # A template the learner has no entry for has neither, so it is left out; so is an entry
    # holding only a badge record (a badge of badges awarded by the cascade, whose own
    # requirements no event matched): badge records are decisions, which may depend on the
    # delivery order (test_transient_completion_depends_on_delivery_order).
    progress = {
        (learner, uuid): (sorted(p["fulfilled"]), sorted(p["resets"].items()))
        for learner, state in r.states.items()
        for uuid, p in state["templates"].items()
        if p["fulfilled"] or p["resets"]
    }
    return awards, revokes, progress


def _assert_no_empty_entry(r):
    """The engine never writes a template entry with nothing in it."""
    for state in r.states.values():
        for p in state["templates"].values():
            assert p["fulfilled"] or p["resets"] or p.get("badge") is not None


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
    first, second = run(cfg, shuffled), run(cfg, ordered)
    _assert_no_empty_entry(first)
    _assert_no_empty_entry(second)
    assert _summary(first)[2] == _summary(second)[2]


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


class _AsGiven:
    """A "shuffle" that keeps the delivery order a scenario lists its events in."""

    def shuffle(self, items: list[Any]) -> None:
        pass


def _transient_completion() -> tuple[list[Any], list[Any]]:
    """A falsifying example hypothesis found: template 0 completes at t=7 (the only passing
    event) and is reset at t=8 (a failing one, penalty ``t0p0``); template 1 is a badge of
    badges of template 0 whose event requirement nothing matches. Delivered as listed, the
    failing event at t=8 arrives before the passing one at t=7."""
    specs = [
        ([req("t0r0"), req("t0r1"), req("t0r2")], [pen("t0p0", ["t0r0"], PASSING, passing_rule("false"))],
         {"groups": {}}),
        ([req("t1r0", PASSING, course_rule(COURSES[0], "!="), group="A"),
          badge_req("t1b", tpl_uuid(RICH), group="A")], [], {"groups": {"A": {"min": 1}}}),
        ([req("t2r0")], [], {"groups": {}}),
        ([req("t3r0")], [], {"groups": {}}),
    ]
    times = [0, 1, 2, 3, 4, 5, 6, 8, 7]
    events = [passing(1, COURSES[0], i == 8, t=t, event_id=f"ev-{i}") for i, t in enumerate(times)]
    return specs, events


@settings(max_examples=200, deadline=None)
@given(rich_scenarios(), st.randoms(use_true_random=False))
@example(scenario=_transient_completion(), rnd=_AsGiven())
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


def test_transient_completion_depends_on_delivery_order():
    """The falsifying example of the delivery-order property, pinned down. Template 0 is
    complete between t=7 and t=8 only. In ce_time order it is awarded at t=7 and revoked at
    t=8, and so is template 1, its badge of badges, by the cascade: template 1's entry then
    holds only its revoked badge record (no event matched its own requirement), which the
    engine must keep (a revoked badge is never awarded again by processing; the sink
    reconciles Credly to it; the web view shows it). Delivered with t=8 first, the passing
    event at t=7 is stale for t0r0 (older than its last reset): nothing is awarded and
    template 1 has no entry. The progress (fulfilled sets, resets) is the same; the decisions
    are not, and neither is what a later completion decides."""
    specs, events = _transient_completion()
    cfg = _build(specs, base=RICH)
    t0, t1 = tpl_uuid(RICH), tpl_uuid(RICH + 1)
    as_given = run(cfg, events)
    ordered = run(cfg, sorted(events, key=lambda e: e.time_us))
    assert _summary(as_given)[2] == _summary(ordered)[2]
    assert _summary(as_given)[2][(1, t0)] == (["t0r1", "t0r2"], [("t0r0", BASE_US + 8_000_000)])

    assert {(d.action, d.template, d.event.event_id) for d in ordered.decisions if d.template in (t0, t1)} == {
        ("award", t0, "ev-8"), ("award", t1, "ev-8"), ("revoke", t0, "ev-7"), ("revoke", t1, "ev-7")}
    entry = ordered.states[1]["templates"][t1]
    assert entry["fulfilled"] == {} and entry["resets"] == {}
    assert entry["badge"]["status"] == "revoked" and entry["badge"]["revoked_by"]["event_id"] == "ev-7"

    assert not [d for d in as_given.decisions if d.template in (t0, t1)]
    assert t1 not in as_given.states[1]["templates"]

    later = passing(1, COURSES[0], True, t=9, event_id="ev-9")
    assert ordered.feed(later) == []  # both badges were revoked
    assert [(d.action, d.template) for d in as_given.feed(later)] == [("award", t0), ("award", t1)]
