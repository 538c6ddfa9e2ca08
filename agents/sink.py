"""The Credly sink: carries out award/revoke decisions exactly once.

Each organization's provider (``badges.providers``: Credly, or Accredible) makes the calls; the
records are the same for both (``credly_id`` / ``credly_state`` hold the provider's badge id and
state: an Accredible credential id, ``issued`` or ``revoked``).

The ``issuance`` table (per learner, per template) is the source of truth of what Credly did.
For each batch of decisions the sink first makes its intent durable (a record marked
``in_flight`` is written to the changelog and acknowledged by the broker *before* the Credly
call), then calls Credly for the learners of the batch concurrently (one learner's decisions
stay in order), then records the outcomes. After a crash the decision is delivered again; a record still ``in_flight`` tells the
issuer that the outcome is unknown, so it looks the badge up in Credly before any new POST.
A decision already carried out is skipped. Failures after all retries are recorded as
``failed`` and re-driven by `badges retry-failed`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Iterator, NamedTuple

import orjson
from aiokafka.errors import KafkaError
from faust.types import TP

from badges import metrics
from badges.agents.lifecycle_emitter import AWARDED, REVOKED, LifecycleEmitter, badge_uuid
from badges.credly.models import IssueRequest, evidence_summary
from badges.credly.tokens import MissingToken
from badges.domain import issuance
from badges.domain.engine import Decision, desired_decision, rebuilt_versions
from badges.domain.forget import forget_issuance, is_forgotten
from badges.domain.issuance import IssuanceRecord, Status
from badges.domain.model import CompiledConfig
from badges.faults import fails_for, fault_point
from badges.kafka.offsets import is_learner_key
from badges.logs import log_context
from badges.tables.writer import TableWriter
from badges.wire.deadletter import dead_letter_headers
from badges.wire.decisions import RETRY_FAILED, Forget, Message, decision_messages, decode_message, encode_forget, encode_retry_failed
from badges.wire.envelope import learner_key, learner_partition

if TYPE_CHECKING:
    from badges.runtime import Runtime

log = logging.getLogger(__name__)

Records = dict[str, IssuanceRecord]  # one learner's issuance records, by template
SINK_ERROR = "sink_error"  # the dead-letter reason of a decision that fails on its own


class SinkItem(NamedTuple):
    """One decision (or operator request) of a decisions message, as the sink's batches hold it:
    a message carries a whole envelope's decisions, and a poison one is set aside alone."""

    partition: int
    offset: int  # of the message that carried it; HANDED_OFF: handed over in process (Sink.hand_off)
    message: Decision | Forget | str

    def learner(self) -> object:
        """What orders items: a learner's decisions and requests stay in order; others apart."""
        message = self.message
        if isinstance(message, Decision):
            return message.learner.id
        if isinstance(message, Forget):
            return message.learner_id
        return (self.partition, self.offset)

    def encoded(self) -> bytes:
        """The item as a decisions message of its own (for the dead-letter topic)."""
        if isinstance(self.message, Decision):
            return decision_messages([self.message])[0]
        if isinstance(self.message, Forget):
            return encode_forget(self.message.learner_id)
        return encode_retry_failed()


HANDED_OFF = -1  # the offset of a SinkItem the progress agent handed over in process


def sink_items(partition: int, offset: int, message: Message) -> list[SinkItem]:
    if isinstance(message, tuple):
        return [SinkItem(partition, offset, decision) for decision in message]
    return [SinkItem(partition, offset, message)]


# How long the sink waits for more decisions before a batch that is not full: nothing but one
# turn of the event loop (messages already fetched join the batch). The decisions of an envelope
# travel in one message, so there is nothing to wait for; under load the next batch gathers while
# this one is carried out (PipelinedBatches). A 5 ms wait cost every badge 8-10 ms of latency on
# the busy event loop (issue 20: decision hop p50 22-37 ms -> 11-27 ms, bench/NOTES.md).
SINK_BATCH_WAIT_S = 0.0
# Decisions per batch, per Credly call slot (BADGES_CREDLY_CONCURRENCY): a batch has a fixed cost
# (the intents' broker round trip, the lifecycle deliveries, the outcomes), so under a backlog
# more decisions share it; calls stay at most ``credly_concurrency`` at a time (``slots``).
SINK_BATCH_PER_SLOT = 8
# Hand-offs remembered until their topic copies arrive; past it they are forgotten (the copies are
# then carried out as duplicates: skipped by their version, counted as such).
HANDED_MAX = 50_000


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


RECONCILE_CHECK_EVERY_S = 10.0  # how often the timer looks whether a reconciliation is due
RECONCILE_EVERY_S = 600.0  # a full reconciliation at least this often, besides every rebalance


def records_in(
    records: Any, partitions: set[int], n_partitions: int, marker: bytes | None = None,
) -> Iterator[tuple[bytes, int, dict[str, Any]]]:
    """(learner key, partition, records by template) of the issuance records in these
    partitions; with ``marker``, only records whose raw bytes contain it (the rest unparsed)."""
    for lkey, raw in list(records):
        if marker is not None and marker not in raw:
            continue
        try:
            partition = learner_partition(int(lkey), n_partitions)
        except ValueError:
            continue
        if partition in partitions:
            yield lkey, partition, orjson.loads(raw)


