"""Every private Faust / aiokafka internal the worker relies on, in one place, checked at start.

The worker reaches below the public APIs of faust-streaming and aiokafka in a few measured
places (the fetch wait, aiokafka's prefetch backoff, the end offsets table recovery stops at,
the partitions a fetch may take records of, direct writes to a table's store, record batches
into the producer, the global table's changelog name). Each is wrapped here, and ``check()``
verifies before the worker starts that every one still exists in the installed versions: an
upgrade that renames one stops the worker with one line naming what is missing, instead of
silently falling back to slower or wrong behaviour.
``pyproject.toml`` pins both libraries to the minor versions these were read in.
"""

from __future__ import annotations

import inspect

from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Callable, Iterator

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher
from faust.stores import rocksdb as faust_rocksdb
from faust.tables.base import Collection
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka

TESTED = {"faust-streaming": "0.15", "aiokafka": "0.14"}


class InternalsMismatch(RuntimeError):
    """The installed faust-streaming or aiokafka lacks an internal the worker relies on."""


@dataclass(frozen=True)
class Internal:
    what: str  # what the worker uses it for
    present: Callable[[], bool]


def _assigned_in(func: Any, name: str) -> bool:
    """Whether ``func``'s code refers to attribute ``name`` (instance attributes set in __init__)."""
    return name in getattr(func, "__code__", None).co_names  # type: ignore[union-attr]  # no __code__: check() counts the error as missing


