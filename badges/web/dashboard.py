"""The dashboard: who this worker is, what it is assigned, how far its consumers are.

Offsets: *committed* and *position* (next offset to read) come from the consumers themselves
and are reliable. *End* offsets and the lag derived from them come from the broker's
ListOffsets/fetch high watermark, which the embedded broker (tansu) reports wrongly: they are
returned under ``reported_end`` / ``reported_lag`` and labelled as such on the page.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from badges import __version__
from badges.credly.metered import RATE_WAIT
from badges.web.cluster import members, self_url

if TYPE_CHECKING:
    from badges.runtime import Runtime

STARTED = time.time()
OFFSET_TIMEOUT_S = 2.0
END_OFFSETS_NOTE = ("end offsets and lag are reported by the broker; the embedded broker (tansu) "
                    "reports them wrongly, so only committed offsets and positions are reliable there")


def identity(runtime: "Runtime") -> dict[str, Any]:
    s = runtime.settings
    return {
        "app_id": s.app_id,
        "url": self_url(runtime),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "version": __version__,
        "started": STARTED,
        "uptime_s": round(time.time() - STARTED),
        "partitions": s.partitions,
        "input_topics": s.input_topic_names,
        "config_generation": runtime.config.generation,
        "admin_api": "enabled" if s.admin_token is not None and s.admin_token.get_secret_value() else "disabled",
    }


def _role(runtime: "Runtime", topic: str) -> str:
    s = runtime.settings
    if topic == s.learner_events_topic:
        return "progress agent"
    if topic == s.decisions_topic:
        return "Credly sink"
    if topic == s.config_topic:
        return "configuration (global table)"
    if "__assignor" in topic:
        return "Faust assignor"
    if topic.endswith("-changelog"):
        return "table changelog"
    return "input"


def _lag(end: int | None, committed: int | None) -> int | None:
    if end is None or committed is None:
        return None
    return max(0, end - committed)


def faust_offsets(runtime: "Runtime") -> list[dict[str, Any]]:
    """The agents' consumer (Faust): its assignment, committed offsets and read positions."""
    consumer = runtime.app.consumer
    try:
        assignment = sorted(consumer.assignment())
    except Exception:  # noqa: BLE001 - not started yet
        return []
    committed = getattr(consumer, "_committed_offset", {})
    read = getattr(consumer, "_read_offset", {})
    rows = []
    for tp in assignment:
        try:
            end = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - no end known yet: shown as unknown
            end = None
        last_read = read.get(tp) if hasattr(read, "get") else None
        done = committed.get(tp) if hasattr(committed, "get") else None
        rows.append({
            "topic": tp.topic, "partition": tp.partition, "role": _role(runtime, tp.topic),
            "committed": done, "position": None if last_read is None else last_read + 1,
            "reported_end": end, "reported_lag": _lag(end, done),
        })
    return rows


async def _maybe(coro: Any) -> Any:
    try:
        return await asyncio.wait_for(coro, OFFSET_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - a figure we cannot get is shown as unknown
        return None


async def ingest_offsets(runtime: "Runtime") -> list[dict[str, Any]]:
    """The ingestion consumer (aiokafka, group ``{app_id}-ingest``) of the event-bus topics."""
    service = runtime.kafka_ingest
    consumer = getattr(service, "consumer", None)
    if consumer is None:
        return []
    try:
        assignment = sorted(consumer.assignment())
    except Exception:  # noqa: BLE001 - consumer not started: no rows
        return []
    committed = await asyncio.gather(*(_maybe(consumer.committed(tp)) for tp in assignment))
    positions = await asyncio.gather(*(_maybe(consumer.position(tp)) for tp in assignment))
    rows = []
    for tp, done, position in zip(assignment, committed, positions):
        try:
            end = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - no end known yet: shown as unknown
            end = None
        rows.append({
            "topic": tp.topic, "partition": tp.partition, "role": "ingestion",
            "committed": done, "position": position, "reported_end": end,
            "reported_lag": _lag(end, done),
        })
    return rows


async def redis_positions(runtime: "Runtime") -> list[dict[str, Any]] | None:
    """The Redis Streams consumer group per stream; None when Redis ingestion is off."""
    service = runtime.redis_ingest
    if service is None:
        return None
    return await _maybe(service.positions()) or [{"stream": s, "error": "timeout"} for s in service.streams]


async def dashboard(runtime: "Runtime") -> dict[str, Any]:
    snapshot, config = runtime.config.snapshot(), runtime.config.compiled()
    tail = runtime.dead_letters
    return {
        "worker": identity(runtime),
        "configuration": {
            "organizations": len(snapshot.organizations),
            "templates": len(snapshot.templates),
            "active_templates": len(config.active_templates),
            "problems": len(config.problems),
        },
        "dead_letters": tail.snapshot(),
        # whether the configured Credly rate, not the worker, is what holds badges back
        "credly_rate": RATE_WAIT.snapshot(runtime.settings.credly_rate_per_s,
                                          runtime.settings.credly_shared_rate_limit),
        "consumers": {
            "ingest": {"group": runtime.settings.ingest_group, "partitions": await ingest_offsets(runtime)},
            "agents": {"group": runtime.settings.app_id, "partitions": faust_offsets(runtime)},
            "redis": await redis_positions(runtime),
            "note": END_OFFSETS_NOTE,
        },
        "cluster": [{"url": url, "partitions": parts, "self": url == self_url(runtime)}
                    for url, parts in sorted(members(runtime, "progress").items())],
    }