def reconcile_work(
    progress: Iterable[tuple[bytes, bytes]], issuance_of: Callable[[bytes], Records],
    partitions: set[int], n_partitions: int, config: CompiledConfig,
) -> dict[bytes, tuple[int, list[Decision]]]:
    """The decisions still to carry out in these partitions: for every (learner, template) whose
    badge record in the progress table (the desired state, versioned) is ahead of what the
    issuance record says was applied, the decision that brings Credly to it.

    This is what makes the decisions topic a notification only: a decision message lost, never
    sent (a crash between the progress write and the send), delivered late or twice changes
    nothing, because the progress table holds every badge's latest version and this finds it.
    """
    work: dict[bytes, tuple[int, list[Decision]]] = {}
    for lkey, raw in progress:
        if not is_learner_key(lkey) or b'"badge"' not in raw:
            continue
        try:
            partition = learner_partition(int(lkey), n_partitions)
        except ValueError:
            continue
        if partition not in partitions:
            continue
        state = orjson.loads(raw)
        records: Records | None = None
        for uuid in state.get("templates", {}):
            tpl = config.templates.get(uuid)
            if tpl is None:
                continue  # deleted: nothing to do in Credly
            decision = desired_decision(state, uuid, tpl.organization)
            if decision is None or (decision.action == "award" and is_forgotten(state)):
                continue  # no badge; or a forgotten learner, whom nothing can be issued to
            if records is None:
                records = issuance_of(lkey)
            rec = records.get(uuid)
            if not needs_call(rec, decision.action, _renewal(decision), decision.version, count=False):
                continue
            work.setdefault(lkey, (partition, []))[1].extend(with_missed_versions([decision], records, state))
    return work


def in_version_order(decisions: list[Decision]) -> list[Decision]:
    """``decisions`` (one learner's, of one batch) with each template's versioned decisions in
    version order, in the slots they held; unversioned ones (``retry-failed``) stay where they
    are.

    A batch is in topic order, where a badge's versions follow each other, but a hand-off can
    come before a lower version's copy still on the topic: carried out first, a revocation would
    find no badge and the award after it would be skipped as carried out (the random kills'
    seed 604). ``_hand_offs_in_turn`` keeps such a hand-off out; this keeps the batch right
    whatever its order."""
    by_template: dict[str, list[Decision]] = {}
    for d in decisions:
        if d.version:
            by_template.setdefault(d.template, []).append(d)
    if all(len(ds) < 2 for ds in by_template.values()):
        return decisions
    ordered = {t: iter(sorted(ds, key=lambda d: d.version)) for t, ds in by_template.items()}
    return [next(ordered[d.template]) if d.version else d for d in decisions]


def with_missed_versions(
    decisions: list[Decision], records: Records, state: dict[str, Any] | None,
) -> list[Decision]:
    """``decisions`` with, before each one whose previous versions were never applied, those versions.

    A crash between the progress write and the decisions' send loses their notification; the
    next decision of the badge (a new event) may reach the sink before the reconciliation that
    would have found the lost one. The missing versions are rebuilt from the learner's progress
    record (``state``), which keeps the badge's earlier versions (``rebuilt_versions``); an
    award is not rebuilt for a learner whose identity was erased.
    """
    out: list[Decision] = []
    planned: set[tuple[str, int]] = {(d.template, d.version) for d in decisions}
    for d in decisions:
        rec = records.get(d.template)
        if state is not None and issuance.previous_missing(rec, d.version):
            applied = rec.applied_v if rec is not None else 0
            for missing in rebuilt_versions(state, d.template, d.organization, applied, d.version):  # type: ignore[arg-type]  # the decoded progress record
                if (d.template, missing.version) in planned or (missing.action == "award" and is_forgotten(state)):
                    continue
                out.append(missing)
                planned.add((d.template, missing.version))
        out.append(d)
    return out


def needs_call(rec: IssuanceRecord | None, action: str, renewal_of: str | None = None,
               version: int = 0, count: bool = True) -> bool:
    """``issuance.needs_call``, counting the duplicates it skips (``count``)."""
    call = issuance.needs_call(rec, "award" if action == "award" else "revoke", renewal_of, version)
    if not call and count:
        (metrics.AWARDS if action == "award" else metrics.REVOCATIONS).labels("duplicate_skipped").inc()
    return call


def _renewal(d: Decision) -> str | None:
    return d.event.event_id if d.action == "award" and d.renewal else None


DecisionKey = tuple[int, str, int, str]  # learner, template, version, action


def _key(d: Decision) -> DecisionKey:
    return (d.learner.id, d.template, d.version, d.action)


