"""The benchmark's oracle (bench/load.py, written from the SPEC) agrees with the rules engine on
generated learner plans, for every kind of the mix, the SPEC §8 ones included: the bench's
verdicts ("one badge per completion, in its expected state") rest on it."""

from __future__ import annotations

from badges.config.entities import ConfigSnapshot
from badges.domain.index import compile_config
from bench.load import (
    CERTIFIED,
    ENROLLED,
    KINDS,
    PASSING,
    config_entities,
    expected_outcomes,
    kind_of,
    learner_plan,
    template_uuid,
)
from tests.unit.test_domain_builders import CATALOG, Run, _user, make_event

M = 12  # every kind twice


def _event(planned, learner: int, t: int):
    etype, course, fields = planned
    payload = {"user": _user(learner),
               "course": {"course_key": course, "display_name": "C", "start": None, "end": None},
               **dict(fields)}
    if etype == CERTIFIED:
        payload.update(mode="verified", grade="1", current_status="downloadable", download_url="",
                       name="", previous_status=None)
    return make_event(etype, payload, learner, t)


def test_the_oracle_agrees_with_the_engine_for_every_kind():
    config = compile_config(ConfigSnapshot.from_entities(config_entities(M)), CATALOG)
    assert not config.problems
    run = Run(config)
    outcomes_by_kind: dict[str, set[str]] = {}
    for learner in range(1, 1500):
        plan = learner_plan(7, learner, M)
        for t, planned in enumerate(plan):
            if planned[0] in (PASSING, ENROLLED, CERTIFIED):
                run.feed(_event(planned, learner, t))
        expected = {j: status for j, (status, _, _) in expected_outcomes(plan, M).items()}
        state = run.states.get(learner, {"templates": {}})["templates"]
        actual = {j: state[template_uuid(j)]["badge"]["status"] for j in range(M)
                  if "badge" in state.get(template_uuid(j), {})}
        assert actual == expected, (learner, plan)
        for j, status in actual.items():
            outcomes_by_kind.setdefault(kind_of(j), set()).add(status)
    # the load exercises every kind, the badge of badges included
    assert set(outcomes_by_kind) == set(KINDS)
    assert "revoked" in outcomes_by_kind["penalty"]
