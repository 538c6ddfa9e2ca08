"""Walking an Avro record schema into its key paths (the data-rule vocabulary, docs/CONTRACT.md "Key paths")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCALARS = {"boolean", "int", "long", "float", "double", "string", "bytes"}
USER_RECORD = "UserData"


@dataclass
class Leaves:
    # (path, avro scalar type); path includes the signal data field as its first element
    scalars: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    # (path, "UserData") of every UserData record, in schema order
    user_records: list[tuple[tuple[str, ...], str]] = field(default_factory=list)


def schema_leaves(schema: dict[str, Any]) -> Leaves:
    """Every scalar leaf and every UserData record of a CloudEvent schema, in schema order.

    Named types are defined once and referenced by name afterwards, so definitions are
    remembered while walking.
    """
    named: dict[str, dict[str, Any]] = {}
    leaves = Leaves()

    def walk(avro_type: Any, path: tuple[str, ...]) -> None:
        if isinstance(avro_type, list):  # union: ["null", T] for optional fields
            for member in avro_type:
                if member != "null":
                    walk(member, path)
            return
        if isinstance(avro_type, str):
            if avro_type in SCALARS:
                leaves.scalars.append((path, avro_type))
            elif avro_type in named:
                walk(named[avro_type], path)
            return
        kind = avro_type.get("type")
        if kind == "record":
            name = avro_type["name"]
            named.setdefault(name, avro_type)
            if name == USER_RECORD:
                leaves.user_records.append((path, name))
            for fld in avro_type["fields"]:
                walk(fld["type"], path + (fld["name"],))
        elif kind in SCALARS:
            leaves.scalars.append((path, kind))
        # arrays, maps and enums are not addressable by a dotted key path

    for fld in schema["fields"]:
        walk(fld["type"], (fld["name"],))
    return leaves
