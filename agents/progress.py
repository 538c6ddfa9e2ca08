"""The progress agent: applies learner events to per-learner progress and decides badges.

It consumes ``{app_id}-learner-events`` (envelopes of normalized events, one partition per set of
learners), runs the pure rules engine, writes each changed learner once per envelope to the
``progress`` table (changelog-backed) and sends the envelope's award/revoke decisions to
``{app_id}-badge-decisions`` on the same partition, in one message (``decision_messages``), and
hands them to this worker's Credly sink in process (``Sink.hand_off``: a broker hop sooner).
Faust flushes those sends before it commits the envelope's offset; a crash before that
re-delivers the envelope, and the engine's idempotence (plus re-emission of decisions tied to an
already-applied event) makes the second pass produce the same records and decisions.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson

from badges import metrics
from faust.types import TP

from badges.domain.engine import apply_event
from badges.domain.forget import forget_progress
from badges.faults import fails_for, fault_point, ledger_applied
from badges.kafka.offsets import StreamGuard, Verdict, applied_offset_key, resume_position
from badges.wire.decisions import decision_messages, encode_forget
from badges.wire.deadletter import dead_letter_headers
from badges.wire.envelope import EnvelopeError, decode_envelope, encode_envelope, learner_key
from badges.tables.writer import TableWriter

if TYPE_CHECKING:
    from badges.runtime import Runtime

log = logging.getLogger(__name__)

REPORT_FIELDS = ("applied", "fulfillments_added", "awards", "revocations")
# The latency histogram observes every n-th event of an envelope (the first always): an
# observation costs about a microsecond, a sizeable share of an event's processing.
LATENCY_SAMPLE = 8
PROGRESS_ERROR = "progress_error"  # the dead-letter reason of an event the rules engine fails on


def load_state(raw: bytes | None) -> Any:
    return orjson.loads(raw) if raw is not None else None


class ProgressProcessor:
    """One envelope in, progress records and decisions out (the agent body, testable alone)."""

    def __init__(self, runtime: "Runtime") -> None:
        self.rt = runtime
        self.writer = TableWriter(runtime.app, runtime.tables.progress, fail_point="progress.changelog_write")
        self.decisions_topic = runtime.settings.decisions_topic
        self.events_topic = runtime.settings.learner_events_topic
        self.guard = StreamGuard()
        # In memory only: a worker crash during a replay leaves that run's report incomplete,
        # and `badges replay` says so (the events themselves are processed all the same).
        self.replay_counts: dict[tuple[str, int], dict[str, int]] = {}

    async def resume_positions(
        self, consumer: Any, assignment: set[Any], committed: dict[Any, int | None],
    ) -> dict[Any, int]:
        """After an assignment (tables recovered): forget what was known of every partition, learn
        where each learner-events partition stands, and name those whose committed offset is
        past the last applied one (with where to read them from)."""
        self.guard = StreamGuard()
        stored = {tp: self.writer.get(applied_offset_key(tp.partition))
                  for tp in assignment if tp.topic == self.events_topic}
        fresh = [tp for tp, raw in stored.items() if raw is None and committed.get(tp) is None]
        # a partition nobody has applied or committed anything of starts at the log's start
        earliest = await consumer.earliest_offsets(*fresh) if fresh else {}
        seek = {}
        for tp, raw in stored.items():
            applied = int(raw) if raw is not None else None
            position = resume_position(committed.get(tp), applied)
            if applied is None:
                start = committed.get(tp)
                start = start if start is not None else earliest.get(tp, 0)
                applied = start - 1
            self.guard.applied[tp.partition] = applied
            if position is not None:
                metrics.OFFSETS_SOUGHT_BACK.labels("assignment").inc()
                seek[tp] = position
        return seek

    def commit_ceiling(self, tp: Any) -> int | None:
        """The first learner-events offset of ``tp`` not applied yet: commits stop below it."""
        if tp.topic != self.events_topic:
            return None
        return self.guard.first_unapplied(tp.partition)

    async def process(self, partition: int, offset: int, envelope: bytes) -> None:
        verdict = self.guard.check(partition, offset)
        if verdict is not Verdict.APPLY:
            await self._skip(partition, offset, verdict)
            return
        try:
            env = decode_envelope(envelope)
        except EnvelopeError as exc:  # only our own code writes this topic
            log.error("skipping a corrupt envelope on partition %d: %s", partition, exc)
            await self._record_applied(partition, offset, [])
            return
        events = env.events
        config = self.rt.config.compiled()
        dirty: dict[bytes, Any] = {}
        decisions: list[tuple[bytes, Any]] = []
        get = self.writer.get
        matched_req = matched_pen = added = 0
        now = time.time()
        latency = metrics.PROCESSING_LATENCY
        for i, ev in enumerate(events):
            key = learner_key(ev.learner.id)
            state = dirty[key] if key in dirty else load_state(get(key))
            try:
                if fails_for("progress.poison_learner", ev.learner.id):
                    raise RuntimeError(f"injected poison event (learner {ev.learner.id})")
                outcome = apply_event(state, config, ev)
            except Exception as exc:  # noqa: BLE001 - a bug an event triggers; see set_aside
                await self.set_aside(partition, offset, ev, exc)
                continue
            if outcome.note:  # a manual command that changed nothing, and why
                log.warning("manual %s: %s", ev.event_type, outcome.note)
            matched_req += outcome.matched_requirements
            matched_pen += outcome.matched_penalties
            added += outcome.fulfillments_added
            if outcome.changed or outcome.already_applied:
                dirty[key] = outcome.state
            for decision in outcome.decisions:
                decisions.append((key, decision))
            if not i % LATENCY_SAMPLE:
                latency.observe(max(0.0, now - ev.time_us / 1e6))
        if matched_req:
            metrics.REQUIREMENTS_MATCHED.inc(matched_req)
        if matched_pen:
            metrics.PENALTIES_MATCHED.inc(matched_pen)
        dumps = orjson.dumps
        for state in dirty.values():
            state["at"] = offset  # which of two writes is newer, for a recovery (progress.newer_of)
        await self._record_applied(partition, offset, [(key, dumps(state)) for key, state in dirty.items()])
        metrics.FULFILLMENTS.inc(len(dirty))
        fault_point("progress.after_state_write")
        if decisions:
            # the envelope's decisions in one message (a few when many): one message per
            # decision cost the sink's Faust consumer more than carrying it out (issue 20)
            taken = Counter((d.action, str(d.replayed).lower()) for _key, d in decisions)
            for labels, n in taken.items():
                metrics.DECISIONS.labels(*labels).inc(n)
            taken_now = [d for _key, d in decisions]
            for message in decision_messages(taken_now):
                await self.rt.app.producer.send(self.decisions_topic, None, message, partition, None, None)
            self.rt.sink.hand_off(partition, tuple(taken_now))  # the sink starts now; the topic's copy is the durable one
        fault_point("progress.after_decisions")
        metrics.EVENTS_APPLIED.inc(len(events))
        if env.replay_id:
            await self._count_replay(env.replay_id, env.end, partition, len(events), added, decisions)
        for learner_id in env.forget:
            await self.forget(partition, offset, learner_id)

    async def set_aside(self, partition: int, offset: int, event: Any, exc: BaseException) -> None:
        """An event the rules engine fails on (a bug its data triggers) goes to the dead-letter
        topic (``progress_error``, in an envelope of its own, keyed by its learner) and the
        envelope's other events are applied: raised, it would end the agent and the worker, and
        the same envelope would end every restart. The learner's progress stays as it was before
        the event; once the bug is fixed, ``badges replay`` brings it back."""
        metrics.DEAD_LETTERS.labels(PROGRESS_ERROR).inc()
        log.error("learner-events partition %d offset %d: the rules engine failed on event %s (%s: %s); "
                  "sending it to the dead-letter topic", partition, offset, event.event_id, type(exc).__name__, exc,
                  exc_info=exc, extra={"learner_id": event.learner.id})
        settings = self.rt.settings
        headers = dead_letter_headers([], PROGRESS_ERROR, f"{type(exc).__name__}: {exc}", self.events_topic,
                                      partition, offset)
        sent = await self.rt.app.producer.send(settings.dead_letter_topic, learner_key(event.learner.id),
                                               encode_envelope([event]), partition % settings.partitions, None, headers)
        await sent  # on the broker before the envelope's offset can be committed

    async def forget(self, partition: int, offset: int, learner_id: int) -> None:
        """Rewrite the learner's progress without name, username and e-mail, then ask the sink
        (same partition, after every decision taken so far) to do the same with its records.

        Done here, in the agent's own order, so that no event processed around it can write
        back an identity read before: this agent is the only writer of ``progress``.
        """
        key = learner_key(learner_id)
        state = load_state(self.writer.get(key))
        if state is not None:
            forgotten = forget_progress(state, learner_id, int(time.time() * 1e6))
            forgotten["at"] = offset
            await self.writer.put(partition, key, orjson.dumps(forgotten))
        self.rt.sink.forget_sent(partition, learner_id)  # decisions handed off after it wait for it
        await self.rt.app.producer.send(self.decisions_topic, key, encode_forget(learner_id), partition, None, None)
        log.info("forgot learner %d's identity in progress", learner_id, extra={"learner_id": learner_id})

    async def _record_applied(self, partition: int, offset: int, records: list[tuple[bytes, bytes]]) -> None:
        """The envelope's progress records and the partition's applied offset, in one changelog
        batch of the partition: the offset is never durable without the progress it produced."""
        records.append((applied_offset_key(partition), str(offset).encode()))
        for fut in await self.writer.put_many(partition, records):
            fut.add_done_callback(functools.partial(self._landed, partition, offset))
        self.guard.applied_through(partition, offset)
        ledger_applied(self.events_topic, partition, offset)

    def _landed(self, partition: int, offset: int, fut: Any) -> None:
        """A changelog write of the envelope at ``offset`` completed; when it failed, the local
        store holds progress that the changelog does not, and a commit past it would lose it for
        the partition's next owner. The partition is read again from that envelope: its events,
        applied again, find their progress in the local store and write it again; meanwhile the
        commit ceiling stays below it (checked again after the flush that precedes a commit)."""
        exc = None if fut.cancelled() else fut.exception()
        if not fut.cancelled() and exc is None:
            return
        if not self.guard.rewind(partition, offset):
            return
        log.error("learner-events partition %d: the changelog write of offset %d failed (%s); reading again from it",
                  partition, offset, "cancelled" if exc is None else f"{type(exc).__name__}: {exc}")
        metrics.OFFSETS_SOUGHT_BACK.labels("write_failed").inc()
        asyncio.ensure_future(self.rt.app.consumer.seek(TP(self.events_topic, partition), offset))

    async def _skip(self, partition: int, offset: int, verdict: Verdict) -> None:
        if verdict is Verdict.SKIPPED:
            target = self.guard.seeking[partition]
            metrics.OFFSETS_SOUGHT_BACK.labels("skipped").inc()
            log.error("learner-events partition %d: offset %d delivered after %d; offsets were skipped "
                      "by the consumer: reading again from %d", partition, offset, target - 1, target)
            await self.rt.app.consumer.seek(TP(self.events_topic, partition), target)
        else:
            metrics.OFFSETS_SOUGHT_BACK.labels("dropped_while_seeking").inc()

    async def _count_replay(
        self, replay_id: str, end: bool, partition: int, applied: int, added: int, decisions: list[Any]
    ) -> None:
        """Tally a replay run's effect on this partition; answer its end marker with the tally."""
        counts = self.replay_counts.setdefault((replay_id, partition), dict.fromkeys(REPORT_FIELDS, 0))
        counts["applied"] += applied
        counts["fulfillments_added"] += added
        for _key, decision in decisions:
            if not decision.replayed:
                counts["awards" if decision.action == "award" else "revocations"] += 1
        if end:
            report = {"replay": replay_id, "partition": partition, **self.replay_counts.pop((replay_id, partition))}
            await self.rt.app.producer.send(
                self.rt.settings.replay_reports_topic, None, orjson.dumps(report), 0, None, None
            )


def register(runtime: "Runtime") -> ProgressProcessor:
    processor = ProgressProcessor(runtime)

    async def progress(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            await processor.process(message.partition, message.offset, event.value)

    runtime.app.agent(runtime.topics.learner_events, name="progress")(progress)
    runtime.app.resume_positions = processor.resume_positions
    runtime.app.commit_ceiling = processor.commit_ceiling
    return processor