class HandedOff:
    """The decisions carried out from a hand-off (``Sink.hand_off``), until their copies arrive
    from the topic: a copy is then dropped before any record is read, instead of being carried
    out again (skipped by its version, and counted as a duplicate). Forgotten at every
    rebalance (the copies of a partition that moved are its new owner's) and past ``HANDED_MAX``.
    """

    def __init__(self) -> None:
        self.keys: set[DecisionKey] = set()
        self.rebalances = -1  # the rebalance count ``keys`` and ``forgets`` belong to
        # Forget requests this worker's progress agent sent, by partition, until the sink takes
        # them from the topic. A forget is not handed off (an earlier decision still on the topic
        # would write the identity back after it), so no hand-off of its partition may overtake
        # it either: a decision of a learner who came back would lose its identity to it.
        self.forgets: dict[int, set[int]] = {}

    def _sync(self, rebalances: int) -> None:
        if rebalances != self.rebalances:
            self.keys.clear()
            self.forgets.clear()
            self.rebalances = rebalances
        elif len(self.keys) > HANDED_MAX:  # only the copies to drop: a forget is still waited for
            self.keys.clear()

    def forget_sent(self, partition: int, learner_id: int, rebalances: int) -> None:
        self._sync(rebalances)
        self.forgets.setdefault(partition, set()).add(learner_id)

    def forget_taken(self, partition: int, learner_id: int) -> None:
        self.forgets.get(partition, set()).discard(learner_id)

    def waits_for_forget(self, partition: int, rebalances: int) -> bool:
        self._sync(rebalances)
        return bool(self.forgets.get(partition))

    def without_copies(self, items: list[SinkItem], rebalances: int) -> list[SinkItem]:
        """``items`` without the copies of hand-offs carried out, and without a second copy of
        one decision in the batch (a hand-off and its copy taken together)."""
        self._sync(rebalances)
        seen: set[DecisionKey] = set()
        kept = []
        for item in items:
            d = item.message
            if isinstance(d, Decision):
                key = _key(d)
                if key in seen:
                    continue
                if item.offset != HANDED_OFF and key in self.keys:
                    self.keys.discard(key)
                    continue
                seen.add(key)
            kept.append(item)
        return kept

    def carried_out(self, items: list[SinkItem]) -> None:
        """A batch was carried out: its hand-offs' copies are dropped when they arrive."""
        self.keys.update(_key(m) for _p, offset, m in items if offset == HANDED_OFF and isinstance(m, Decision))