INTERNALS: tuple[Internal, ...] = (
    Internal("AIOKafkaConsumerThread._create_worker_consumer (fetch wait setting)",
             lambda: hasattr(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer")),
    Internal("AIOKafkaConsumerThread._highwaters (verified end offsets for recovery)",
             lambda: hasattr(faust_aiokafka.AIOKafkaConsumerThread, "_highwaters")),
    Internal("AIOKafkaConsumerThread.getmany(active_partitions, timeout) (fetch for a snapshot of them)",
             lambda: list(inspect.signature(faust_aiokafka.AIOKafkaConsumerThread.getmany).parameters)
             == ["self", "active_partitions", "timeout"]),
    Internal("AIOKafkaConsumerThread._consumer (the aiokafka consumer)",
             lambda: _assigned_in(faust_aiokafka.AIOKafkaConsumerThread.on_start, "_consumer")),
    Internal("AIOKafkaConsumer._fetch_max_wait_ms", lambda: _assigned_in(AIOKafkaConsumer.__init__, "_fetch_max_wait_ms")),
    Internal("AIOKafkaConsumer._fetcher", lambda: _assigned_in(AIOKafkaConsumer.__init__, "_fetcher")),
    Internal("Fetcher._prefetch_backoff", lambda: _assigned_in(Fetcher.__init__, "_prefetch_backoff")),
    Internal("rocksdb Store._db_for_partition", lambda: hasattr(faust_rocksdb.Store, "_db_for_partition")),
    Internal("rocksdb Store._visible_items", lambda: hasattr(faust_rocksdb.Store, "_visible_items")),
    Internal("rocksdb Store._key_index", lambda: _assigned_in(faust_rocksdb.Store.__init__, "_key_index")),
    Internal("faust aiokafka Producer._ensure_producer (record batches)",
             lambda: hasattr(faust_aiokafka.Producer, "_ensure_producer")),
    Internal("Collection._changelog_topic_name (global table on the configuration topic)",
             lambda: hasattr(Collection, "_changelog_topic_name")),
    Internal("Consumer._new_offset, _acked, _acked_index, _gap, _committed_offset (commit bookkeeping)",
             lambda: hasattr(FaustConsumer, "_new_offset") and all(
                 _assigned_in(FaustConsumer.__init__, name)
                 for name in ("_acked", "_acked_index", "_gap", "_committed_offset"))),
    Internal("Consumer.perform_seek (seek after assignment)", lambda: hasattr(FaustConsumer, "perform_seek")),
    Internal("Consumer._commit_offsets(offsets, start_new_transaction) (the commit after the flush)",
             lambda: "start_new_transaction" in inspect.signature(FaustConsumer._commit_offsets).parameters),
    Internal("TableManager.recovery.completed (readiness)",
             lambda: _assigned_in(Recovery.__init__, "completed")),
)


def check() -> None:
    """Raise InternalsMismatch naming every missing internal and the versions tested."""
    missing = []
    for internal in INTERNALS:
        try:
            ok = internal.present()
        except Exception:  # noqa: BLE001 - a changed shape counts as missing
            ok = False
        if not ok:
            missing.append(internal.what)
    if missing:
        installed = ", ".join(f"{name} {version(name)}" for name in TESTED)
        tested = ", ".join(f"{name} {v}.x" for name, v in TESTED.items())
        raise InternalsMismatch(
            f"installed {installed} lack internals the worker relies on ({'; '.join(missing)}); "
            f"tested with {tested}"
        )


# --- aiokafka consumer --------------------------------------------------------------------------

def set_fetch_max_wait(consumer: AIOKafkaConsumer, ms: int) -> None:
    """Faust hard-codes the fetch wait of its consumer; the worker makes it a setting."""
    consumer._fetch_max_wait_ms = ms


def thread_consumer(thread: faust_aiokafka.AIOKafkaConsumerThread) -> AIOKafkaConsumer | None:
    return getattr(thread, "_consumer", None)


def set_prefetch_backoff(consumer: AIOKafkaConsumer | None, seconds: float) -> None:
    """aiokafka's prefetch backoff (not a constructor argument) delays every hop under a trickle."""
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is not None:
        fetcher._prefetch_backoff = seconds


# --- Faust consumer bookkeeping ----------------------------------------------------------------

def merge_gaps_into_acked(consumer: FaustConsumer, tp: Any) -> None:
    """Faust's handling of offsets it saw skipped while fetching (compaction, transaction
    markers), as in its ``_new_offset``: they count as acknowledged up to the highest acked."""
    acked = consumer._acked[tp]
    gap_for_tp = consumer._gap[tp]
    if not acked or not gap_for_tp:
        return
    max_offset = max(acked)
    candidates = sorted(gap_for_tp.overlap(0, max_offset), key=lambda x: x.begin)
    if candidates:
        filled: list[int] = []
        for entry in candidates:
            filled.extend(range(entry.begin, entry.end))
        acked.extend(o for o in filled if o not in consumer._acked_index[tp])
        consumer._acked_index[tp].update(filled)
        gap_for_tp.chop(0, max(filled[-1], max_offset + 1))


# --- table stores -------------------------------------------------------------------------------

def _is_rocksdb(store: Any) -> bool:
    return isinstance(store, faust_rocksdb.Store)


def store_put(table: faust.Table, partition: int, key: bytes, value: bytes | None) -> None:
    """Write one record to a table's local store for an explicit partition (no current event)."""
    store: Any = table.data
    if _is_rocksdb(store):  # one database per partition, and an index of where keys live
        db = store._db_for_partition(partition)
        if value is None:
            db.delete(key)
            store._key_index.pop(key, None)
        else:
            db.put(key, value)
            store._key_index[key] = partition
    elif value is None:
        store.pop(key, None)
    else:
        store[key] = value


def stored_items(table: faust.Table, partition: int) -> Iterator[tuple[bytes, bytes]]:
    """Every record of one partition in a table's local store.

    Opens the partition's database if Faust has not (a global table's partition can be a
    standby whose database Faust opens only on its first write): a restarted worker whose
    configuration did not change since it stopped would otherwise see an empty store.
    """
    store: Any = table.data
    if _is_rocksdb(store):
        yield from store._visible_items(store._db_for_partition(partition))
    else:
        yield from store.items()


# --- producer -----------------------------------------------------------------------------------

def batching_producer(app: faust.App) -> Any:
    """The aiokafka producer under Faust's, for record batches; None when batches cannot be used."""
    producer: Any = app.producer
    ensure = getattr(producer, "_ensure_producer", None)  # Faust's aiokafka transport
    if ensure is None or app.in_transaction:
        return None
    return ensure()
