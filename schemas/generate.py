"""Regenerate the committed Avro reader schemas from the installed ``openedx-events`` package.

    python -m badges.schemas.generate            # writes schemas/avro/*.avsc and catalog.json
    python -m badges.schemas.generate --check    # exits 1 when the committed files differ

Needs the test extra (openedx-events); the worker itself reads only the committed files, so it
never imports Django-side code at run time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from badges.schemas.paths import schema_leaves

HERE = Path(__file__).resolve().parent
AVRO_DIR = HERE / "avro"
CATALOG = HERE / "catalog.json"

# Events we emit ourselves (docs/CONTRACT.md "Lifecycle events"). They are decoded (to recognise them on the shared
# lifecycle topic) but never drive requirements, so a worker cannot feed on its own output.
OWN_OUTPUT = ("org.openedx.learning.badge.awarded.v1", "org.openedx.learning.badge.revoked.v1")


def _signals() -> list[Any]:
    from openedx_events.learning import signals
    from openedx_events.tooling import OpenEdxPublicSignal

    found = [v for v in vars(signals).values() if isinstance(v, OpenEdxPublicSignal)]
    return sorted(found, key=lambda s: s.event_type)


def generate() -> tuple[dict[str, str], str]:
    """Return {file name: schema text} and the catalog text."""
    from openedx_events.event_bus.avro.serializer import AvroSignalSerializer

    files: dict[str, str] = {}
    events: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for signal in _signals():
        try:
            schema = AvroSignalSerializer(signal).schema
        except Exception as exc:  # noqa: BLE001 - the package cannot express some payloads in Avro
            skipped[signal.event_type] = str(exc)
            continue
        name = f"{signal.event_type}.avsc"
        files[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        leaves = schema_leaves(schema)
        user = [list(p) for p, t in leaves.user_records]
        events[signal.event_type] = {
            "schema": name,
            "data_fields": [f["name"] for f in schema["fields"]],
            "key_paths": {".".join(p): t for p, t in leaves.scalars},
            "user_path": _user_path(user),
            "own_output": signal.event_type in OWN_OUTPUT,
        }
    catalog = {
        "generated_by": "python -m badges.schemas.generate",
        "openedx_events_version": _version(),
        "events": events,
        "not_expressible_in_avro": skipped,
    }
    return files, json.dumps(catalog, indent=2, sort_keys=True) + "\n"


def _user_path(user_records: list[list[str]]) -> list[str] | None:
    """docs/CONTRACT.md "Learner identity": the top-level ``user`` field where there is one, else the first UserData."""
    for path in user_records:
        if len(path) == 2 and path[1] == "user":
            return path
    return user_records[0] if user_records else None


def _version() -> str:
    from importlib.metadata import version

    return version("openedx-events")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    files, catalog = generate()
    if args.check:
        stale = [n for n, text in files.items() if not (AVRO_DIR / n).exists() or (AVRO_DIR / n).read_text() != text]
        committed = {p.name for p in AVRO_DIR.glob("*.avsc")}
        stale += sorted(committed - set(files))
        if CATALOG.read_text() != catalog:
            stale.append(CATALOG.name)
        for name in stale:
            print(f"stale: {name}", file=sys.stderr)
        return 1 if stale else 0
    AVRO_DIR.mkdir(exist_ok=True)
    for old in AVRO_DIR.glob("*.avsc"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (AVRO_DIR / name).write_text(text)
    CATALOG.write_text(catalog)
    print(f"wrote {len(files)} schemas and {CATALOG.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
