"""Writing table records for an explicit partition, batched, outside Faust's per-key path.

Faust's ``table[key] = value`` needs the current stream event and sends each assignment through
a slow buffered path (measured ~175 µs/record here against ~17 µs for a direct producer send).
Agents that process a batch write each changed record once, straight to the local store and
to the changelog topic with the table's partition; Faust flushes the producer before it commits
consumed offsets, so a record is durable before the event that produced it is committed.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP


class TableWriter:
    def __init__(self, app: faust.App, table: faust.Table) -> None:
        self._app = app
        self._table = table
        self._changelog = table.changelog_topic.get_topic_name()

    def _store_put(self, partition: int, key: bytes, value: bytes | None) -> None:
        store: Any = self._table.data
        if hasattr(store, "_db_for_partition"):  # rocksdb: one database per partition
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

    async def put(self, partition: int, key: bytes, value: bytes | None) -> Any:
        """Store locally and send to the changelog; returns the send future."""
        self._store_put(partition, key, value)
        fut = await self._app.producer.send(self._changelog, key, value, partition, None, None)
        store: Any = self._table.data
        if hasattr(store, "set_persisted_offset"):
            tp = TP(self._changelog, partition)
            fut.add_done_callback(lambda f: f.exception() or store.set_persisted_offset(tp, f.result().offset))
        return fut

    def get(self, key: bytes) -> bytes | None:
        return self._table.data.get(key)  # type: ignore[no-any-return]
