"""Dead-letter counts by reason, read from the dead-letter topic itself.

The topic is the record of what could not be processed, so every worker tails all of its
partitions (a plain consumer without a group: nothing committed, nothing shared) and keeps the
counts by ``dlq_reason`` and the latest few entries. Every worker therefore shows the same
figures, for the whole topic as retained by the broker, and they survive worker restarts (unlike
the per-process ``badges_dead_letters_total`` counter).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

if TYPE_CHECKING:
    from badges.runtime import Runtime

log = logging.getLogger(__name__)

LATEST = 20
_SHOWN_HEADERS = ("dlq_reason", "dlq_detail", "dlq_source_topic", "dlq_source_partition", "dlq_source_offset",
                  "dlq_time", "ce_type", "ce_id")


def _headers(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw or ():
        if key in _SHOWN_HEADERS and value is not None:
            out[key] = value.decode("utf-8", "replace")[:500]
    return out


class DeadLetterTail(Service):
    def __init__(self, runtime: "Runtime", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rt = runtime
        self.topic = runtime.settings.dead_letter_topic
        self.by_reason: Counter[str] = Counter()
        self.latest: deque[dict[str, Any]] = deque(maxlen=LATEST)
        self.read = 0
        self.error: str | None = None
        self.caught_up = False
        self._positions: dict[int, int] = {}  # next offset per partition, kept across reconnects

    def snapshot(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "total": self.read,
            "by_reason": dict(sorted(self.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
            "latest": list(reversed(self.latest)),
            "caught_up": self.caught_up,
            "error": self.error,
            "source": "the whole dead-letter topic, read by this worker (same on every worker)",
        }

    def _consume(self, messages: list[Any]) -> None:
        for m in messages:
            headers = _headers(m.headers)
            reason = headers.get("dlq_reason", "unknown")
            self.by_reason[reason] += 1
            self.read += 1
            self.latest.append({"reason": reason, "partition": m.partition, "offset": m.offset, **headers})

    @Service.task
    async def _tail(self) -> None:
        s = self.rt.settings
        while not self.should_stop:
            consumer = AIOKafkaConsumer(
                **s.kafka.aiokafka_kwargs(),
                client_id=f"{s.app_id}-web-dead-letters",
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=500,
            )
            try:
                await consumer.start()
                await consumer.topics()  # loads the cluster metadata: the topic's real partitions
                numbers = consumer.partitions_for_topic(self.topic) or range(s.partitions)
                parts = [TopicPartition(self.topic, p) for p in sorted(numbers)]
                consumer.assign(parts)
                for tp in parts:  # out of range (retention) falls back to the earliest offset
                    consumer.seek(tp, self._positions.get(tp.partition, 0))
                self.error = None
                while not self.should_stop:
                    batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
                    if not batch:
                        self.caught_up = True
                        continue
                    for tp, messages in batch.items():
                        self._consume(messages)
                        self._positions[tp.partition] = messages[-1].offset + 1
            except Exception as exc:  # noqa: BLE001 - the web view must not take the worker down
                self.error = f"cannot read {self.topic}: {type(exc).__name__}"
                log.warning("dead-letter tail: %s (%s); retrying", self.error, exc)
                await self.sleep(5.0)
            finally:
                await consumer.stop()


def register(runtime: "Runtime") -> DeadLetterTail:
    tail = DeadLetterTail(runtime)
    runtime.app.service(tail)  # type: ignore[arg-type]  # App.service takes an instance too; faust annotates only the class
    return tail
