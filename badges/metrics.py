"""Prometheus metrics of a worker, all in one place (served at /metrics)."""

from __future__ import annotations

import platform
import time
from importlib import metadata
from typing import Callable, Iterable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from badges import __version__

EVENTS_CONSUMED = Counter(
    "badges_events_consumed_total", "Event-bus messages read, by event type", ["event_type"]
)
EVENTS_SKIPPED = Counter(
    "badges_events_skipped_total",
    "Decoded events not forwarded to progress, by reason",
    ["reason"],
)
DEAD_LETTERS = Counter("badges_dead_letters_total", "Messages sent to the dead-letter topic", ["reason"])
EVENTS_APPLIED = Counter(
    "badges_events_applied_total", "Learner events applied to progress by the progress agent"
)
REQUIREMENTS_MATCHED = Counter("badges_requirements_matched_total", "Requirement matches")
PENALTIES_MATCHED = Counter("badges_penalties_matched_total", "Penalty matches")
FULFILLMENTS = Counter("badges_progress_updates_total", "Learner progress records written")
DECISIONS = Counter("badges_decisions_total", "Award/revoke decisions taken", ["action", "replayed"])
AWARDS = Counter("badges_awards_total", "Badges issued in Credly (or reconciled)", ["outcome"])
REVOCATIONS = Counter("badges_revocations_total", "Badges revoked in Credly", ["outcome"])
CREDLY_CALLS = Counter("badges_credly_calls_total", "Credly API calls", ["endpoint", "outcome"])
CREDLY_LATENCY = Histogram(
    "badges_credly_call_seconds",
    "Credly API call latency",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# Waiting on our own per-organization limiter (BADGES_CREDLY_RATE_PER_S): when these grow, the
# configured rate, not the worker, is what holds badges back (the dashboard says so too).
CREDLY_RATE_WAITING = Gauge(
    "badges_credly_rate_limit_waiting_calls",
    "Credly calls waiting for the per-organization rate limiter right now",
)
CREDLY_RATE_LIMITED = Counter(
    "badges_credly_rate_limited_seconds_total",
    "Seconds Credly calls spent waiting for the per-organization rate limiter (summed over calls)",
)
# Where a badge's time goes, each stage from the event's ce_time (sampled in ingestion): read
# two adjacent stages to get one hop of the path event -> Credly call.
STAGE_LATENCY = Histogram(
    "badges_stage_latency_seconds",
    "From the event's ce_time to a stage: ingested (decoded), decision_taken (by the Credly sink), "
    "credly_call (the issue call sent, after the intent is durable)",
    ["stage"],
    buckets=(0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5, 5, 10, 60),
)


def observe_stage(stage: str, times_us: Iterable[int]) -> None:
    """Observe ``now - ce_time`` for each event time (µs since the epoch; 0: unknown) at a stage."""
    child, now = STAGE_LATENCY.labels(stage), time.time()
    for t in times_us:
        if t:
            child.observe(max(0.0, now - t / 1e6))


PROCESSING_LATENCY = Histogram(
    "badges_event_latency_seconds",
    "From the event's ce_time to its progress being applied (sampled: every 8th event)",
    buckets=(0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5, 5, 10, 60),
)
CONFIG_VERSION = Gauge("badges_config_generation", "Configuration changes applied by this worker")
BADGES = Gauge(
    "badges_badges",
    "Badges of this worker's partitions by issuance status (failed: Credly refused after all retries)",
    ["status"],
)
ACTIVE_TEMPLATES = Gauge("badges_active_templates", "Active badge templates")
WEBHOOK_EVENTS = Counter(
    "badges_webhook_events_total",
    "Credly webhook notifications, by event type and outcome",
    ["event_type", "outcome"],
)


class ConsumerLag(Collector):
    """``badges_ingest_lag``: messages of each input partition that the ingestion consumer has
    not processed yet (the broker's end offset minus the next offset to process), computed at
    scrape time from the consumer's own figures. The embedded broker (tansu) reports end
    offsets wrongly, so the figure is only meaningful on Apache Kafka."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[tuple[str, int, int]]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("badges_ingest_lag", "Unprocessed messages per input partition (ingestion)",
                                   labels=["topic", "partition"])
        for topic, partition, lag in (self.source() if self.source is not None else ()):
            family.add_metric([topic, str(partition)], lag)
        yield family


INGEST_LAG = ConsumerLag()
REGISTRY.register(INGEST_LAG)
BUILD = Info("badges_build", "The running worker's version, and those of Python and Faust")
BUILD.info({"version": __version__, "python": platform.python_version(), "faust": metadata.version("faust-streaming")})
OFFSETS_SOUGHT_BACK = Counter(
    "badges_offsets_sought_back_total",
    "learner-events messages not applied because the consumer skipped or committed past work "
    "(reason: assignment, skipped, dropped_while_seeking, write_failed); each is read again",
    ["reason"],
)
HANDED_OFF = Counter(
    "badges_decisions_handed_off_total",
    "Decision messages the progress agent handed to the Credly sink in process (a broker hop "
    "sooner than their copy on the decisions topic), by what became of them: queued; refused "
    "(the queue was full); deferred (it would have overtaken an earlier version of its badge or "
    "a forget request still on the topic). The copy on the topic is carried out instead of a "
    "refused or deferred one",
    ["outcome"],
)
RECONCILIATION_FAILURES = Counter(
    "badges_reconciliation_failures_total",
    "Learners whose badges a reconciliation could not carry out for a reason that is not the "
    "broker's (a poison decision); they are left in the progress table for the next one",
)
RECONCILED = Counter(
    "badges_reconciled_decisions_total",
    "Decisions the Credly sink carried out from the progress table because their message was "
    "lost or never sent (after a crash); each was looked up in Credly first when in doubt",
)
