"""What the components of one worker share, as typed fields.

Agents, the web layer and the health checks import this module, never ``badges.workers.app``:
the app imports them to wire them, so they only name its types. ``build_app`` is the one place
that builds a ``Runtime``: it creates the settings-derived parts (topics, tables, schema
registry, badge providers) before any component, then sets each component's field as it
registers it. A component that needs another's part gets it from its field here, typed, rather
than from a lookup by name that fails only at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import faust

from badges.health import Health

if TYPE_CHECKING:
    from badges.agents.kafka_ingest import KafkaIngest
    from badges.agents.progress import ProgressProcessor
    from badges.agents.redis_ingest import RedisIngest
    from badges.agents.sink import Sink
    from badges.config.settings import Settings
    from badges.credly.client import CredlyClient
    from badges.providers import Providers
    from badges.schemas.catalog import Catalog
    from badges.tables.compiled_config import CompiledConfigCache
    from badges.tables.definitions import ConfigTable
    from badges.web.badge_index import BadgeIndexer
    from badges.web.deadletters import DeadLetterTail
    from badges.wire.registry import SchemaRegistry
    from badges.workers.app import BadgesApp


@dataclass(frozen=True)
class Topics:
    """The worker's own topics (docs/CONTRACT.md "Topics")."""

    learner_events: faust.TopicT  # envelopes of normalised events, keyed by learner
    decisions: faust.TopicT  # award / revoke decisions of the progress agent for the sink
    dead_letters: faust.TopicT  # input the worker cannot use, with the reason in headers
    lifecycle: faust.TopicT  # BADGE_AWARDED / BADGE_REVOKED for other Open edX services


@dataclass(frozen=True)
class Tables:
    """The worker's changelog-backed tables (docs/CONTRACT.md "Tables")."""

    config: ConfigTable  # global: every worker holds the whole configuration
    progress: faust.Table  # learner -> progress toward every template
    issuance: faust.Table  # learner -> each badge's exactly-once issuance record


@dataclass
class Runtime:
    """Settings, catalog, configuration view, topics, tables and the components of a worker."""

    settings: Settings
    app: BadgesApp
    catalog: Catalog
    config: CompiledConfigCache
    topics: Topics
    tables: Tables
    # The schema registry of BADGES_SCHEMA_REGISTRY_URL, None when none is configured: then
    # decoding uses the reader schemas and our own events carry schema id 0.
    registry: SchemaRegistry | None
    providers: Providers  # each organization's badge provider (Credly, Accredible), metered
    credly: CredlyClient  # the Credly client of ``providers``: the webhook fetches events with it
    health: Health = field(default_factory=Health)  # what keeps the worker from being ready

    # The components, set by ``build_app`` as it registers them. Event-bus ingestion is None
    # on a worker that does not read that bus.
    kafka_ingest: KafkaIngest | None = None
    redis_ingest: RedisIngest | None = None
    progress: ProgressProcessor = field(init=False)
    sink: Sink = field(init=False)
    dead_letters: DeadLetterTail = field(init=False)
    badge_index: BadgeIndexer = field(init=False)
