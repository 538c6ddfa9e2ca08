"""Offsets the worker can trust: contiguous processing of its own topics, and commits that never
pass a message that was not processed.

Faust's consumer keeps its own offset bookkeeping (read offsets, acked lists, gaps), and a reading
of faust-streaming 0.15 finds ways around rebalances for it to skip a message or commit past one
(stale read offsets after a revoke, prefetched records delivered before the seek, a head check
that lets a one-offset hole through; faust-streaming issues 216 and 606, robinhood/faust 559).
The worker does not depend on that bookkeeping being right:

* its internal topics (``learner-events``) are written only by the worker, without transactions
  or compaction, so their offsets are contiguous: a message whose offset is not the one after
  the last applied is a skip, and ``StreamGuard`` says so, so that the agent seeks back instead
  of processing it;
* the last applied offset of each partition is stored in the same table and the same changelog
  batch as the progress it produced, and on every assignment the partition is sought back to it
  when the committed offset is past it (``resume_position``);
* a commit is made only from a run of acknowledged offsets that starts exactly at the committed
  one, and on ``learner-events`` never past the first offset not applied (``committable_run``),
  so a hole of any size, one offset included, holds the commit back.

Everything here is pure; the consumer and the agent do the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


def applied_offset_key(partition: int) -> bytes:
    """The progress-table key holding a partition's last applied offset (one per partition:
    the memory store keeps every partition in one mapping). Learner keys are digits only."""
    return b"~applied-offset/%d" % partition


def is_learner_key(key: bytes) -> bool:
    return not key.startswith(b"~")


class Verdict(Enum):
    APPLY = "apply"  # the next offset, or a redelivery of one already applied (idempotent)
    SKIPPED = "skipped"  # offsets were skipped before this one: seek back, do not apply it
    WAIT = "wait"  # a seek back is under way: drop until the expected offset arrives


@dataclass
class StreamGuard:
    """Per partition of a contiguous topic: is this message the one to process next?"""

    applied: dict[int, int] = field(default_factory=dict)  # partition -> last applied offset
    seeking: dict[int, int] = field(default_factory=dict)  # partition -> offset sought back to

    def check(self, partition: int, offset: int) -> Verdict:
        last = self.applied.get(partition)
        target = self.seeking.get(partition)
        if target is not None:
            if offset != target:
                return Verdict.WAIT
            del self.seeking[partition]
            return Verdict.APPLY
        if last is None or offset <= last + 1:
            return Verdict.APPLY
        self.seeking[partition] = last + 1
        return Verdict.SKIPPED

    def applied_through(self, partition: int, offset: int) -> None:
        last = self.applied.get(partition)
        if last is None or offset > last:
            self.applied[partition] = offset

    def first_unapplied(self, partition: int) -> int | None:
        last = self.applied.get(partition)
        return None if last is None else last + 1

    def rewind(self, partition: int, offset: int) -> bool:
        """Go back to ``offset``, applied but not durable (its changelog write failed): it is
        applied again, and commits stay below it until then. False when there is nothing to do
        (the partition moved away, or it is already going back to ``offset`` or before)."""
        last = self.applied.get(partition)
        if last is None or last < offset:
            return False
        target = self.seeking.get(partition)
        if target is not None and target <= offset:
            return False
        self.applied[partition] = offset - 1
        self.seeking[partition] = offset
        return True

    def forget(self, partition: int) -> None:
        """The partition moved away: what is known of it may be stale when it comes back."""
        self.applied.pop(partition, None)
        self.seeking.pop(partition, None)


def resume_position(committed: int | None, applied: int | None) -> int | None:
    """Where to read a partition from after an assignment: the committed offset, unless the last
    applied one shows that the commit went past work never applied (then just after it)."""
    if applied is None:
        return None  # nothing applied here yet: the committed offset (or the reset policy) holds
    if committed is None or committed > applied + 1:
        return applied + 1
    return None


def committable_run(
    acked: list[int], committed: int | None, ceiling: int | None = None,
) -> tuple[int | None, list[int]]:
    """The offset to commit from sorted acknowledged offsets, and the offsets left after it.

    ``committed`` is the next offset to read as committed so far. Offsets below it are done
    already and dropped. A commit needs a run of consecutive offsets that starts exactly at
    ``committed`` (any offset anywhere while it is unknown: a new group); a missing head holds
    everything back. ``ceiling``, when given, is the first offset not applied yet (the stream
    guard's): a message acknowledged without being applied (dropped while seeking back) stays
    uncommitted until it has been applied.
    """
    start = 0
    if committed is not None:
        while start < len(acked) and acked[start] < committed:
            start += 1
    rest = acked[start:]
    if not rest or (committed is not None and rest[0] != committed):
        return None, rest
    end = 1
    while end < len(rest) and rest[end] == rest[end - 1] + 1:
        end += 1
    if ceiling is not None:
        while end and rest[end - 1] >= ceiling:
            end -= 1
        if not end:
            return None, rest
    return rest[end - 1] + 1, rest[end:]
