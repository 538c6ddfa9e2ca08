"""Ingestion of edx-event-bus-redis streams: the Redis twin of `agents.kafka_ingest.KafkaIngest`.

One consumer group, ``{app_id}-ingest``, on every configured stream (``{prefix}-{topic}``). Entries
are classified and planned into envelopes like Kafka messages (``badges.wire.handoff``) and handed to
the same `Forwarder`; an entry is acknowledged
(XACK) only once its normalized event, or its dead letter, is on Kafka. Until then it stays in the
group's pending entries list (PEL), which is what makes the path at-least-once:

- a restarted worker keeps its consumer name (``{hostname}:{web_port}`` unless configured) and
  re-reads its own pending entries (XREADGROUP id ``0``) before anything new;
- entries pending under any consumer for longer than ``redis_claim_idle_ms`` (a worker that died
  on another host, or came back under another name) are taken over with XAUTOCLAIM.

Re-forwarded events are harmless: the progress stage ignores events it has already applied.
Redis or Kafka failures never crash the service: the cycle backs off (tenacity, capped
exponential with jitter) and starts again from its own pending entries.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import redis.asyncio as aioredis
from mode import Service
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from badges.agents.kafka_ingest import DeadLetterSource, Forwarder
from badges.wire.handoff import ClassifiedBatch, classify
from badges.wire.redis_format import RedisDecoder

if TYPE_CHECKING:
    from badges.runtime import Runtime

log = logging.getLogger(__name__)

EVENT_DATA = b"event_data"
BACKOFF_INITIAL_S = 0.2
BACKOFF_MAX_S = 10.0
STOP_GRACE_S = 10.0  # how long a stopping worker lets the batch in hand finish and be acked
# Consumers without pending entries idle this long are forgotten, so that a group does not grow
# by one consumer per restarted pod forever. Deleting one that is in fact alive loses nothing
# (Redis 7.0 does not count empty reads as activity): it has no pending entry, and Redis
# re-creates it on its next delivery.
PRUNE_IDLE_MS = 24 * 3600 * 1000
# Atomic, so that a consumer that has just been delivered entries is never deleted with them.
_FORGET_IF_NO_PENDING = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""


class Entry(NamedTuple):
    stream: str
    id: str
    fields: Mapping[bytes, bytes]  # empty: deleted from the stream while pending


# -- pure helpers ------------------------------------------------------------------------------
def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def default_consumer_name(hostname: str, web_port: int) -> str:
    """One name per worker process that a restart on the same host reuses.

    Two workers on one host cannot share a web port, so the pair is unique; reusing it after a
    restart lets the new process find the old one's pending entries without waiting for a claim.
    """
    return f"{hostname}:{web_port}"


def read_entries(reply: Any) -> list[Entry]:
    """An XREADGROUP reply (RESP2 list or RESP3 map) as entries, in stream order."""
    items = reply.items() if isinstance(reply, Mapping) else (reply or ())
    out: list[Entry] = []
    for stream, records in items:
        if records and isinstance(records[0], list):
            records = records[0]  # RESP3 wraps each stream's records once more
        name = _text(stream)
        out += [Entry(name, _text(eid), fields or {}) for eid, fields in records]
    return out


def dead_letter_parts(fields: Mapping[bytes, bytes]) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """Value and headers of an entry's dead letter: ``event_data`` unchanged, the rest as headers."""
    headers = [(_text(name), value) for name, value in fields.items() if name != EVENT_DATA]
    return fields.get(EVENT_DATA), headers


def stale_consumers(infos: Iterable[Mapping[str, Any]], me: str, idle_ms: int) -> list[str]:
    """XINFO CONSUMERS rows that can be deleted without losing anything: no pending entry, long idle."""
    out = []
    for info in infos:
        name = _text(info["name"])
        if name != me and int(info["pending"]) == 0 and int(info["idle"]) >= idle_ms:
            out.append(name)
    return out


async def forget_consumer(r: aioredis.Redis, stream: str, group: str, name: str) -> bool:
    """Delete a consumer from the group if, and only if, it has no pending entry."""
    return int(await r.eval(_FORGET_IF_NO_PENDING, 1, stream, group, name)) == 0


def decode_entries(decoder: RedisDecoder, entries: Iterable[Entry]) -> ClassifiedBatch[Entry]:
    """Every entry is an event, a dead letter or our own output; one trimmed from the stream while
    pending (no fields left) is only logged: there is nothing to forward or dead-letter."""
    present = []
    for e in entries:
        if e.fields:
            present.append(e)
        else:
            log.warning("redis ingest: entry %s/%s was trimmed before being processed", e.stream, e.id)
    decode = decoder.decode_entry
    return classify(present, lambda e: decode(e.fields, e.stream, e.id), lambda e: f"{e.stream}/{e.id}")


