"""Offsets the worker can trust (badges.kafka.offsets): unit cases, and a model of the consumer's
fetch / deliver / ack / commit / crash / reassign interleavings, Faust's known defects included
(deliveries that skip ahead or go back), checked against the invariant that no committed offset
ever passes a message that was not durably applied, and that nothing is lost in the end."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from badges.kafka.offsets import StreamGuard, Verdict, committable_run, is_learner_key, applied_offset_key, resume_position


def test_a_commit_needs_a_run_that_starts_at_the_committed_offset() -> None:
    assert committable_run([5, 6, 7], 5) == (8, [])
    assert committable_run([6, 7], 5) == (None, [6, 7])  # a one-offset hole holds it back
    assert committable_run([3, 4, 5, 6, 9], 5) == (7, [9])  # done ones dropped, the run stops at a hole
    assert committable_run([0, 1], None) == (2, [])  # a new group: from wherever it started
    assert committable_run([], 5) == (None, [])


def test_a_commit_never_passes_the_first_offset_not_applied() -> None:
    assert committable_run([5, 6, 7], 5, ceiling=7) == (7, [7])
    assert committable_run([5, 6, 7], 5, ceiling=5) == (None, [5, 6, 7])
    assert committable_run([5, 6, 7], 5, ceiling=100) == (8, [])


def test_the_guard_applies_in_order_and_seeks_back_over_a_skip() -> None:
    guard = StreamGuard()
    assert guard.check(0, 10) is Verdict.APPLY  # nothing known: anything goes
    guard.applied_through(0, 10)
    assert guard.check(0, 11) is Verdict.APPLY
    assert guard.check(0, 9) is Verdict.APPLY  # a redelivery: the engine is idempotent
    assert guard.check(0, 13) is Verdict.SKIPPED and guard.seeking[0] == 11
    assert guard.check(0, 14) is Verdict.WAIT
    assert guard.check(0, 11) is Verdict.APPLY and 0 not in guard.seeking
    assert guard.first_unapplied(0) == 11 and guard.first_unapplied(1) is None


def test_resume_seeks_back_only_when_the_commit_went_past_the_applied_work() -> None:
    assert resume_position(committed=10, applied=9) is None
    assert resume_position(committed=5, applied=9) is None  # behind: redeliveries are harmless
    assert resume_position(committed=12, applied=9) == 10
    assert resume_position(committed=None, applied=9) == 10
    assert resume_position(committed=12, applied=None) is None


def test_applied_offset_keys_are_not_learner_keys() -> None:
    assert not is_learner_key(applied_offset_key(3)) and is_learner_key(b"42")


# --- the model ----------------------------------------------------------------------------------

@dataclass
class Partition:
    """One learner-events partition, a worker on it, and what is durable."""

    size: int
    committed: int | None = None  # in Kafka
    durable_applied: set[int] = field(default_factory=set)  # effects flushed to the changelog
    durable_last: int | None = None  # the applied-offset record, flushed with them
    # the worker
    guard: StreamGuard = field(default_factory=StreamGuard)
    position: int = 0
    acked: list[int] = field(default_factory=list)
    known_committed: int | None = None
    pending: set[int] = field(default_factory=set)

    def start(self) -> None:
        self.guard = StreamGuard()
        # as the progress agent does after an assignment: the stored applied offset, else the
        # committed one, else the log's start
        if self.durable_last is not None:
            self.guard.applied[0] = self.durable_last
        else:
            self.guard.applied[0] = (self.committed if self.committed is not None else 0) - 1
        self.acked, self.pending = [], set()
        self.known_committed = self.committed
        resume = resume_position(self.committed, self.durable_last)
        self.position = resume if resume is not None else (self.committed or 0)

    def deliver(self, jump: int) -> None:
        """The consumer hands the agent a message: the next one, or (Faust's defects) one
        further ahead or behind."""
        offset = min(max(self.position + jump, 0), self.size - 1)
        verdict = self.guard.check(0, offset)
        if verdict is Verdict.APPLY:
            self.pending.add(offset)
            self.guard.applied_through(0, offset)
            self.position = offset + 1
        elif verdict is Verdict.SKIPPED:
            self.position = self.guard.seeking[0]  # the agent seeks back
        # WAIT: a stale delivery after the seek; the fetch position stays where it was sought
        if (self.known_committed is None or offset >= self.known_committed) and offset not in self.acked:
            self.acked.append(offset)  # Faust acks whatever the agent was handed

    def commit(self) -> None:
        offset, rest = committable_run(sorted(self.acked), self.known_committed, self.guard.first_unapplied(0))
        if offset is None:
            return
        self.durable_applied |= self.pending  # the producer is flushed before a commit
        if self.pending:
            self.durable_last = max(self.guard.applied[0], self.durable_last or -1)
        self.pending = set()
        self.acked = rest
        self.committed = self.known_committed = offset

    def crash(self) -> None:
        self.start()  # what was not flushed is gone

    def check(self) -> None:
        if self.committed is not None:
            missing = set(range(self.committed)) - self.durable_applied
            assert not missing, f"committed {self.committed} past unapplied {sorted(missing)}"


OPS = st.one_of(
    st.tuples(st.just("deliver"), st.sampled_from([0, 0, 0, 0, 1, 2, 3, -1, -2])),
    st.tuples(st.just("commit"), st.just(0)),
    st.tuples(st.just("crash"), st.just(0)),
)


@settings(max_examples=400, deadline=None)
@given(size=st.integers(1, 25), ops=st.lists(OPS, max_size=120))
def test_no_commit_passes_unapplied_work_and_nothing_is_lost(size: int, ops: list[tuple[str, int]]) -> None:
    p = Partition(size)
    p.start()
    for op, arg in ops:
        if op == "deliver":
            p.deliver(arg)
        elif op == "commit":
            p.commit()
        else:
            p.crash()
        p.check()
    # then the consumer behaves: everything is applied and committed in the end
    for _ in range(4 * size + 4):
        if p.position < size:
            p.deliver(0)
        p.commit()
        p.check()
    assert p.durable_applied == set(range(size)) and p.committed == size


def test_a_write_that_failed_takes_the_guard_back_to_it_once() -> None:
    from badges.kafka.offsets import StreamGuard

    guard = StreamGuard()
    for offset in range(10, 15):
        assert guard.check(0, offset) is Verdict.APPLY
        guard.applied_through(0, offset)
    assert guard.rewind(0, 12) and guard.first_unapplied(0) == 12  # commits stay below it
    assert not guard.rewind(0, 13)  # already going back to before it
    assert guard.check(0, 14) is Verdict.WAIT  # delivered before the seek: dropped
    assert guard.check(0, 12) is Verdict.APPLY
    assert not guard.rewind(1, 3)  # a partition not held: nothing to do
    guard.applied_through(0, 12)
    assert not guard.rewind(0, 20)  # not applied yet: nothing to go back to
