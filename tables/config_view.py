"""Every worker's live view of the configuration topic, compiled for the hot path.

The configuration GlobalTable reads ``{app_id}-config`` on every worker. Faust calls
``on_changelog_event`` for each record *before* it reaches the table's store, so the view keeps
its own entity map from those records and recompiles lazily: the agents ask for ``compiled()``
once per batch and pay for a compile only after a change.
"""

from __future__ import annotations

import logging
from typing import Any

from badges import metrics
from badges.config.entities import ConfigSnapshot, decode_entity
from badges.domain.index import compile_config
from badges.domain.model import CompiledConfig
from badges.schemas.catalog import Catalog

log = logging.getLogger(__name__)


class ConfigView:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._raw: dict[bytes, bytes] = {}
        self.generation = 0
        self._compiled_generation = -1
        self._compiled: CompiledConfig | None = None
        self._snapshot: ConfigSnapshot | None = None

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
            except Exception as exc:  # a bad record must not stop the worker
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
