"""The Faust app of a badges worker, built from the settings.

`build_app` is the one place where topics, tables and agents are wired together; everything it
wires lives in `agents/` and `tables/`, and the Faust consumer it runs in `badges/kafka/consumer.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, cast

import faust

from badges import compat
from badges.config.settings import Settings
from badges.health import Health
from badges.kafka.consumer import TunedTransport
from badges.logs import logging_config
from badges.schemas.catalog import load_catalog
from badges.tables import definitions
from badges.tables.compiled_config import CompiledConfigCache

if TYPE_CHECKING:
    from badges.runtime import Runtime



class BadgesApp(faust.App):
    runtime: "Runtime"
    kafka: Any  # badges.kafka.connection.KafkaConnection: how every Kafka client connects
    fetch_max_wait_ms: int = 1500
    # (assignment, committed offsets) -> partitions to read from elsewhere (the progress agent's)
    resume_positions: Callable[[Any, set[Any], dict[Any, int | None]], Awaitable[dict[Any, int]]] | None = None
    # topic partition -> the first offset not applied yet, where an agent knows it (ditto)
    commit_ceiling: Callable[[Any], int | None] | None = None

    def _new_transport(self) -> Any:
        return TunedTransport(self.conf.broker_consumer, self)


def faust_settings(settings: Settings) -> dict[str, Any]:
    web_url = settings.web_url
    return dict(
        **settings.kafka.faust_kwargs(),  # broker URL and credentials (docs/CONTRACT.md "Connections")
        store="rocksdb://" if settings.store == "rocksdb" else "memory://",
        # one store per app id: a data dir reused under another app id (or another deployment's
        # topics) would hold persisted offsets of other changelogs, which Faust refuses to start on
        datadir=str(settings.data_dir / settings.app_id),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.topic_replication_factor,
        consumer_auto_offset_reset="earliest",  # new groups start from the beginning (docs/CONTRACT.md "Topics")
        consumer_group_instance_id=settings.group_instance_id,
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
        # Of Faust's own pages only the router's (which worker owns a key): its table pages
        # would serve raw table values, configuration records with inline tokens included.
        web_router_enabled=True,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        web_host=web_url.split("://", 1)[1].rsplit(":", 1)[0],
        canonical_url=web_url,
        # ours instead of Faust's own (BADGES_LOG_FORMAT): one format for every line
        logging_config=logging_config(settings.log_level, settings.log_format),
    )


def build_app(settings: Settings) -> BadgesApp:
    """The app with its topics, tables and components; the one place a ``Runtime`` is built."""
    from badges.agents import kafka_ingest, progress, sink
    from badges.credly.provider import CredlyProvider
    from badges.credly.ratelimit import shared_rate_limit
    from badges.providers import build_providers
    from badges.runtime import Runtime, Tables, Topics
    from badges.web import badge_index, deadletters, routes
    from badges.wire.registry import SchemaRegistry

    app = BadgesApp(settings.app_id, **faust_settings(settings))
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    app.kafka = settings.kafka
    catalog = load_catalog()
    view = CompiledConfigCache(catalog)

    raw = definitions.RAW
    p = settings.partitions
    topics = Topics(
        learner_events=app.topic(settings.learner_events_topic, schema=raw, partitions=p),
        decisions=app.topic(settings.decisions_topic, schema=raw, partitions=p),
        dead_letters=app.topic(settings.dead_letter_topic, schema=raw, partitions=p),
        lifecycle=app.topic(settings.lifecycle_topic, schema=raw),
    )
    config = definitions.config_table(app, settings, view.on_changelog_event)

    @config.on_recover
    async def reload_configuration() -> None:
        view.reload(compat.stored_items(config, 0))

    tables = Tables(
        config=config,
        progress=definitions.progress_table(app, settings),
        issuance=definitions.issuance_table(app, settings),
    )
    # each organization's provider (Credly or Accredible), its calls metered
    providers = build_providers(settings, view.snapshot, metered=True,
                                shared_limit=shared_rate_limit(settings))
    runtime = Runtime(
        settings=settings, app=app, catalog=catalog, config=view, topics=topics, tables=tables,
        registry=SchemaRegistry.from_settings(settings),
        providers=providers, credly=cast(CredlyProvider, providers.by_name["credly"]).client,
        health=Health(),
    )
    app.runtime = runtime

    runtime.kafka_ingest = kafka_ingest.register(runtime)
    if settings.redis_stream_names:  # edx-event-bus-redis sites
        from badges.agents import redis_ingest

        runtime.redis_ingest = redis_ingest.register(runtime)
    runtime.progress = progress.register(runtime)
    runtime.sink = sink.register(runtime)
    runtime.dead_letters = deadletters.register(runtime)
    runtime.badge_index = badge_index.register(runtime)
    routes.register(runtime)
    return app
