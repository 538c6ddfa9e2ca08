"""Faust's group consumer with the corrections the worker's offsets and latency rely on.

The app (``BadgesApp._new_transport`` in ``workers/app.py``) builds its Faust consumer from
``TunedTransport``; the private Faust / aiokafka internals it touches are
wrapped and checked in ``badges/compat.py``.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from badges import compat
from badges.faults import fault_point
from badges.kafka.end_offsets import verified_end_offsets
from badges.kafka.offsets import committable_run

log = logging.getLogger(__name__)

PREFETCH_BACKOFF_S = 0.005


class TunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Four corrections to Faust's group consumer.

    Faust hard-codes ``fetch_max_wait_ms=1500``; while a partition is idle the fetch wait is the
    latency of every hop (docs/KAFKA.md "Latency and the fetch wait"), so the worker makes it a setting
    (``BADGES_FETCH_MAX_WAIT_MS``). Table recovery stops at the end offset the broker
    reports, which must be right (see ``badges.kafka.end_offsets``). aiokafka's prefetch
    backoff would hold every fetch for up to 100 ms (``on_start``). And a fetch must only take
    the records of partitions that were active when it started (``getmany``): a standby
    replica's records taken and dropped are lost to it for good.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        compat.set_fetch_max_wait(consumer, getattr(self.app, "fetch_max_wait_ms", 1500))
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        # aiokafka sends no fetch to a broker while a partition holds fetched records younger
        # than ``prefetch_backoff`` (100 ms, not a constructor argument) that the application
        # has not taken yet; Faust's thread takes them only when its loop asks for the next
        # batch, so under a trickle of events each hop waited up to that long (end-to-end p99
        # at 250 events/s: 215 ms with 100 ms, 52 ms with 5 ms; bench/NOTES.md).
        compat.set_prefetch_backoff(compat.thread_consumer(self), PREFETCH_BACKOFF_S)

    async def getmany(self, active_partitions: Any, timeout: float) -> Any:
        """Fetch the records of a snapshot of the active partitions, never of "every partition".

        Faust hands this fetch its live set of active partitions, and the consumer thread waits
        with it for records (up to ``timeout``). A table recovery that completes meanwhile
        pauses the partitions it read, emptying that set, seeks the standby partitions to where
        their replicas stand and resumes them only later; aiokafka's ``fetched_records`` takes
        the empty set for "every partition" and hands over the standby records, which Faust
        drops (their partitions are not active) with the consumer's position already past them.
        The replica never applies that range, and once promoted its owner applies events to
        learners it does not have (progress built from nothing). A copy taken when the fetch
        starts cannot become empty, so only partitions active then can lose records to a pause
        during the wait: changelog partitions, which every recovery seeks before reading, and
        stream partitions, which a rebalance pauses all at once (the live set emptied then, and
        every partition's records were taken and dropped before).
        """
        if active_partitions is None:  # a client-only app: every partition, as asked
            return await super().getmany(active_partitions, timeout)
        partitions = set(active_partitions)  # this call's own copy
        if not partitions:
            return {}
        return await super().getmany(partitions, timeout)

    async def _highwaters(self, partitions: Any) -> Any:
        reported = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return reported
        return await verified_end_offsets(self.app.kafka, reported)  # type: ignore[attr-defined]  # a BadgesApp


class TunedConsumer(faust_aiokafka.Consumer):
    """Faust's consumer with offsets the worker can trust (``badges.kafka.offsets``): a commit
    never passes an offset that was not acknowledged, and after every assignment a partition
    whose commit went past the work applied is sought back to it."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _new_offset(self, tp: Any) -> int | None:
        acked = self._acked[tp]
        if not acked:
            return None
        compat.merge_gaps_into_acked(self, tp)
        acked.sort()
        ceiling = self.app.commit_ceiling(tp) if self.app.commit_ceiling else None  # type: ignore[attr-defined]  # a BadgesApp
        offset, rest = committable_run(acked, self._committed_offset[tp], ceiling)
        done = len(acked) - len(rest)
        self._acked_index[tp].difference_update(acked[:done])
        del acked[:done]
        return offset

    async def _commit_offsets(self, offsets: Any, start_new_transaction: bool = True) -> bool:
        """Faust computes the offsets to commit before it flushes the producer; a changelog write
        that fails during that flush lowers the commit ceiling (the progress agent goes back to
        it), so the offsets are capped again once the writes they cover have landed."""
        await self.app.producer.flush()
        capped = {}
        for tp, offset in offsets.items():
            ceiling = self.app.commit_ceiling(tp) if self.app.commit_ceiling else None  # type: ignore[attr-defined]  # a BadgesApp
            if ceiling is not None and offset > ceiling:
                log.warning("%s: commit of %d held back to %d (a changelog write failed)", tp, offset, ceiling)
                offset = ceiling
            committed = self._committed_offset.get(tp)
            if committed is None or offset > committed:
                capped[tp] = offset
        if not capped:
            return False
        return await super()._commit_offsets(capped, start_new_transaction)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await super().on_partitions_revoked(revoked)
        if revoked:
            fault_point("rebalance.after_revoke")

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        fault_point("rebalance.before_recovery")
        await super().on_partitions_assigned(assigned, generation_id)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        fault_point("consumer.before_resume_seek")
        resume = getattr(self.app, "resume_positions", None)
        if resume is None:
            return
        for tp, offset in (await resume(self, self.assignment(), dict(self._committed_offset))).items():
            log.warning("%s: committed offset %s is past the last applied one; reading from %d",
                        tp, self._committed_offset.get(tp), offset)
            await self.seek(tp, offset)


class TunedTransport(faust_aiokafka.Transport):
    Consumer = TunedConsumer
