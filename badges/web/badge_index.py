"""An index of this worker's badges: a page of ``/api/badges`` costs O(log n + limit).

The list is ordered failed first, then the most recently updated (then learner id, template),
and paged with a cursor: the sort key of the last row shown. Each worker keeps its issuance
records' sort keys in sorted lists (all, and one per status) for the partitions it owns, so a
page is a bisection and a slice, and the rows are then read from the store (at most ``limit``
records). The counts by status come from the same index, as does the
``badges_badges{status}`` gauge.

Kept current by the sink: every issuance write goes through ``Sink.save``, which calls
``learner_changed``. Rebuilt from the store after each rebalance (and every
``REBUILD_EVERY_S`` as a safety net) in the background, a chunk at a time, so that the scan never
holds the event loop; writes during a rebuild are re-read from the store before the new index
replaces the old one.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

import orjson
from sortedcontainers import SortedList

from badges import metrics
from badges.web.http import HttpError
from badges.wire.envelope import learner_partition

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from badges.runtime import Runtime

SortKey = tuple[int, float, int, str]  # (0 failed / 1 not, -updated epoch s, learner id, template)
STATUSES = ("pending", "in_flight", "issued", "failed", "revoked", "revoke_failed")
FAILED_STATUSES = ("failed", "revoke_failed")
REBUILD_EVERY_S = 600.0
CHUNK = 500


def record_status(rec: dict[str, Any]) -> str:
    return str(rec.get("status") or ("in_flight" if rec.get("in_flight") else "pending"))


def _epoch(updated: Any) -> float:
    try:
        return datetime.fromisoformat(str(updated)).timestamp()
    except ValueError:
        return 0.0


def sort_key(learner_id: int, template: str, status: str, updated: Any) -> SortKey:
    return (0 if status in FAILED_STATUSES else 1, -_epoch(updated) if updated else 0.0, learner_id, template)


def encode_cursor(key: SortKey) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    try:
        failed, updated, learner_id, template = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return (int(failed), float(updated), int(learner_id), str(template))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise HttpError(400, "after: not a cursor given by this API") from None


class BadgeIndex:
    """Sort keys of the badges of some partitions, overall and by status."""

    def __init__(self, partitions: set[int]) -> None:
        self.partitions = partitions
        self.all: SortedList = SortedList()
        self.by_status: dict[str, SortedList] = {}
        self._entries: dict[int, list[tuple[SortKey, str]]] = {}  # learner id -> (key, status)

    def put(self, learner_id: int, records: dict[str, Any] | None) -> None:
        """Replace the learner's entries with those of ``records`` (None: none)."""
        for key, status in self._entries.pop(learner_id, ()):
            self.all.remove(key)
            self.by_status[status].remove(key)
        entries = []
        for template, rec in (records or {}).items():
            status = record_status(rec)
            key = sort_key(learner_id, template, status, rec.get("updated"))
            self.all.add(key)
            self.by_status.setdefault(status, SortedList()).add(key)
            entries.append((key, status))
        if entries:
            self._entries[learner_id] = entries

    def counts(self) -> dict[str, int]:
        return {status: len(keys) for status, keys in self.by_status.items() if keys}

    def page(self, status: str | None, after: SortKey | None, limit: int) -> tuple[list[SortKey], int]:
        """Up to ``limit`` keys after the cursor, and how many match in all."""
        keys = self.all if status is None else self.by_status.get(status, SortedList())
        start = keys.bisect_right(after) if after is not None else 0
        return list(keys.islice(start, start + limit)), len(keys)


class BadgeIndexer:
    """This worker's index, rebuilt after rebalances and kept current by the sink."""

    def __init__(self, runtime: "Runtime") -> None:
        self.rt = runtime
        self.index = BadgeIndex(set())
        self.ready = False
        self._rebuilding: set[int] | None = None  # learners written while a rebuild scans
        self._built = {"rebalance": -1, "at": 0.0}

    def learner_changed(self, partition: int, learner_key: bytes, records: dict[str, Any]) -> None:
        learner_id = int(learner_key)
        if partition in self.index.partitions:
            self.index.put(learner_id, records)
            self._publish()
        if self._rebuilding is not None:
            self._rebuilding.add(learner_id)

    def _records(self, learner_id: int) -> dict[str, Any] | None:
        raw = self.rt.tables.issuance.data.get(str(learner_id).encode())
        return orjson.loads(raw) if raw is not None else None

    async def rebuild(self, partitions: set[int]) -> None:
        n_partitions = self.rt.settings.partitions
        store = self.rt.tables.issuance.data
        fresh = BadgeIndex(partitions)
        self._rebuilding = set()
        try:
            keys = list(store.keys())
            for i in range(0, len(keys), CHUNK):
                for key in keys[i:i + CHUNK]:
                    try:
                        learner_id = int(key)
                    except ValueError:
                        continue
                    if learner_partition(learner_id, n_partitions) in partitions:
                        fresh.put(learner_id, self._records(learner_id))
                await asyncio.sleep(0)  # one chunk at a time: requests and agents go on
            for learner_id in self._rebuilding:  # written while the scan ran
                if learner_partition(learner_id, n_partitions) in partitions:
                    fresh.put(learner_id, self._records(learner_id))
        finally:
            self._rebuilding = None
        self.index = fresh
        self.ready = True
        self._publish()

    def _publish(self) -> None:
        counts = self.index.counts()
        for status in STATUSES:
            metrics.BADGES.labels(status).set(counts.get(status, 0))

    async def maybe_rebuild(self) -> None:
        """After each rebalance once tables are recovered, and every REBUILD_EVERY_S."""
        app = self.rt.app
        due = (app.rebalancing_count != self._built["rebalance"]
               or time.monotonic() - self._built["at"] > REBUILD_EVERY_S)
        if not due or app.rebalancing or not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]  # faust's TableManagerT interface omits recovery
            return
        from badges.web.cluster import local_partitions

        count = app.rebalancing_count
        try:
            await self.rebuild(local_partitions(self.rt))
        except Exception:  # an exception out of a timer crashes the worker
            # the web view's index only: the worker goes on, and the index is built again at the
            # next rebalance or after REBUILD_EVERY_S, as after a rebuild that succeeded
            log.exception("badge index: rebuild failed; the web view's badge lists may be incomplete until the next")
        if app.rebalancing_count == count:
            self._built.update(rebalance=count, at=time.monotonic())

    def rows_of(self, keys: Iterable[SortKey]) -> Iterable[tuple[SortKey, int, str, dict[str, Any]]]:
        """(key, learner id, template, record) for each key still in the store, read now."""
        cache: dict[int, dict[str, Any] | None] = {}
        for key in keys:
            learner_id, template = key[2], key[3]
            if learner_id not in cache:
                cache[learner_id] = self._records(learner_id)
            rec = (cache[learner_id] or {}).get(template)
            if rec is not None:
                yield key, learner_id, template, rec


def register(runtime: "Runtime") -> BadgeIndexer:
    indexer = BadgeIndexer(runtime)
    runtime.app.timer(1.0, name="badge-index")(indexer.maybe_rebuild)
    return indexer
