"""Baselines measured in the same run, on the same topic, as separate processes (uvloop, like
the worker):

- ``raw``: an aiokafka consumer configured exactly as the ingestion service
  (``badges.agents.kafka_ingest.consumer_options``) that reads every message and does nothing with
  it: the ceiling of the Kafka client.
- ``faust``: a plain Faust agent that updates a table entry per message (``table[key] += 1``,
  memory store, the worker's broker timeouts and fetch wait): the ceiling of Faust's
  per-message path.

Both read the workers' settings from the ``BADGES_*`` environment the harness gives them.

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

    from badges.agents.kafka_ingest import consumer_options

    settings = worker_settings(args)
    series = Series(args.expect, Path(args.out))
    # exactly the ingestion consumer's configuration, in a group of its own
    options = {**consumer_options(settings), "group_id": f"bench-raw-{time.time_ns()}", "client_id": "bench-raw"}
    consumer = AIOKafkaConsumer(args.topic, **options)
    await consumer.start()
    try:
        while not series.done:
            batch = await consumer.getmany(timeout_ms=1000, max_records=settings.ingest_batch_max)
            for messages in batch.values():
                series.add(len(messages))
    finally:
        await consumer.stop()


def worker_settings(args: argparse.Namespace) -> Any:
    """The workers' settings: the harness runs a baseline with the workers' BADGES_* environment."""
    from badges.config.settings import load_settings

    return load_settings(kafka_bootstrap_servers=args.bootstrap)


def faust_agent(args: argparse.Namespace) -> None:
    import faust

    from badges.workers.app import BadgesApp

    settings = worker_settings(args)
    app = BadgesApp(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        datadir=str(Path(args.out).parent / f"{args.app_id}-data"),  # not the working directory
        autodiscover=False,
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        broker_rebalance_timeout=settings.broker_rebalance_timeout_s,
        broker_commit_interval=1.0,
        producer_acks=-1,
        stream_recovery_delay=settings.recovery_delay_s,
        web_enabled=False,
        logging_config=None,
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    app.kafka = settings.kafka
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
