"""Hand-written schema registry client vs confluent_kafka.schema_registry on the worker's path.

    python -m bench.registry_client

Both clients talk to the test registry (Confluent REST, basic auth with a Confluent-Cloud-like
secret); measured: the cached lookup by schema id (what the decoder asks per new id), the first
fetch, and the decoder's per-batch prefetch (which never reaches the client once an id is known).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from confluent_kafka.schema_registry import AsyncSchemaRegistryClient

from badges.schemas.catalog import load_catalog
from badges.wire.decode import KafkaDecoder
from badges.wire.framing import frame
from badges.wire.registry import SchemaRegistry
from tests.support.openedx import COURSE_PASSING
from tests.support.registry import StandInRegistry

USER, SECRET = "ABCDEFGHIJKLMNOP", "s3/cr+et:@%25x"
LOOKUPS = 200_000


async def _per_call_ns(call: Callable[[], Awaitable[Any]], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - started) / n * 1e9


async def main() -> None:
    catalog = load_catalog()
    with StandInRegistry(credentials=(USER, SECRET)) as registry:
        sid = registry.register("bench-value", catalog[COURSE_PASSING].schema)
        clients: dict[str, Callable[[], Any]] = {
            "hand-written": lambda: SchemaRegistry(registry.url, username=USER, password=SECRET),
            "confluent_kafka": lambda: AsyncSchemaRegistryClient(
                {"url": registry.url, "basic.auth.user.info": f"{USER}:{SECRET}"}),
        }
        for name, make in clients.items():
            client = make()
            started = time.perf_counter()
            await client.get_schema(sid)
            first_ms = (time.perf_counter() - started) * 1e3
            cached = await _per_call_ns(lambda: client.get_schema(sid), LOOKUPS)
            print(f"{name:16} first fetch {first_ms:5.1f} ms   cached lookup {cached:5.0f} ns/call")
        decoder = KafkaDecoder(catalog, registry=clients["hand-written"]())
        batch = [frame(sid, b"\x00" * 50)] * 2000
        await decoder.prefetch(batch)
        per_batch = await _per_call_ns(lambda: decoder.prefetch(batch), 200)
        print(f"decoder prefetch of a 2,000-message batch, ids known: {per_batch / 1e3:.0f} µs (no client call)")


if __name__ == "__main__":
    asyncio.run(main())