class Sink:
    def __init__(self, runtime: "Runtime") -> None:
        self.rt = runtime
        s = runtime.settings
        self.writer = TableWriter(runtime.app, runtime.tables.issuance)
        self.progress = TableWriter(runtime.app, runtime.tables.progress)  # read only
        self.providers = runtime.providers
        self.lifecycle = LifecycleEmitter(runtime, runtime.registry)
        self.slots = asyncio.Semaphore(s.credly_concurrency)
        self.lock = asyncio.Lock()  # one batch at a time: the agent's, or the intent sweep's
        self.batches: PipelinedBatches | None = None  # the agent's queue, once it runs
        self.handed = HandedOff()

    # --- records ----------------------------------------------------------------------------

    def load(self, key: bytes) -> Records:
        raw = self.writer.get(key)
        if raw is None:
            return {}
        return {t: IssuanceRecord.from_dict(r) for t, r in orjson.loads(raw).items()}

    async def save(self, partition: int, key: bytes, records: Records) -> Any:
        """The one write path of ``issuance``: the web view's badge index follows it. Returns
        the changelog send's future."""
        stored = {t: r.to_dict() for t, r in records.items()}
        fut = await self.writer.put(partition, key, orjson.dumps(stored))
        self.rt.badge_index.learner_changed(partition, key, stored)
        return fut

    async def forget(self, partition: int, learner_id: int) -> None:
        """The learner's issuance records without identity; callers hold ``self.lock`` (every
        write of this table happens under it, so no batch can write back an older copy)."""
        key = str(learner_id).encode()
        records = self.load(key)
        if records:
            stored = forget_issuance({t: r.to_dict() for t, r in records.items()}, learner_id)
            await self.save(partition, key, {t: IssuanceRecord.from_dict(r) for t, r in stored.items()})
        log.info("forgot learner %d's identity in issuance", learner_id, extra={"learner_id": learner_id})

    # --- one batch --------------------------------------------------------------------------

    def hand_off(self, partition: int, decisions: tuple[Decision, ...]) -> bool:
        """The progress agent's decisions of one envelope, in process, as soon as it has written
        the progress that took them and sent them to the decisions topic.

        The topic is a broker hop away (issue 20: p50 26-40 ms at 1,000 events/s, the longest of
        an event's hops): the agent's queue takes them now, ahead of their copy on the topic. The
        copy stays what makes them durable: it is carried out as before unless the hand-off was
        carried out first (``handed``), so a hand-off that is dropped (a full queue under a
        backlog, a rebalance, a crash, a batch that fails) changes nothing but the latency. A
        hand-off that would overtake an earlier version of its badge still on the topic is not
        carried out (``_hand_offs_in_turn``), nor one that would overtake a forget request.
        Learner-events and the decisions topic are co-partitioned, so this worker owns both
        partitions (``owned`` checks again). False when the queue did not take them.
        """
        batches = self.batches
        if batches is None or not decisions:
            return False
        if self.handed.waits_for_forget(partition, self.rt.app.rebalancing_count):
            metrics.HANDED_OFF.labels("deferred").inc()
            return False
        taken = batches.offer(Taken(None, partition, decisions))
        metrics.HANDED_OFF.labels("queued" if taken else "refused").inc()
        return taken

    def forget_sent(self, partition: int, learner_id: int) -> None:
        """The progress agent sent a forget request to the decisions topic: no hand-off of its
        partition overtakes it (``HandedOff.forgets``)."""
        self.handed.forget_sent(partition, learner_id, self.rt.app.rebalancing_count)

    async def process_batch(self, items: list[SinkItem]) -> None:
        """``items``: the decisions and requests of the batch's messages, in offset order, and
        the hand-offs taken meanwhile."""
        async with self.lock:  # no reconciliation or sweep between the check of a hand-off and its call
            items = self.handed.without_copies(self._hand_offs_in_turn(items), self.rt.app.rebalancing_count)
            work: dict[bytes, tuple[int, list[Decision]]] = {}
            taken: list[int] = []  # ce_time of each decision, for the per-hop latency
            for partition, _, message in items:
                if message == RETRY_FAILED:
                    await self.redrive_failed(partition, work)
                    continue
                if isinstance(message, Forget):  # the decisions before it first
                    await self.carry_out_work(work)
                    await self.forget(partition, message.learner_id)
                    self.handed.forget_taken(partition, message.learner_id)
                    work = {}
                    continue
                assert isinstance(message, Decision)
                if not message.replayed:
                    taken.append(message.event.time_us)
                work.setdefault(learner_key(message.learner.id), (partition, []))[1].append(message)
            metrics.observe_stage("decision_taken", taken)
            await self.carry_out_work(work)
        self.handed.carried_out(items)

    def _hand_offs_in_turn(self, items: list[SinkItem]) -> list[SinkItem]:
        """``items`` without the hand-offs that would overtake an earlier version of their badge
        (``issuance.takes_hand_off``, judged on the records as they were before this batch):
        their copies on the topic are carried out in turn, as without a hand-off. Runs before
        ``without_copies`` drops a copy taken in the same batch as its hand-off. A hand-off taken
        counts as carried out for the next one of its badge: the batch carries a learner's
        decisions out in order."""
        if all(item.offset != HANDED_OFF for item in items):
            return items
        records: dict[bytes, Records] = {}
        kept = []
        for item in items:
            d = item.message
            if item.offset == HANDED_OFF and isinstance(d, Decision):
                lkey = learner_key(d.learner.id)
                if lkey not in records:
                    records[lkey] = self.load(lkey)
                rec = records[lkey].get(d.template)
                if not issuance.takes_hand_off(rec, d.version):
                    metrics.HANDED_OFF.labels("deferred").inc()
                    continue
                # carried out before the next hand-off of this badge in the batch (in order)
                records[lkey][d.template] = issuance.applied(rec or IssuanceRecord(), d.version)
            kept.append(item)
        return kept

    async def set_aside(self, item: SinkItem, exc: BaseException) -> None:
        """A decision that fails on its own (``until_done``) goes to the dead-letter topic, as a
        decisions message of its own keyed by its learner, with why; the reconciliation carries
        its badge out once the cause is gone."""
        if item.offset == HANDED_OFF:  # its copy on the topic is carried out (or set aside) in turn
            log.warning("Credly sink: a handed-off decision failed (%s: %s); its copy on the topic follows",
                        type(exc).__name__, exc)
            return
        metrics.DEAD_LETTERS.labels(SINK_ERROR).inc()
        settings = self.rt.settings
        learner = item.learner()
        key = learner_key(learner) if isinstance(learner, int) else None
        headers = dead_letter_headers([], SINK_ERROR, f"{type(exc).__name__}: {exc}", settings.decisions_topic,
                                      item.partition, item.offset)
        sent = await self.rt.app.producer.send(settings.dead_letter_topic, key, item.encoded(),
                                               item.partition % settings.partitions, None, headers)
        await sent  # on the broker before the decision is acknowledged

    async def carry_out_work(self, work: dict[bytes, tuple[int, list[Decision]]]) -> None:
        """Carry out decisions grouped by learner; callers hold ``self.lock``."""
        if not work:
            return
        # 1. intent: mark every record about to be called in flight, durably, with the decisions
        #    themselves, so that an intent never completed is found and carried out (sweep_intents)
        plans: dict[bytes, tuple[int, Records, list[Decision]]] = {}
        unknown: dict[tuple[bytes, str], bool] = {}  # an earlier attempt's outcome is unknown
        intents: list[Any] = []  # the intent records' changelog sends
        for lkey, (partition, decisions) in work.items():
            poison = next((d.learner.id for d in decisions if fails_for("sink.poison_learner", d.learner.id)), None)
            if poison is not None:  # a test's bug that a learner's records trigger, wherever they are carried out
                raise RuntimeError(f"injected poison decision (learner {poison})")
            records = self.load(lkey)
            decisions = in_version_order(decisions)
            if any(issuance.previous_missing(records.get(d.template), d.version) for d in decisions):
                raw = self.progress.get(lkey)
                decisions = with_missed_versions(decisions, records, orjson.loads(raw) if raw else None)
            todo = [d for d in decisions if needs_call(records.get(d.template), d.action, _renewal(d), d.version)]
            if not todo:
                # carried out already: an intent left over from before is done too
                done = {d.template for d in decisions if d.template in records and records[d.template].pending}
                for template in done:
                    records[template] = issuance.intent_done(records[template])
                if done:
                    await self.save(partition, lkey, records)
                continue
            now = time.time()
            for d in todo:
                rec = records.get(d.template, IssuanceRecord())
                # as recorded before this batch (not by the intents of its earlier decisions)
                unknown.setdefault((lkey, d.template), rec.in_flight or rec.outcome_unknown)
                records[d.template] = issuance.plan_intent(rec, d.action, d.to_dict(), now)
            intents.append(await self.save(partition, lkey, records))
            plans[lkey] = (partition, records, todo)
        if not plans:
            return
        # Durable: every intent record of the batch acknowledged by the broker (acks=all). Only
        # these: a whole-producer flush would also wait for the progress agent's traffic. A send
        # that failed raises here, before any call (until_done carries the batch out again).
        await asyncio.gather(*intents)
        fault_point("sink.after_intent_flush")
        # 2. calls, learners concurrently, each learner's decisions in order
        by_learner: dict[bytes, dict[str, bool]] = {}
        for (k, t), u in unknown.items():
            by_learner.setdefault(k, {})[t] = u
        emitted: list[Any] = []  # lifecycle events' delivery futures
        await asyncio.gather(*(
            self._carry_out(records, todo, by_learner.get(lkey, {}), emitted)
            for lkey, (_, records, todo) in plans.items()
        ))
        # the lifecycle events of the batch are delivered before its outcomes are recorded
        await asyncio.gather(*emitted)
        # 3. outcomes
        for lkey, (partition, records, todo) in plans.items():
            for d in todo:
                records[d.template] = issuance.intent_done(records[d.template])
            await self.save(partition, lkey, records)

    async def _carry_out(self, records: Records, decisions: list[Decision], unknown: dict[str, bool],
                         emitted: list[Any]) -> None:
        async with self.slots:
            for d in decisions:
                with log_context(learner_id=d.learner.id, template=d.template, event_id=d.event.event_id):
                    await self._carry_out_one(records, d, unknown, emitted)

    async def _carry_out_one(self, records: Records, d: Decision, unknown: dict[str, bool],
                             emitted: list[Any]) -> None:
        rec = records.get(d.template, IssuanceRecord())
        if not needs_call(rec, d.action, _renewal(d), d.version):  # carried out earlier in this batch
            return
        learner = d.to_dict()["learner"]
        try:
            if d.action == "award":
                rec = await self._issue(rec, learner, d, unknown.get(d.template, False), emitted)
            else:
                rec = await self._revoke(rec, learner, d.template, d.organization, d.event.event_id, d.reason,
                                         emitted)
        except MissingToken as exc:
            rec = issuance.call_refused(rec, d.action, error=str(exc), error_type="MissingToken", now=_now())
            (metrics.AWARDS if d.action == "award" else metrics.REVOCATIONS).labels("failed").inc()
        # carried out, whatever the outcome (a failure is re-driven by retry-failed)
        records[d.template] = rec = issuance.applied(rec, d.version)
        # One line per badge at info cost ~3 % of the worker's CPU under a badge-dense backlog
        # (issue 20b): the routine outcomes are counted (badges_awards_total,
        # badges_revocations_total) and logged at debug; the others stay at info.
        routine = rec.status in (Status.ISSUED, Status.REVOKED) and not rec.reconciled
        log.log(logging.DEBUG if routine else logging.INFO, "%s: %s", d.action, rec.status)

    async def _issue(self, rec: IssuanceRecord, learner: dict[str, Any], d: Decision, unknown: bool,
                     emitted: list[Any]) -> IssuanceRecord:
        template, org = d.template, d.organization
        request = IssueRequest.for_learner(
            email=learner["email"], full_name=learner["name"], username=learner["username"],
            badge_template_id=template, completed_at=d.event.time, earner_id=learner["id"],
            expires_at=d.expires_at, evidence=evidence_summary(self._cause_names(d), d.event.time),
        )
        rec = issuance.start_award(
            rec, organization=org, learner=learner, badge_uuid=badge_uuid(int(learner["id"]), template),
            completed_at=d.event.time, decided_by=d.event.event_id, decided_by_type=d.event.event_type,
            expires_at=d.expires_at, manual=d.cause == ("manual",), reason=d.reason, renewal=d.renewal,
        )
        if not d.replayed:
            metrics.observe_stage("credly_call", (d.event.time_us,))
        outcome = await self.providers.for_org(org).issue_once(org, request, outcome_unknown=unknown)
        fault_point("sink.after_credly_call")
        if outcome.ok:
            assert outcome.badge_id is not None
            emitted.append(await self.lifecycle.emit(AWARDED, learner, template, 0))
            metrics.AWARDS.labels("reconciled" if outcome.reconciled else "issued").inc()
            return issuance.issued(rec, badge_id=outcome.badge_id, state=outcome.state,
                                   reconciled=outcome.reconciled, attempts=outcome.attempts, now=_now())
        metrics.AWARDS.labels("failed").inc()
        return issuance.issue_failed(rec, error=outcome.error, error_type=outcome.error_type,
                                     attempts=outcome.attempts, outcome_unknown=outcome.outcome_unknown,
                                     now=_now())

    def _cause_names(self, d: Decision) -> list[str]:
        """The requirements that completed the template, by description where there is one."""
        tpl = self.rt.config.compiled().templates.get(d.template)
        names = {r.id: r.description or r.id for r in tpl.requirements} if tpl else {}
        return [names.get(c, c) for c in d.cause]

    async def _revoke(self, rec: IssuanceRecord, learner: dict[str, Any], template: str, org: str,
                      event_id: str, reason: str, emitted: list[Any]) -> IssuanceRecord:
        rec = issuance.start_revoke(rec, revoked_by=event_id, reason=reason, now=_now())
        badge_id = rec.credly_id
        if rec.may_hold_badge:  # an issue whose outcome is unknown: the provider may hold the badge
            assert rec.learner is not None
            request = IssueRequest.for_learner(
                email=rec.learner["email"], full_name=rec.learner["name"],
                username=rec.learner["username"], badge_template_id=template,
                completed_at=rec.completed_at or _now(), earner_id=rec.learner.get("id"),
            )
            found = await self.providers.for_org(org).find_issued(org, request)
            badge_id = found.id if found else None
        if badge_id is None:  # never issued in the provider: nothing to take back
            metrics.REVOCATIONS.labels("not_issued").inc()
            return issuance.not_issued(rec)
        outcome = await self.providers.for_org(org).revoke_once(
            org, badge_id, reason=reason or self.rt.settings.revoke_reason)
        fault_point("sink.after_credly_call")
        if outcome.ok:
            emitted.append(await self.lifecycle.emit(REVOKED, learner, template, 0))
            metrics.REVOCATIONS.labels("revoked").inc()
            return issuance.revoked(rec, badge_id=badge_id, state=outcome.state, attempts=outcome.attempts)
        metrics.REVOCATIONS.labels("failed").inc()
        return issuance.revoke_failed(rec, badge_id=badge_id, error=outcome.error, error_type=outcome.error_type,
                                      attempts=outcome.attempts)

    # --- reconciliation ---------------------------------------------------------------------

    async def reconcile(self, partitions: set[int]) -> int:
        """Carry out every decision the progress table holds and the issuance table has not
        applied, in these partitions (this worker's); returns how many were carried out.

        Intents whose outcome was never recorded are among them (their version is not applied):
        the issue is looked up in Credly first, as any retried call is.
        """
        progress = self.rt.tables.progress.data
        config = self.rt.config.compiled()
        async with self.lock:  # no batch of this worker is in flight while it compares
            work = reconcile_work(progress.items(), self.load, partitions, self.rt.settings.partitions, config)
            if work:
                n = sum(len(ds) for _, ds in work.values())
                log.warning("reconciliation: carrying out %d decision(s) never applied", n)
                metrics.RECONCILED.inc(n)
                await self._carry_out_each(work)
        return sum(len(ds) for _, ds in work.values())

    async def _carry_out_each(self, work: dict[bytes, tuple[int, list[Decision]]]) -> None:
        """``work``, or, when it fails for a reason that is not the broker's, each learner's part
        on its own: a learner whose badge still fails (a bug its records trigger, the poison
        decision that ``until_done`` set aside) is logged, counted and left in the progress
        table for the next reconciliation, and the rest of the partition is carried out. Raised
        out of the timer, it would crash the worker at every start (after the rebalance)."""
        try:
            await self.carry_out_work(work)
            return
        except Exception as exc:
            if _transient(exc):
                raise
            if len(work) == 1:
                self._reconciliation_failed(next(iter(work)), exc)
                return
        for lkey, part in work.items():
            try:
                await self.carry_out_work({lkey: part})
            except Exception as exc:
                if _transient(exc):
                    raise
                self._reconciliation_failed(lkey, exc)

    def _reconciliation_failed(self, lkey: bytes, exc: BaseException) -> None:
        metrics.RECONCILIATION_FAILURES.inc()
        log.error("reconciliation: learner %s's badges could not be carried out (%s: %s); left for the next one",
                  lkey.decode(), type(exc).__name__, exc, extra={"learner_id": int(lkey)})

    # --- operator requests --------------------------------------------------------------------

    async def redrive_failed(self, partition: int, work: dict[bytes, tuple[int, list[Decision]]]) -> int:
        """Queue every failed record of this partition for another try."""
        n = 0
        table = self.rt.tables.issuance.data.items()
        for lkey, _, by_template in records_in(table, {partition}, self.rt.settings.partitions):
            for template, stored in by_template.items():
                rec = IssuanceRecord.from_dict(stored)
                if rec.status not in (Status.FAILED, Status.REVOKE_FAILED) or not rec.learner or rec.forgotten:
                    continue
                work.setdefault(lkey, (partition, []))[1].append(_retry_decision(rec, template))
                n += 1
        log.info("retry-failed: %d badge(s) of partition %d queued again", n, partition)
        return n


