"""Operator requests that the worker owning a partition acts on.

`badges retry-failed` puts one `retry_failed` request on every partition of the decisions
topic; the sink agent of whichever worker owns a partition re-drives that partition's failed
badges. `badges learner forget` puts a forget envelope on the learner's partition of the
learner-events topic: the progress agent that owns it forgets the learner's progress, then asks
its sink to do the same. No routing, no discovery of workers: the partitions carry the request.

`badges badge award|revoke` (docs/CONTRACT.md "Rules beyond the reference") puts one manual command on the learner's partition of the
learner-events topic: the progress agent that owns the learner applies it like any event, so the
award or revoke takes the same exactly-once path as a decision of the rules engine.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Producer

from badges.domain.engine import MANUAL_AWARD, MANUAL_REVOKE
from badges.domain.events import Learner, LearnerEvent
from badges.wire.envelope import encode_envelope, learner_key, learner_partition
from badges.wire.timeparse import us_to_iso

from badges.config.settings import Settings
from badges.tools.config_topic import BrokerUnavailable
from badges.kafka.topics import ensure_topics, worker_topics
from badges.wire.decisions import encode_retry_failed
from badges.wire.envelope import encode_forget


def retry_failed_requests(settings: Settings) -> list[tuple[int, bytes]]:
    """(partition, value) of the one ``retry_failed`` request per decisions partition.

    Shared by the CLI (blocking producer below) and the worker's admin API (its own producer).
    """
    return [(partition, encode_retry_failed()) for partition in range(settings.partitions)]


def manual_command(
    settings: Settings, action: str, learner: int, template: str, reason: str = "",
) -> tuple[int, bytes, bytes]:
    """(partition, key, value) of one manual award/revoke on the learner-events topic.

    Shared by the CLI and the admin API. The command's time is now: it becomes ``issued_at`` of
    a manual award. Its id is new, so the command applied twice (a redelivery) is recognized.
    """
    now_us = time.time_ns() // 1000
    event = LearnerEvent(
        event_type=MANUAL_AWARD if action == "award" else MANUAL_REVOKE,
        event_id=str(uuid.uuid4()), time=us_to_iso(now_us), time_us=now_us, source="badges/admin",
        learner=Learner(learner), payload={"template": template, "reason": reason},
        origin="manual",
    )
    return (learner_partition(learner, settings.partitions), learner_key(learner),
            encode_envelope([event]))


def forget_request(settings: Settings, learner_id: int) -> tuple[str, int, bytes, bytes]:
    """(topic, partition, key, value) of the request to forget one learner."""
    return (settings.learner_events_topic, learner_partition(learner_id, settings.partitions),
            learner_key(learner_id), encode_forget([learner_id]))


def request_forget(settings: Settings, learner_id: int) -> int:
    """Publish the forget request; returns the learner's partition."""
    topic, partition, key, value = forget_request(settings, learner_id)
    ensure_topics(settings, [s for s in worker_topics(settings) if s.name == topic])
    _deliver(settings, [(topic, partition, key, value)], "forget request")
    return partition


def _deliver(settings: Settings, messages: list[tuple[str, int, bytes | None, bytes]], what: str) -> None:
    producer = Producer(settings.kafka.confluent_config(acks="all"))
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for topic, partition, key, value in messages:
        producer.produce(topic, key=key, value=value, partition=partition, on_delivery=delivered)
    if producer.flush(30) or errors:
        raise BrokerUnavailable(f"{what} not delivered: {errors[:3]}")


def request_retry_failed(settings: Settings) -> int:
    ensure_topics(settings, [s for s in worker_topics(settings) if s.name == settings.decisions_topic])
    requests = retry_failed_requests(settings)
    _deliver(settings, [(settings.decisions_topic, partition, None, value) for partition, value in requests],
             "retry request")
    return len(requests)


def request_manual(settings: Settings, action: str, learner: int, template: str, reason: str = "") -> int:
    """Publish a manual award/revoke; returns the learner's partition."""
    partition, key, value = manual_command(settings, action, learner, template, reason)
    topic = settings.learner_events_topic
    ensure_topics(settings, [s for s in worker_topics(settings) if s.name == topic])
    _deliver(settings, [(topic, partition, key, value)], f"manual {action}")
    return partition
