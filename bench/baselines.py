"""Baselines measured in the same run, on the same topic, as separate processes (uvloop, like
the worker):

- ``raw``: an aiokafka consumer with the ingestion service's settings that reads every message
  and does nothing with it: the ceiling of the Kafka client.
- ``faust``: a plain Faust agent that updates a table entry per message (``table[key] += 1``,
  memory store, the worker's short broker timeouts and fetch wait): the ceiling of Faust's
  per-message path.

    python -m bench.baselines raw|faust --bootstrap H:P --topic T --expect N --out FILE [...]

Each writes ``{"series": [[wall time, messages so far], ...]}`` to FILE once it has seen N
messages; rates are computed by the caller over the same window as the worker's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class Series:
    """(wall time, count) samples at most every ``every`` messages; written out when done."""

    def __init__(self, expect: int, out: Path, every: int = 0) -> None:
        self.expect, self.out = expect, out
        self.every = every or max(1, expect // 200)
        self.count = 0
        self.next_mark = 0
        self.points: list[tuple[float, int]] = []
        self.done = False

    def add(self, n: int) -> None:
        self.count += n
        if self.count >= self.next_mark:
            self.points.append((time.time(), self.count))
            self.next_mark = self.count + self.every
        if self.count >= self.expect and not self.done:
            self.done = True
            if self.points[-1][1] != self.count:
                self.points.append((time.time(), self.count))
            tmp = self.out.with_suffix(".tmp")
            tmp.write_text(json.dumps({"series": self.points, "count": self.count}))
            tmp.replace(self.out)


async def raw_consumer(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer

    series = Series(args.expect, Path(args.out))
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=f"bench-raw-{time.time_ns()}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=args.fetch_max_wait_ms,
        max_poll_records=args.batch,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        session_timeout_ms=3000,
        heartbeat_interval_ms=1000,
        rebalance_timeout_ms=3000,
    )
    await consumer.start()
    try:
        while not series.done:
            batch = await consumer.getmany(timeout_ms=1000, max_records=args.batch)
            for messages in batch.values():
                series.add(len(messages))
    finally:
        await consumer.stop()


def faust_agent(args: argparse.Namespace) -> None:
    import faust

    from badges.workers.app import BadgesApp

    app = BadgesApp(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        autodiscover=False,
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=3.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=3.0,
        broker_commit_interval=1.0,
        producer_acks=-1,
        stream_recovery_delay=0.2,
        web_enabled=False,
        logging_config=None,
    )
    app.fetch_max_wait_ms = args.fetch_max_wait_ms
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=args.partitions)
    schema = faust.Schema(key_type=bytes, value_type=int, key_serializer="raw", value_serializer="json")
    table = app.Table("counts", default=int, partitions=args.partitions, schema=schema,
                      key_type=bytes, value_type=int)
    series = Series(args.expect, Path(args.out))

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for key, _value in stream.items():
            table[key] += 1
            series.add(1)

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.execute_from_commandline()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["raw", "faust"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--app-id", default=f"bench-faust-{time.time_ns()}")
    parser.add_argument("--fetch-max-wait-ms", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.kind == "raw":
        asyncio.run(raw_consumer(args))
    else:
        faust_agent(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