def _retry_decision(rec: IssuanceRecord, template: str) -> Decision:
    assert rec.learner is not None
    return Decision.from_dict({
        "action": "award" if rec.status is Status.FAILED else "revoke",
        "learner": {k: rec.learner[k] for k in ("id", "username", "email", "name")},
        "template": template,
        "organization": rec.organization or "",
        "event": {"event_id": rec.decided_by or "", "event_type": rec.decided_by_type or "retry",
                  "time": rec.completed_at or _now(), "time_us": 0, "origin": "badges retry-failed"},
    })


BATCH_RETRY_MAX_S = 30.0


@dataclass(frozen=True)
class Taken:
    """A decisions message taken from the stream: decoded once (its size bounds the batches),
    acknowledged after its batch is carried out."""

    event: Any  # Faust's event; None for a hand-off (Sink.hand_off): nothing to acknowledge
    partition: int
    message: Message | None  # None: undecodable, logged and skipped

    @classmethod
    def of(cls, event: Any) -> "Taken":
        partition = event.message.partition
        try:
            message: Message | None = decode_message(event.value)
        except Exception as exc:  # noqa: BLE001 - only our own code writes this topic
            log.error("skipping an undecodable decision message on partition %d: %s", partition, exc)
            message = None
        return cls(event, partition, message)

    @property
    def offset(self) -> int:
        """The offset of its message, or HANDED_OFF."""
        return self.event.message.offset if self.event is not None else HANDED_OFF

    @property
    def weight(self) -> int:
        """The decisions it carries (an operator request counts as one)."""
        return len(self.message) if isinstance(self.message, tuple) else 1


