"""Badge versions: each award and revocation of a (learner, template) is one version more, the
decision that takes it carries the version, and ``desired_decision`` rebuilds the latest one
from the progress record alone (what the Credly sink reconciles to when a message was lost)."""

from __future__ import annotations

from badges.domain.engine import Award, Revoke, apply_event, badge_version, desired_decision
from tests.unit.test_domain_builders import DEMO, compile_templates, course_rule, passing, passing_rule, pen, req, run, template


def demo_template():
    return template([req("demo", "org.openedx.learning.course.passing.status.updated.v1", passing_rule(), course_rule(DEMO))],
                    [pen("failed", ["demo"], "org.openedx.learning.course.passing.status.updated.v1",
                         passing_rule("false"), course_rule(DEMO))])


def test_each_award_and_revocation_is_one_version_more_and_its_decision_carries_it() -> None:
    tpl = demo_template()
    r = run(compile_templates(tpl), [passing(1, DEMO, True, t=1)])
    badge = r.states[1]["templates"][tpl.uuid]["badge"]
    assert badge_version(badge) == 1 and [(d.action, d.version) for d in r.decisions] == [("award", 1)]
    r.feed(passing(1, DEMO, False, t=2))
    badge = r.states[1]["templates"][tpl.uuid]["badge"]
    assert badge["status"] == "revoked" and badge_version(badge) == 2
    assert [(d.action, d.version) for d in r.decisions] == [("award", 1), ("revoke", 2)]


def test_a_redelivered_event_re_emits_its_decision_with_the_same_version() -> None:
    tpl = demo_template()
    config = compile_templates(tpl)
    first = passing(1, DEMO, True, t=1)
    r = run(config, [first, passing(1, DEMO, False, t=2)])
    again = apply_event(r.states[1], config, first)
    assert [(d.action, d.version, d.replayed) for d in again.decisions] == [("award", 1, True)]


def test_records_written_before_versions_count_as_the_award_and_its_revocation() -> None:
    assert badge_version(None) == 0
    assert badge_version({"status": "awarded"}) == 1  # type: ignore[arg-type]  # a partial record: only status is read
    assert badge_version({"status": "revoked"}) == 2  # type: ignore[arg-type]  # ditto


def test_the_desired_decision_is_rebuilt_from_the_progress_record_alone() -> None:
    tpl = demo_template()
    r = run(compile_templates(tpl), [passing(1, DEMO, True, t=1, name="Ada Lovelace")])
    award = desired_decision(r.states[1], tpl.uuid, "org")
    assert isinstance(award, Award) and award.version == 1 and award.cause == ("demo",)
    assert award.learner.name == "Ada Lovelace" and award.event == r.decisions[0].event
    r.feed(passing(1, DEMO, False, t=2))
    revoke = desired_decision(r.states[1], tpl.uuid, "org")
    assert isinstance(revoke, Revoke) and revoke.version == 2 and revoke.event == r.decisions[1].event
    assert desired_decision(r.states[1], "no-such-template", "org") is None


def test_a_renewal_after_a_revocation_keeps_that_revocation_to_carry_out_first() -> None:
    from badges.agents.sink import with_missed_versions
    from badges.domain.engine import rebuilt_versions
    from badges.domain.issuance import IssuanceRecord
    from tests.unit.test_domain_builders import manual

    tpl = demo_template()
    r = run(compile_templates(tpl), [passing(1, DEMO, True, t=1), passing(1, DEMO, False, t=2)])
    r.feed(manual(1, tpl.uuid, "award", "passed elsewhere", t=3))  # a renewal: v3
    award, revoke, renewal = r.decisions
    assert (renewal.action, renewal.version, renewal.renewal) == ("award", 3, True)
    [rebuilt] = rebuilt_versions(r.states[1], tpl.uuid, "org", 1, 3)
    assert isinstance(rebuilt, Revoke) and rebuilt.version == 2 and rebuilt.event == revoke.event
    # the revocation's notification was lost; the renewal reaches the sink first
    issued = {tpl.uuid: IssuanceRecord.from_dict({"status": "issued", "applied_v": 1, "credly_id": "b"})}
    got = with_missed_versions([renewal], issued, r.states[1])
    assert [(d.action, d.version) for d in got] == [("revoke", 2), ("award", 3)]
    assert with_missed_versions([revoke, renewal], issued, r.states[1]) == [revoke, renewal]
    applied = {tpl.uuid: IssuanceRecord.from_dict({"status": "revoked", "applied_v": 2})}
    assert with_missed_versions([renewal], applied, r.states[1]) == [renewal]


def test_every_earlier_version_is_rebuilt_as_the_engine_took_it() -> None:
    """Several notifications of one badge lost in a row: the record keeps the badge's earlier
    versions, and each rebuilt decision is the one the engine took then (as a re-emission)."""
    from dataclasses import replace

    from badges.agents.sink import with_missed_versions
    from badges.domain.engine import EARLIER_KEPT, rebuilt_versions
    from badges.domain.issuance import IssuanceRecord
    from tests.unit.test_domain_builders import manual

    tpl = demo_template()
    r = run(compile_templates(tpl), [passing(1, DEMO, True, t=1), passing(1, DEMO, False, t=2)])
    r.feed(manual(1, tpl.uuid, "award", "passed elsewhere", t=3))
    r.feed(manual(1, tpl.uuid, "revoke", "fraud", t=4))
    r.feed(manual(1, tpl.uuid, "award", "appeal upheld", t=5))
    taken = r.decisions
    assert [(d.action, d.version) for d in taken] == [("award", 1), ("revoke", 2), ("award", 3), ("revoke", 4),
                                                      ("award", 5)]
    state = r.states[1]
    # as taken (re-emitted), except the cause (evidence only: the requirements fulfilled now)
    rebuilt = rebuilt_versions(state, tpl.uuid, tpl.organization, 0, 6)
    assert [replace(d, cause=()) for d in rebuilt] == [replace(d, replayed=True, cause=()) for d in taken]
    # v2, v3 and v4 were lost: v5 reaches a sink that applied v1
    issued = {tpl.uuid: IssuanceRecord.from_dict({"status": "issued", "applied_v": 1, "credly_id": "b"})}
    got = with_missed_versions([taken[4]], issued, state)
    assert [(d.action, d.version) for d in got] == [("revoke", 2), ("award", 3), ("revoke", 4), ("award", 5)]
    # the record keeps a bounded number of versions
    for t in range(6, 6 + 2 * EARLIER_KEPT):
        r.feed(manual(1, tpl.uuid, "revoke" if t % 2 == 0 else "award", "again", t=t))
    badge = state = r.states[1]["templates"][tpl.uuid]["badge"]
    assert len(badge["earlier"]) == EARLIER_KEPT
    assert [d.version for d in rebuilt_versions(r.states[1], tpl.uuid, "org", 0, 99)] == list(
        range(badge_version(badge) - EARLIER_KEPT, badge_version(badge) + 1))
