"""The Faust app of a badges worker, built from the settings.

`build_app` is the one place where topics, tables and agents are wired together; everything it
wires lives in `agents/` and `tables/`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from badges.config.settings import Settings
from badges.kafka.end_offsets import verified_end_offsets
from badges.logs import logging_config
from badges.schemas.catalog import Catalog, load_catalog
from badges.tables import definitions
from badges.tables.config_view import ConfigView

log = logging.getLogger(__name__)

PREFETCH_BACKOFF_S = 0.005


class _TunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Three corrections to Faust's group consumer.

    Faust hard-codes ``fetch_max_wait_ms=1500``; while a partition is idle the fetch wait is the
    latency of every hop (BROKER.md), so the worker makes it a setting
    (``BADGES_FETCH_MAX_WAIT_MS``). Table recovery stops at the end offset the broker
    reports, which must be right (see ``badges.kafka.end_offsets``). And aiokafka's prefetch
    backoff would hold every fetch for up to 100 ms (``on_start``).
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 1500)
        self._bootstrap = faust_aiokafka.server_list(transport.url, transport.default_port)
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        # aiokafka sends no fetch to a broker while a partition holds fetched records younger
        # than ``prefetch_backoff`` (100 ms, not a constructor argument) that the application
        # has not taken yet; Faust's thread takes them only when its loop asks for the next
        # batch, so under a trickle of events each hop waited up to that long (end-to-end p99
        # at 250 events/s: 215 ms with 100 ms, 52 ms with 5 ms; bench/NOTES.md).
        fetcher = getattr(self._consumer, "_fetcher", None)
        if fetcher is not None:
            fetcher._prefetch_backoff = PREFETCH_BACKOFF_S

    async def _highwaters(self, partitions: Any) -> Any:
        reported = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return reported
        return await verified_end_offsets(self._bootstrap, reported)


class _TunedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _TunedTransport(faust_aiokafka.Transport):
    Consumer = _TunedConsumer


class BadgesApp(faust.App):
    runtime: "Runtime"
    fetch_max_wait_ms: int = 1500

    def _new_transport(self) -> Any:
        return _TunedTransport(self.conf.broker_consumer, self)


@dataclass
class Runtime:
    """What the agents share: settings, catalog, topics, tables and the configuration view."""

    settings: Settings
    app: BadgesApp
    catalog: Catalog
    config: ConfigView
    topics: dict[str, faust.TopicT] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)


def faust_settings(settings: Settings) -> dict[str, Any]:
    web_url = settings.web_url
    return dict(
        broker=settings.kafka_url,
        store="rocksdb://" if settings.store == "rocksdb" else "memory://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.topic_replication_factor,
        consumer_auto_offset_reset="earliest",  # SPEC §7: new groups start from the beginning
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        broker_rebalance_timeout=settings.broker_rebalance_timeout_s,
        broker_request_timeout=max(90.0, settings.broker_session_timeout_s + 5),
        broker_commit_interval=1.0,
        producer_acks=-1,
        # dead letters carry the original value, which may be larger than the default 1 MB
        producer_max_request_size=16 * 1024 * 1024,
        stream_recovery_delay=settings.recovery_delay_s,
        table_cleanup_interval=60.0,
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_host=web_url.split("://", 1)[1].rsplit(":", 1)[0],
        canonical_url=web_url,
        # ours instead of Faust's own (BADGES_LOG_FORMAT): one format for every line
        logging_config=logging_config(settings.log_level, settings.log_format),
    )


def build_app(settings: Settings) -> BadgesApp:
    from badges.agents import ingest, progress, sink
    from badges.web import routes

    app = BadgesApp(settings.app_id, **faust_settings(settings))
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    catalog = load_catalog()
    view = ConfigView(catalog)
    runtime = Runtime(settings=settings, app=app, catalog=catalog, config=view)
    app.runtime = runtime

    raw = definitions.RAW
    p = settings.partitions
    runtime.topics["learner_events"] = app.topic(settings.learner_events_topic, schema=raw, partitions=p)
    runtime.topics["decisions"] = app.topic(settings.decisions_topic, schema=raw, partitions=p)
    runtime.topics["dead_letters"] = app.topic(settings.dead_letter_topic, schema=raw, partitions=p)
    runtime.topics["lifecycle"] = app.topic(settings.lifecycle_topic, schema=raw)
    runtime.tables["config"] = definitions.config_table(app, settings, view.on_changelog_event)
    runtime.tables["progress"] = definitions.progress_table(app, settings)
    runtime.tables["issuance"] = definitions.issuance_table(app, settings)

    ingest.register(runtime)
    if settings.redis_stream_names:  # edx-event-bus-redis sites
        from badges.agents import redis_ingest

        redis_ingest.register(runtime)
    progress.register(runtime)
    sink.register(runtime)
    routes.register(runtime)
    return app