class PipelinedBatches:
    """Takes decisions from the stream *while* the previous batch is carried out.

    Faust's ``take_events`` stops taking events while the batch it yielded is processed and then
    gathers for only ``within``: under a backlog the sink got 1 to 4 decisions per batch, each
    paying the batch's broker round trips (intents, lifecycle events), and fell behind the
    progress agent (issue 20). Here the stream is read continuously into ``pending`` (at most two
    batches ahead: back-pressure), and one batch at a time is carried out from it. Events are
    acknowledged only after their batch is carried out, so an offset is never committed for a
    decision not carried out (a crash re-delivers it, as before).

    ``batch_max`` and the bound count ``weight`` units (the decisions a message carries), not
    messages: one message carries all the decisions of a progress envelope.
    """

    def __init__(self, process: Callable[[list[Any]], Awaitable[None]],
                 ack: Callable[[Any], Awaitable[Any]], batch_max: int, wait_s: float,
                 owned: Callable[[Any], bool] = lambda event: True,
                 weight: Callable[[Any], int] = lambda event: 1) -> None:
        self.process, self.ack, self.batch_max, self.wait_s = process, ack, batch_max, wait_s
        # whether this worker still owns an event's partition: decisions read ahead of a
        # rebalance that gave their partition away are left to its new owner
        self.owned = owned
        self.weight = weight
        self.pending: list[tuple[Any, int]] = []  # (event, its weight)
        self.pending_weight = 0
        self.ready = asyncio.Event()  # pending is not empty
        self.room = asyncio.Event()  # pending is below its bound
        self.room.set()

    async def run(self, events: Any) -> None:
        worker = asyncio.ensure_future(self._carry_out())
        try:
            async for event in events:
                if worker.done():
                    worker.result()  # its error, if any, ends the agent (cancellation too)
                w = max(1, self.weight(event))
                self.pending.append((event, w))
                self.pending_weight += w
                self.ready.set()
                if self.pending_weight >= 2 * self.batch_max:
                    self.room.clear()
                    await self.room.wait()
        finally:
            worker.cancel()

    def offer(self, event: Any) -> bool:
        """Queue an event that did not come from the stream (a hand-off), unless the queue is at
        its bound: under a backlog the stream's copy is as near, and taking it twice would only
        add work. True when queued."""
        if self.pending_weight >= self.batch_max:
            return False
        w = max(1, self.weight(event))
        self.pending.append((event, w))
        self.pending_weight += w
        self.ready.set()
        return True

    def _take_batch(self) -> list[Any]:
        """The oldest pending events up to ``batch_max`` units (at least one event)."""
        n = total = 0
        for _event, w in self.pending:
            if n and total + w > self.batch_max:
                break
            n += 1
            total += w
        batch = [event for event, _w in self.pending[:n]]
        del self.pending[:n]
        self.pending_weight -= total
        return batch

    async def _carry_out(self) -> None:
        while True:
            await self.ready.wait()
            if self.pending_weight < self.batch_max:
                # a moment for more decisions to come: under a trickle this is each badge's extra
                # latency; under a backlog the batch is full already
                await asyncio.sleep(self.wait_s)
            batch = self._take_batch()
            if not self.pending:
                self.ready.clear()
            if self.pending_weight < 2 * self.batch_max:
                self.room.set()
            mine = [event for event in batch if self.owned(event)]
            if mine:
                await self.process(mine)
            for event in batch:
                await self.ack(event)


