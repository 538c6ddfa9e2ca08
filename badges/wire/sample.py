"""Building a valid event record from the reader schema alone, for `badges dev send-sample`.

Every field gets a neutral value of its Avro type (optional fields null), then the learner and
the given rule-path values are filled in. Tests and benchmarks use the openedx-events package
itself instead; the worker must not depend on it.
"""

from __future__ import annotations

from typing import Any

from badges.domain.events import Learner
from badges.schemas.catalog import EventSpec

_DEFAULTS = {"boolean": False, "int": 0, "long": 0, "float": 0.0, "double": 0.0, "string": "", "bytes": b""}


def _default(avro_type: Any, named: dict[str, Any]) -> Any:
    if isinstance(avro_type, list):
        return None if "null" in avro_type else _default(avro_type[0], named)
    if isinstance(avro_type, str):
        if avro_type in _DEFAULTS:
            return _DEFAULTS[avro_type]
        return _default(named[avro_type], named)
    kind = avro_type["type"]
    if kind == "record":
        named.setdefault(avro_type["name"], avro_type)
        return {f["name"]: _default(f["type"], named) for f in avro_type["fields"]}
    if kind == "array":
        return []
    if kind == "map":
        return {}
    if kind == "enum":
        return avro_type["symbols"][0]
    return _default(kind, named)


def _set(record: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = record
    for part in path[:-1]:
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


def sample_record(spec: EventSpec, learner: Learner, values: dict[str, Any]) -> dict[str, Any]:
    named: dict[str, Any] = {}
    record: dict[str, Any] = {f["name"]: _default(f["type"], named) for f in spec.schema["fields"]}
    if spec.user_path is not None:
        _set(record, spec.user_path, {
            "id": learner.id, "is_active": True,
            "pii": {"username": learner.username, "email": learner.email, "name": learner.name},
        })
    root = (spec.single_field,) if spec.single_field else ()
    for key_path, value in values.items():
        if key_path not in spec.key_paths:
            raise ValueError(f"{spec.event_type} has no field {key_path!r}")
        _set(record, root + tuple(key_path.split(".")), value)
    return record