def _dead_letter_of(e: Entry) -> DeadLetterSource:
    value, headers = dead_letter_parts(e.fields)
    return DeadLetterSource(None, value, headers, e.stream, 0, e.id)


def acks_by_stream(entries: Sequence[Entry]) -> dict[str, list[str]]:
    acks: dict[str, list[str]] = defaultdict(list)
    for e in entries:
        acks[e.stream].append(e.id)
    return dict(acks)


# -- the service -------------------------------------------------------------------------------
class RedisIngest(Service):
    """XREADGROUP consumer of the configured edx-event-bus-redis streams."""

    def __init__(self, runtime: "Runtime", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        s = runtime.settings
        self.rt = runtime
        self.forwarder = Forwarder(runtime)
        self.decoder = RedisDecoder(runtime.catalog)
        self.streams: list[str] = list(s.redis_stream_names)
        self.group = s.ingest_group
        self.consumer_name = s.redis_consumer_name or default_consumer_name(socket.gethostname(), s.web_port)
        self.batch = s.redis_batch_size
        self.block_ms = s.redis_block_ms
        self.claim_idle_ms = s.redis_claim_idle_ms
        self.claim_every_s = max(self.claim_idle_ms / 2000, 0.5)
        self.batch_lock = asyncio.Lock()
        self.redis: aioredis.Redis | None = None
        self.ready = False
        self.last_error: str | None = None
        self._groups_ok = False
        self._backlog: dict[str, str] = {}  # stream -> cursor in our own PEL, while draining it
        self._claim_cursors: dict[str, str] = {}
        self._next_claim = 0.0
        self._prune_enabled = True

    def status(self) -> dict[str, Any]:
        """For /healthz: nothing secret (never the URL, which may hold a password)."""
        return {
            "ready": self.ready, "group": self.group, "consumer": self.consumer_name,
            "streams": self.streams, "last_error": self.last_error,
        }

    async def positions(self) -> list[dict[str, Any]]:
        """For the dashboard: where the consumer group stands on each stream (XINFO GROUPS)."""
        if self.redis is None:
            return []
        rows = []
        for stream in self.streams:
            row: dict[str, Any] = {"stream": stream, "group": self.group}
            try:
                groups = await self.redis.xinfo_groups(stream)
            except (RedisError, OSError) as exc:
                row["error"] = type(exc).__name__
                rows.append(row)
                continue
            info = next((g for g in groups if _text(g["name"]) == self.group), None)
            if info is not None:
                row.update(
                    last_delivered=_text(info["last-delivered-id"]), pending=info.get("pending"),
                    lag=info.get("lag"), consumers=info.get("consumers"),
                )
            rows.append(row)
        return rows

    async def on_start(self) -> None:
        url, options = self.rt.settings.redis_connection()
        self.redis = aioredis.Redis.from_url(
            url,
            **options,
            socket_timeout=self.block_ms / 1000 + 10,  # a BLOCK read must not time out the socket
            socket_connect_timeout=5,
            health_check_interval=30,
            # one immediate retry covers a connection the server dropped while idle; outages are
            # the loop's business (logged, backed off, readiness off)
            retry=Retry(NoBackoff(), 1),
        )
        log.info("redis ingest: streams %s, group %s, consumer %s",
                 ", ".join(self.streams), self.group, self.consumer_name)

    async def on_stop(self) -> None:
        # Let the batch in hand reach Kafka and be acked; keep the lock so no other one starts.
        try:
            await asyncio.wait_for(self.batch_lock.acquire(), STOP_GRACE_S)
        except asyncio.TimeoutError:
            log.warning("redis ingest: stopping with a batch unacknowledged (it stays pending)")

    async def on_shutdown(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    # -- the loop ---------------------------------------------------------------------------------
    @Service.task
    async def _run(self) -> None:
        # The routing of events depends on the configuration: read nothing before the whole
        # configuration topic has been read, or events would be dropped.
        if await self.wait_for_stopped(self.rt.config.wait_loaded()):
            return
        try:
            while not self.should_stop:
                async for attempt in self._retrying():
                    with attempt:
                        await self.cycle()
        except Exception:
            if not self.should_stop:
                raise

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, Exception) and not self.should_stop),
            wait=wait_exponential_jitter(initial=BACKOFF_INITIAL_S, max=BACKOFF_MAX_S),
            sleep=self.sleep,
            before_sleep=self._failed,
            reraise=True,
        )

    def _failed(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.ready = False
        self.last_error = type(exc).__name__
        self._backlog = {s: "0" for s in self.streams}  # what was read, not acked, is in our PEL
        self._claim_cursors = {}
        delay = state.next_action.sleep if state.next_action else 0.0
        if isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP"):
            self._groups_ok = False  # stream or group deleted under us: create it again
        if isinstance(exc, RedisError):
            log.warning("redis ingest: %s: %s; retrying in %.1fs", type(exc).__name__, exc, delay)
        else:
            log.error("redis ingest: batch not forwarded (%s); retrying in %.1fs", type(exc).__name__,
                      delay, exc_info=exc)

    async def cycle(self) -> None:
        """One step: own pending entries first, then overdue ones of others, then new ones."""
        if not self._groups_ok:
            await self.ensure_groups()
            self._groups_ok = True
            self._backlog = {s: "0" for s in self.streams}
        if self._backlog:
            entries = await self._read_own_pending()
            self._mark_ready()
            if entries:
                await self.handle(entries)
                self._backlog.update({e.stream: e.id for e in entries})
            return
        if time.monotonic() >= self._next_claim:
            entries = await self._claim()
            self._mark_ready()
            if entries:
                await self.handle(entries)
            return
        entries = await self._read_new()
        self._mark_ready()
        if entries:
            await self.handle(entries)

    def _mark_ready(self) -> None:
        if not self.ready:
            log.info("redis ingest: reading %s as %s", ", ".join(self.streams), self.consumer_name)
        self.ready = True
        self.last_error = None

    async def ensure_groups(self) -> None:
        """Create the group where missing, at ``0``: a new group reads the retained history."""
        assert self.redis is not None
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
                log.info("redis ingest: created group %s on %s", self.group, stream)
            except ResponseError as exc:
                if not str(exc).startswith("BUSYGROUP"):
                    raise

    async def _read_own_pending(self) -> list[Entry]:
        """Our PEL, from each stream's cursor; a stream with nothing left is done."""
        assert self.redis is not None
        streams: dict[Any, Any] = dict(self._backlog)  # redis's stub wants a dict of its key union
        reply = await self.redis.xreadgroup(self.group, self.consumer_name, streams, count=self.batch)
        entries = read_entries(reply)
        seen = {e.stream for e in entries}
        for stream in list(self._backlog):
            if stream not in seen:
                del self._backlog[stream]
        if entries:
            log.info("redis ingest: re-reading %d own pending entries", len(entries))
        return entries

    async def _claim(self) -> list[Entry]:
        """XAUTOCLAIM entries idle longer than the claim time, one page of one stream per call."""
        assert self.redis is not None
        if not self._claim_cursors:
            self._claim_cursors = {s: "0-0" for s in self.streams}
        stream, cursor = next(iter(self._claim_cursors.items()))
        nxt, claimed, deleted = await self.redis.xautoclaim(
            stream, self.group, self.consumer_name, self.claim_idle_ms, cursor, count=self.batch)
        if _text(nxt) == "0-0":
            del self._claim_cursors[stream]
        else:
            self._claim_cursors[stream] = _text(nxt)
        if deleted:
            log.warning("redis ingest: %d pending entries of %s were trimmed before being processed",
                        len(deleted), stream)
        if not self._claim_cursors:
            self._next_claim = time.monotonic() + self.claim_every_s
            await self._prune()
        entries = [Entry(stream, _text(eid), fields or {}) for eid, fields in claimed]
        if entries:
            log.warning("redis ingest: took over %d entries of %s pending longer than %d ms",
                        len(entries), stream, self.claim_idle_ms)
        return entries

    async def _prune(self) -> None:
        """Housekeeping only: a server that refuses it (ACLs without EVAL, say) must not stop ingestion."""
        assert self.redis is not None
        if not self._prune_enabled:
            return
        try:
            for s in self.streams:
                infos = await self.redis.xinfo_consumers(s, self.group)
                for name in stale_consumers(infos, self.consumer_name, PRUNE_IDLE_MS):
                    if await forget_consumer(self.redis, s, self.group, name):
                        log.info("redis ingest: removed idle consumer %s from %s", name, s)
        except ResponseError as exc:
            self._prune_enabled = False
            log.warning("redis ingest: not pruning idle consumers (%s)", exc)

    async def _read_new(self) -> list[Entry]:
        assert self.redis is not None
        reply = await self.redis.xreadgroup(
            self.group, self.consumer_name, {s: ">" for s in self.streams},
            count=self.batch, block=self.block_ms)
        return read_entries(reply)

    # -- one batch ------------------------------------------------------------------------------
    async def handle(self, entries: Sequence[Entry]) -> None:
        """Decode, forward, wait for Kafka, then XACK: nothing is acked that is not on Kafka."""
        async with self.batch_lock:
            futures = await self.forwarder.forward(decode_entries(self.decoder, entries), _dead_letter_of)
            if futures:
                await asyncio.gather(*futures)
            await self._ack(entries)

    async def _ack(self, entries: Sequence[Entry]) -> None:
        assert self.redis is not None
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in acks_by_stream(entries).items():
                pipe.xack(stream, self.group, *ids)
            await pipe.execute()


def register(runtime: "Runtime") -> RedisIngest:
    ingest = RedisIngest(runtime)
    runtime.app.service(ingest)  # type: ignore[arg-type]  # App.service takes an instance too; faust annotates only the class
    return ingest