# Failures of a batch, with an error that is not the broker's, before its learners are tried
# apart (``until_done``).
POISON_AFTER = 3


def _transient(exc: BaseException) -> bool:
    """The broker or the network, not the decisions: every batch fails alike until it is back."""
    return isinstance(exc, (KafkaError, OSError))


async def until_done(
    process: Callable[[list[Any]], Awaitable[None]], items: list[Any], *, stop: Callable[[], bool],
    set_aside: Callable[[Any, BaseException], Awaitable[None]] | None = None,
    key_of: Callable[[Any], Any] = lambda item: item, first_wait_s: float = 0.5,
) -> None:
    """Process a batch of decisions until it succeeds, or set aside the one that cannot be.

    Faust's ``take_events`` acknowledges a batch even when the code that got it raises, so an
    exception that left the loop would commit decisions never carried out. Processing a batch
    again is safe (outcomes are recorded, unknown ones looked up in Credly first), so an
    unexpected error is logged and the batch retried with backoff, holding its partitions.

    An error that is not the broker's and fails a batch ``POISON_AFTER`` times may come from one
    decision (a poison message, a bug a learner's records trigger): retrying it forever would
    hold every learner of its partitions. The batch is then carried out learner by learner
    (``key_of``), and a learner's decisions one by one, each with the same rule; a single decision
    that still fails goes to ``set_aside`` (the dead-letter topic) and the rest go on. Nothing is
    lost by it: the desired state lives in the progress table, and the reconciliation after
    each rebalance and every ``RECONCILE_EVERY_S`` carries it out once the cause is gone. The
    broker's errors never set anything aside: they fail every batch alike, and it waits.
    """
    wait = first_wait_s
    failures = 0
    while True:
        try:
            await process(items)
            return
        except Exception as exc:  # see the docstring; cancellation still propagates
            if stop():
                raise
            failures += 1
            if set_aside is not None and failures >= POISON_AFTER and not _transient(exc):
                await _apart(process, items, exc, stop=stop, set_aside=set_aside, key_of=key_of,
                             first_wait_s=first_wait_s)
                return
            log.exception("Credly sink: a batch of %d decision(s) failed; retrying in %.1fs", len(items), wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, BATCH_RETRY_MAX_S)


