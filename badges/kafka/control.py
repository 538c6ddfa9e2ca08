"""Operator requests that every worker must act on for the partitions it owns.

`badges retry-failed` puts one `retry_failed` request on every partition of the decisions
topic; the sink agent of whichever worker owns a partition re-drives that partition's failed
badges. No routing, no discovery of workers: the partitions carry the request.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer

from badges.config.settings import Settings
from badges.kafka.config_topic import BrokerUnavailable
from badges.kafka.topics import ensure_topics, worker_topics
from badges.wire.decisions import encode_retry_failed


def retry_failed_requests(settings: Settings) -> list[tuple[int, bytes]]:
    """(partition, value) of the one ``retry_failed`` request per decisions partition.

    Shared by the CLI (blocking producer below) and the worker's admin API (its own producer).
    """
    return [(partition, encode_retry_failed()) for partition in range(settings.partitions)]


def request_retry_failed(settings: Settings) -> int:
    ensure_topics(settings, [s for s in worker_topics(settings) if s.name == settings.decisions_topic])
    producer = Producer(settings.kafka.confluent_config(acks="all"))
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    requests = retry_failed_requests(settings)
    for partition, value in requests:
        producer.produce(settings.decisions_topic, value=value, partition=partition, on_delivery=delivered)
    if producer.flush(30) or errors:
        raise BrokerUnavailable(f"retry request not delivered: {errors[:3]}")
    return len(requests)
