"""The worker's Faust tables.

Values are opaque bytes (orjson) written by the agents themselves: the hot path decides when a
record changed and writes it once per batch, instead of paying Faust's per-assignment changelog
path. Faust still owns what matters: changelog topics, recovery after a crash, standby
replicas, and routing a key to the worker that owns its partition.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, Iterator, NamedTuple, cast

import faust
import orjson
from faust.types import TP, EventT

from badges.config.settings import Settings
from badges.domain.issuance import newer_records
from badges.domain.progress import newer_of
from badges.kafka.offsets import is_learner_key

RAW: faust.Schema = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
# Tables take their serializers from key_type/value_type (not from the schema): both are given.

PROGRESS = "progress"
ISSUANCE = "issuance"
CONFIG = "config"


# Which write of a key a recovery keeps: (key, the stored value, the incoming one) -> the value kept.
Newer = Callable[[bytes, bytes, bytes], bytes]


class _Record(NamedTuple):
    """The fields of a changelog message that Faust's stores read."""

    tp: TP
    offset: int
    partition: int
    key: bytes
    value: bytes


class _KeptEvent:
    """A changelog event whose value the recovery replaced (by the stored one, or a merge)."""

    __slots__ = ("key", "message", "value")

    def __init__(self, message: Any, value: bytes) -> None:
        self.message = _Record(message.tp, message.offset, message.partition, message.key, value)
        self.key = message.key
        self.value = value


class NewerWinsTable(faust.Table):
    """A table whose recovery keeps, per key, the newer of the stored and the incoming write.

    A changelog is applied in order, last write wins. That is right for one writer, but a worker
    evicted from the group keeps producing until it notices (Kafka fences an evicted member's
    offset commits, not its writes, and the embedded broker fences neither): its writes of
    records the new owner has moved on from land after the new owner's and would win the next
    recovery (a restart, a rebalance, a standby). ``newer`` compares the two writes by what they
    record (the envelope offset of a progress record, the applied version of an issuance record)
    and the recovery keeps that one. Live writes go to the store directly (``tables/writer.py``)
    and are not affected.
    """

    def __init__(self, app: faust.App, *, newer: Newer, **kwargs: Any) -> None:
        self._newer = newer
        super().__init__(app, **kwargs)

    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        super().apply_changelog_batch(list(self._kept(batch)))  # type: ignore[arg-type]  # _KeptEvent has what the stores read

    def _kept(self, batch: Iterable[EventT]) -> Iterator[EventT | _KeptEvent]:
        latest: dict[bytes, bytes | None] = {}  # the batch's own earlier writes come first
        get = self.data.get
        for event in batch:
            message = event.message
            key, value = message.key, message.value
            if key is None:  # not a table's write: the store refuses it as it would
                yield event
                continue
            current = latest[key] if key in latest else get(key)
            if value is None or current is None:  # a deletion, or the key's first write
                latest[key] = value
                yield event
                continue
            latest[key] = kept = self._newer(key, current, value)
            yield event if kept is value else _KeptEvent(message, kept)


def newer_progress(key: bytes, current: bytes, incoming: bytes) -> bytes:
    """A learner's record by its envelope offset; a partition's applied offset is the higher one."""
    if not is_learner_key(key):
        return current if int(current) > int(incoming) else incoming
    kept = orjson.loads(current)
    return current if newer_of(kept, orjson.loads(incoming)) is kept else incoming


def newer_issuance(key: bytes, current: bytes, incoming: bytes) -> bytes:
    """A learner's issuance records, template by template, by applied version."""
    old, new = orjson.loads(current), orjson.loads(incoming)
    merged = newer_records(old, new)
    if merged == new:
        return incoming
    return current if merged == old else orjson.dumps(merged)


def _table(app: faust.App, name: str, settings: Settings, newer: Newer, help: str) -> faust.Table:
    table = NewerWinsTable(
        app, name=name, newer=newer, schema=RAW, key_type=bytes, value_type=bytes, partitions=settings.partitions,
        beacon=app.tables.beacon, help=help, default=None,
    )
    return cast(faust.Table, app.tables.add(table))  # what app.Table() does, with the subclass


def progress_table(app: faust.App, settings: Settings) -> faust.Table:
    """Per learner: identity, fulfilled requirements (and by which event), resets, badges decided."""
    return _table(app, PROGRESS, settings, newer_progress, "learner progress")


def issuance_table(app: faust.App, settings: Settings) -> faust.Table:
    """Per learner: what Credly did with each decided badge (id, state, attempts, errors)."""
    return _table(app, ISSUANCE, settings, newer_issuance, "Credly issuance")


class ConfigTable(faust.GlobalTable):
    """A GlobalTable whose changelog is the configuration topic itself.

    Faust's partition assignor derives a global table's changelog name from the table name
    (``{app_id}-{name}-changelog``) even when ``changelog_topic`` is given, and the assignment
    then fails on the unknown topic; this table reports its real changelog topic instead.
    """

    def _changelog_topic_name(self) -> str:
        return self.changelog_topic.get_topic_name()


def config_table(
    app: faust.App, settings: Settings, on_change: Callable[[Any], Awaitable[None]]
) -> ConfigTable:
    """The whole configuration on every worker; its changelog *is* the configuration topic."""
    topic = app.topic(
        settings.config_topic,
        schema=RAW,
        partitions=1,
        compacting=True,
        deleting=False,
    )
    # What app.GlobalTable() does, with our subclass.
    table = ConfigTable(
        app,
        name=CONFIG,
        beacon=app.tables.beacon,
        schema=RAW,
        key_type=bytes,
        value_type=bytes,
        partitions=1,
        changelog_topic=topic,
        on_changelog_event=on_change,
        standby_buffer_size=1,
        is_global=True,
        # keeps every partition a standby after recovery as well, so that changes published
        # while the worker runs keep arriving (without it Faust only reads the topic at start)
        synchronize_all_active_partitions=True,
        help="configuration entities",
        default=None,
    )
    return app.tables.add(table)  # type: ignore[return-value]  # add returns the ConfigTable it is given