async def _apart(process: Callable[[list[Any]], Awaitable[None]], items: list[Any], exc: BaseException, *,
                 stop: Callable[[], bool], set_aside: Callable[[Any, BaseException], Awaitable[None]],
                 key_of: Callable[[Any], Any], first_wait_s: float) -> None:
    """``items`` by learner (in the order of their first decision), or one by one when they are
    one learner's; a lone decision that keeps failing is set aside."""
    if len(items) == 1:
        log.error("Credly sink: a decision failed %d times (%s: %s); sending it to the dead-letter topic",
                  POISON_AFTER, type(exc).__name__, exc)
        await set_aside(items[0], exc)
        return
    groups: dict[Any, list[Any]] = {}
    for item in items:
        groups.setdefault(key_of(item), []).append(item)
    parts = list(groups.values()) if len(groups) > 1 else [[item] for item in items]
    log.warning("Credly sink: a batch of %d decision(s) failed %d times (%s: %s); carrying out its %d parts apart",
                len(items), POISON_AFTER, type(exc).__name__, exc, len(parts))
    for part in parts:
        await until_done(process, part, stop=stop, set_aside=set_aside, key_of=key_of, first_wait_s=first_wait_s)


def register(runtime: "Runtime") -> Sink:
    sink = Sink(runtime)

    async def credly_sink(stream: Any) -> None:
        batch_max = max(1, runtime.settings.credly_concurrency * SINK_BATCH_PER_SLOT)
        manual = stream.noack()  # an event is acknowledged once carried out (PipelinedBatches)

        async def decoded(events: Any) -> Any:
            async for event in events:
                yield Taken.of(event)

        decisions_topic = runtime.settings.decisions_topic

        def owned(t: Taken) -> bool:
            tp = t.event.message.tp if t.event is not None else TP(decisions_topic, t.partition)
            return tp in runtime.app.consumer.assignment()

        async def ack(t: Taken) -> None:
            if t.event is not None:
                await manual.ack(t.event)

        batches = PipelinedBatches(
            lambda taken: until_done(sink.process_batch,
                                     [item for t in taken if t.message is not None
                                      for item in sink_items(t.partition, t.offset, t.message)],
                                     stop=lambda: runtime.app.should_stop, set_aside=sink.set_aside,
                                     key_of=SinkItem.learner),
            ack, batch_max, SINK_BATCH_WAIT_S, owned=owned, weight=lambda t: t.weight)
        sink.batches = batches
        try:
            await batches.run(decoded(manual.events()))
        finally:
            sink.batches = None

    runtime.app.agent(runtime.topics.decisions, name="credly-sink")(credly_sink)

    # Decisions get lost with crashes, which end in rebalances: the owner of a partition
    # reconciles it after each rebalance, and every RECONCILE_EVERY_S otherwise.
    done = {"rebalance": -1, "at": 0.0}

    async def reconcile() -> None:
        app = runtime.app
        due = (app.rebalancing_count != done["rebalance"]
               or time.monotonic() - done["at"] > RECONCILE_EVERY_S)
        if not due or app.rebalancing or not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]  # faust's TableManagerT interface omits recovery
            return
        decisions_topic = runtime.settings.decisions_topic
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == decisions_topic}
        count = app.rebalancing_count
        if owned:
            try:
                await sink.reconcile(owned)
            except Exception as exc:  # noqa: BLE001 - an exception out of a timer crashes the worker
                # the broker's errors (the rest stay inside ``reconcile``): tried at the next check
                log.warning("reconciliation failed (%s: %s); trying again in %.0fs", type(exc).__name__, exc,
                            RECONCILE_CHECK_EVERY_S)
                return
        if app.rebalancing_count == count:
            done.update(rebalance=count, at=time.monotonic())

    runtime.app.timer(RECONCILE_CHECK_EVERY_S, name="credly-reconcile")(reconcile)

    async def close_credly(app: Any, **_: Any) -> None:
        """After the agents have stopped: no call can be in flight any more."""
        await sink.providers.close()

    runtime.app.on_before_shutdown.connect(close_credly)  # type: ignore[arg-type]  # signal= arrives in **_
    return sink
