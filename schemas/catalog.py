"""The supported openedx-events: reader schema, rule key paths and where the learner is.

Loaded from the committed ``avro/*.avsc`` and ``catalog.json`` (package data), which
``python -m badges.schemas.generate`` produces from the openedx-events package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from typing import Any

import fastavro


@dataclass(frozen=True)
class EventSpec:
    event_type: str
    schema: dict[str, Any] = field(repr=False)
    data_fields: tuple[str, ...]
    # Rule key path (docs/CONTRACT.md "Key paths") -> Avro type.
    key_paths: dict[str, str] = field(repr=False)
    # Path of the learner's UserData from the record root, None when the event has none.
    user_path: tuple[str, ...] | None
    own_output: bool

    @cached_property
    def parsed_schema(self) -> Any:
        return fastavro.parse_schema(self.schema)

    @property
    def single_field(self) -> str | None:
        return self.data_fields[0] if len(self.data_fields) == 1 else None

    @property
    def can_drive_requirements(self) -> bool:
        """Events that may be named by requirements and penalties."""
        return self.user_path is not None and not self.own_output

    def rule_root(self, record: dict[str, Any]) -> dict[str, Any]:
        """The part of a decoded record that rule key paths are relative to."""
        single = self.single_field
        return record[single] if single is not None else record

    def is_boolean(self, key_path: str) -> bool:
        return self.key_paths.get(key_path) == "boolean"


class Catalog:
    def __init__(self, specs: dict[str, EventSpec], openedx_events_version: str) -> None:
        self._specs = specs
        self.openedx_events_version = openedx_events_version

    def get(self, event_type: str) -> EventSpec | None:
        return self._specs.get(event_type)

    def __getitem__(self, event_type: str) -> EventSpec:
        return self._specs[event_type]

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._specs

    def __iter__(self):
        return iter(self._specs.values())

    @property
    def event_types(self) -> list[str]:
        return sorted(self._specs)

    @property
    def rule_event_types(self) -> list[str]:
        return sorted(t for t, s in self._specs.items() if s.can_drive_requirements)


def _rule_paths(data_fields: list[str], full_paths: dict[str, str]) -> dict[str, str]:
    if len(data_fields) != 1:
        return dict(full_paths)
    prefix = data_fields[0] + "."
    return {p[len(prefix):]: t for p, t in full_paths.items() if p.startswith(prefix)}


@cache
def load_catalog() -> Catalog:
    root = resources.files("badges.schemas")
    raw = json.loads((root / "catalog.json").read_text())
    specs: dict[str, EventSpec] = {}
    for event_type, entry in raw["events"].items():
        schema = json.loads((root / "avro" / entry["schema"]).read_text())
        specs[event_type] = EventSpec(
            event_type=event_type,
            schema=schema,
            data_fields=tuple(entry["data_fields"]),
            key_paths=_rule_paths(entry["data_fields"], entry["key_paths"]),
            user_path=tuple(entry["user_path"]) if entry["user_path"] else None,
            own_output=bool(entry["own_output"]),
        )
    return Catalog(specs, raw["openedx_events_version"])
