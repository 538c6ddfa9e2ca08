"""The compiled-configuration cache: every worker's live view of the configuration topic,
compiled for the hot path.

The configuration GlobalTable reads ``{app_id}-config`` on every worker. The view is rebuilt
from the table's *store* each time Faust finishes a recovery (``reload``), and kept current
between recoveries by the records Faust hands to ``on_changelog_event`` (which it calls for each
record before the record reaches the store). Both halves are needed: with the rocksdb store a
restarted worker resumes the topic from its local offset, so the callbacks alone would only ever
see what changed while it was down, and a worker restarted into an unchanged configuration would
see nothing at all.

Until the first reload the view is not ``loaded``: ingestion waits for it (``wait_loaded``) so
that no event is routed, skipped or committed against an empty configuration. The agents ask
for ``compiled()`` once per batch and pay for a compile only after a change.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable

from badges import metrics
from badges.config.entities import ConfigSnapshot, decode_entity
from badges.domain.index import compile_config
from badges.domain.model import CompiledConfig
from badges.schemas.catalog import Catalog

log = logging.getLogger(__name__)


class CompiledConfigCache:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._raw: dict[bytes, bytes] = {}
        self.generation = 0
        self._compiled_generation = -1
        self._compiled: CompiledConfig | None = None
        self._snapshot: ConfigSnapshot | None = None
        self._loaded = asyncio.Event()

    @property
    def loaded(self) -> bool:
        """Whether the whole configuration topic has been read at least once."""
        return self._loaded.is_set()

    async def wait_loaded(self) -> None:
        await self._loaded.wait()

    async def on_changelog_event(self, event: Any) -> None:
        self.apply(event.message.key, event.message.value)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            self._raw.pop(key, None)
        else:
            self._raw[key] = value
        self.generation += 1

    def reload(self, records: Iterable[tuple[bytes, bytes]]) -> None:
        """Replace the view with the table's stored records (every record of a recovered topic)."""
        self._raw = {key: value for key, value in records if key is not None and value is not None}
        self.generation += 1
        first = not self._loaded.is_set()
        self._loaded.set()
        snapshot = self.snapshot()  # compile now: a broken record is logged at start, not later
        if first:
            log.info("configuration loaded: %d organizations, %d templates (%d active)",
                     len(snapshot.organizations), len(snapshot.templates),
                     sum(1 for t in snapshot.templates.values() if t.is_active))

    def snapshot(self) -> ConfigSnapshot:
        self._refresh()
        assert self._snapshot is not None
        return self._snapshot

    def compiled(self) -> CompiledConfig:
        self._refresh()
        assert self._compiled is not None
        return self._compiled

    def _refresh(self) -> None:
        if self._compiled_generation == self.generation:
            return
        generation = self.generation
        entities = []
        for key, value in self._raw.items():
            try:
                entity = decode_entity(key, value)
            except Exception as exc:  # noqa: BLE001 - a bad record must not stop the worker
                log.error("ignoring invalid configuration record %r: %s", key, exc)
                continue
            if entity is not None:
                entities.append(entity)
        self._snapshot = ConfigSnapshot.from_entities(entities)
        self._compiled = compile_config(self._snapshot, self._catalog)
        self._compiled_generation = generation
        metrics.CONFIG_VERSION.set(generation)
        metrics.ACTIVE_TEMPLATES.set(sum(1 for t in self._snapshot.templates.values() if t.is_active))
        log.info("configuration generation %d: %d templates", generation, len(self._snapshot.templates))
