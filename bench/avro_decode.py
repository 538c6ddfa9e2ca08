"""Avro decode throughput: the Apache ``avro`` package vs ``fastavro``, and KafkaDecoder end to end.

    python -m bench.avro_decode [--seconds 0.2] [--repeat 3] [--type EVENT_TYPE ...]

Payloads are realistic messages of every supported event type, built with openedx-events by
tests/support/openedx.py (needs the test or bench extra). Columns, in µs per event (best of
``--repeat`` runs of about ``--seconds`` each):

- ``avro``: ``avro.io.DatumReader.read`` on the Avro body (schema parsed once);
- ``fastavro``: ``fastavro.schemaless_reader`` on the same body (schema parsed once);
- ``decode``: ``KafkaDecoder.decode`` on the whole message (headers, framing, Avro, learner);
- ``decode+resolve``: the same with a schema registry and a newer writer schema (one extra
  optional field) resolved against the reader schema.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import io
import json
import math
import sys
import timeit
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import avro.io
import avro.schema
import fastavro

from badges.schemas.catalog import load_catalog
from badges.wire.decode import KafkaDecoder
from badges.wire.framing import frame
from badges.wire.registry import SchemaRegistry, value_subject
from tests.support import openedx
from tests.support.registry import StandInRegistry

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def per_event_us(fn: Callable[[], Any], seconds: float, repeat: int) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()  # >= 0.2 s worth
    number = max(1, int(number * seconds / 0.2))
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def newer_writer(schema: dict[str, Any]) -> dict[str, Any]:
    newer = copy.deepcopy(schema)
    newer["fields"][0]["type"]["fields"].insert(1, {"name": "extra_note", "type": ["null", "string"], "default": None})
    return newer


async def resolving_decoder(registry_url: str, writer_ids: list[int]) -> KafkaDecoder:
    client = SchemaRegistry(registry_url)
    decoder = KafkaDecoder(load_catalog(), client)
    await decoder.prefetch(writer_ids)
    await client.close()  # every writer schema is cached in the decoder now
    return decoder


def run(seconds: float, repeat: int, only: list[str]) -> list[dict[str, Any]]:
    catalog = load_catalog()
    types = only or catalog.rule_event_types
    plain = KafkaDecoder(catalog)
    rows: list[dict[str, Any]] = []
    with StandInRegistry() as registry:
        prepared = []
        for event_type in types:
            spec = catalog[event_type]
            msg = openedx.kafka_message(event_type, time=WHEN, user_id=123456, username="ada", name="Ada Lovelace")
            body = msg.value[5:]
            record = openedx.avro_record(event_type, user_id=123456, username="ada", name="Ada Lovelace")
            writer = newer_writer(spec.schema)
            record_newer = copy.deepcopy(record)
            record_newer[spec.data_fields[0]]["extra_note"] = "from a newer producer"
            out = io.BytesIO()
            fastavro.schemaless_writer(out, fastavro.parse_schema(writer), record_newer)
            wid = registry.register(value_subject("bench", event_type), writer)
            prepared.append((event_type, spec, msg, body, record, frame(wid, out.getvalue()), wid))
        resolving = asyncio.run(resolving_decoder(registry.url, [p[6] for p in prepared]))

    for event_type, spec, msg, body, record, newer_value, _ in prepared:
        reader = avro.io.DatumReader(avro.schema.parse(json.dumps(spec.schema)))
        parsed = spec.parsed_schema
        headers, value = msg.headers, msg.value

        def apache() -> Any:
            return reader.read(avro.io.BinaryDecoder(io.BytesIO(body)))

        def fast() -> Any:
            return fastavro.schemaless_reader(io.BytesIO(body), parsed)

        def decode() -> Any:
            return plain.decode(headers, value, "bench/0/0", 1)

        def decode_resolve() -> Any:
            return resolving.decode(headers, newer_value, "bench/0/0", 1)

        assert apache() == fast() == record, event_type
        assert decode().payload == spec.rule_root(record)
        assert decode_resolve().payload == spec.rule_root(record)
        rows.append(
            {
                "event_type": event_type,
                "bytes": len(body),
                "avro": per_event_us(apache, seconds, repeat),
                "fastavro": per_event_us(fast, seconds, repeat),
                "decode": per_event_us(decode, seconds, repeat),
                "decode+resolve": per_event_us(decode_resolve, seconds, repeat),
            }
        )
    return rows


def short(event_type: str) -> str:
    return event_type.removeprefix("org.openedx.learning.")


def report(rows: list[dict[str, Any]]) -> str:
    cols = ["avro", "fastavro", "decode", "decode+resolve"]
    width = max(len(short(r["event_type"])) for r in rows)
    lines = [
        "µs/event (events/s) — best of repeats; avro/fastavro = Avro body only, decode = whole message",
        f"{'event type':<{width}}  {'bytes':>5}  " + "  ".join(f"{c:>19}" for c in cols) + "  fastavro speed-up",
    ]
    for r in rows:
        cells = "  ".join(f"{r[c]:>7.2f} ({1e6 / r[c]:>9,.0f})" for c in cols)
        lines.append(f"{short(r['event_type']):<{width}}  {r['bytes']:>5}  {cells}  {r['avro'] / r['fastavro']:>6.1f}x")
    geo = {c: math.exp(sum(math.log(r[c]) for r in rows) / len(rows)) for c in cols}
    cells = "  ".join(f"{geo[c]:>7.2f} ({1e6 / geo[c]:>9,.0f})" for c in cols)
    lines.append(f"{'geometric mean':<{width}}  {'':>5}  {cells}  {geo['avro'] / geo['fastavro']:>6.1f}x")
    winner = "fastavro" if geo["fastavro"] < geo["avro"] else "avro"
    lines.append(
        f"winner: {winner} ({max(geo['avro'], geo['fastavro']) / min(geo['avro'], geo['fastavro']):.1f}x faster "
        f"on the geometric mean); KafkaDecoder.decode ≈ {1e6 / geo['decode']:,.0f} events/s on one core"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.2, help="time per measurement run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--type", action="append", default=[], help="only this event type (repeatable)")
    args = parser.parse_args(argv)
    print(report(run(args.seconds, args.repeat, args.type)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
