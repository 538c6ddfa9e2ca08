"""Declaring the topics the worker needs, with their partition counts, before anything uses them.

Brokers that auto-create topics (tansu does, with 4 partitions) would otherwise give the internal
topics the wrong partition count, and Faust requires co-partitioned topics to agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, NewTopic

from badges.config.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False


def worker_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic a worker reads or writes, except the changelogs that Faust declares."""
    p = settings.partitions
    specs = [
        TopicSpec(settings.config_topic, 1, compacted=True),
        TopicSpec(settings.dead_letter_topic, p),
        TopicSpec(settings.learner_events_topic, p),
        TopicSpec(settings.decisions_topic, p),
        TopicSpec(settings.lifecycle_topic, p),
        TopicSpec(settings.replay_reports_topic, 1),
    ]
    specs += [TopicSpec(t, p) for t in settings.input_topic_names if t != settings.lifecycle_topic]
    return specs


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka.confluent_config())


def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None, timeout: float = 15.0) -> list[str]:
    """Create the missing topics; returns the names created. Existing topics are left alone."""
    specs = worker_topics(settings) if specs is None else specs
    admin = admin_client(settings)
    existing = set(settings.kafka.metadata(admin).topics)
    new = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=settings.topic_replication_factor,
            config={"cleanup.policy": "compact"} if s.compacted else {},
        )
        for s in specs
        if s.name not in existing
    ]
    created: list[str] = []
    if not new:
        return created
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except Exception as exc:  # a concurrent creator is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                raise
    log.info("created topics: %s", ", ".join(created))
    return created
