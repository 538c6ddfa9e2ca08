"""Input messages (edx-event-bus-kafka / edx-event-bus-redis) to LearnerEvents.

This is the ingestion hot path: every input event passes here once. Hence the per-event-type
state prepared up front, one pass over the headers, no copy of the Avro payload, fastavro's
compiled reader, and writer schemas resolved once per (writer id, event type).

Registry lookups are I/O, so they never happen inside ``decode``: a batch's unknown writer ids
are found with ``schema_ids_to_fetch`` and fetched with ``await prefetch(ids)`` before the
synchronous decode loop.
"""

from __future__ import annotations

import asyncio
import time as _time
from collections.abc import Iterable, Sequence
from io import BytesIO
from typing import Any

import fastavro

from badges.domain.events import Learner, LearnerEvent
from badges.schemas.catalog import Catalog, EventSpec
from badges.wire.errors import (
    AVRO_DECODE_ERROR, BAD_HEADER, BAD_MAGIC_BYTE, EMPTY_VALUE, MISSING_CE_TYPE, NO_USER_DATA,
    SCHEMA_REGISTRY_UNAVAILABLE, TRUNCATED_FRAME, UNKNOWN_EVENT_TYPE, UNKNOWN_SCHEMA_ID,
    VALUE_TOO_LARGE, BadInput, OwnOutput,
)
from badges.wire.framing import _HEADER, HEADER_SIZE
from badges.wire.registry import RegistryUnavailable, SchemaRegistry, UnknownSchemaId, UnusableSchema
from badges.wire.timeparse import iso_to_us, ms_to_iso

_read = fastavro.schemaless_reader
_unpack_header = _HEADER.unpack_from
_CE_HEADERS = ("ce_type", "ce_id", "ce_time", "ce_source")
# How long a "no such schema id" answer is trusted before asking the registry again.
UNKNOWN_ID_TTL_S = 60.0
DEFAULT_MAX_VALUE_BYTES = 1_000_000


class _Reader:
    """Everything decode needs about one event type, computed once."""

    __slots__ = ("event_type", "spec", "parsed", "user_path", "single", "own_output")

    def __init__(self, spec: EventSpec) -> None:
        self.event_type = spec.event_type
        self.spec = spec
        self.parsed = spec.parsed_schema
        self.user_path = spec.user_path
        self.single = spec.single_field
        self.own_output = spec.own_output


def text_field(value: Any, name: str) -> str:
    try:
        return value.decode("utf-8")
    except (AttributeError, UnicodeDecodeError):
        raise BadInput(BAD_HEADER, f"header {name} is not UTF-8 text") from None


class RecordDecoder:
    """Plain Avro body + CloudEvents metadata -> LearnerEvent; the core of both buses."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        skip_own_output: bool = True,
    ) -> None:
        self.catalog = catalog
        self.max_value_bytes = max_value_bytes
        self.skip_own_output = skip_own_output
        self._readers: dict[str, _Reader] = {s.event_type: _Reader(s) for s in catalog}
        self._readers_b: dict[bytes, _Reader] = {t.encode(): r for t, r in self._readers.items()}

    # -- event type --------------------------------------------------------------------------
    def reader_for(self, event_type: str | bytes | None) -> _Reader:
        """The reader of an event type; raises missing_ce_type / unknown_event_type / own_output."""
        if not event_type:
            raise BadInput(MISSING_CE_TYPE, "no ce_type header: cannot tell the event type")
        r = (self._readers_b if isinstance(event_type, bytes) else self._readers).get(event_type)  # type: ignore[arg-type]  # bytes keys for a bytes header, str keys for a str one
        if r is None:
            shown = event_type.decode("utf-8", "replace") if isinstance(event_type, bytes) else event_type
            raise BadInput(UNKNOWN_EVENT_TYPE, f"event type {shown[:200]!r} is not supported")
        if r.own_output and self.skip_own_output:
            raise OwnOutput(r.event_type)
        return r

    # -- payload -------------------------------------------------------------------------------
    def check_size(self, value: bytes | None) -> None:
        if not value:
            raise BadInput(EMPTY_VALUE, "the message has no value")
        if len(value) > self.max_value_bytes:
            raise BadInput(
                VALUE_TOO_LARGE, f"{len(value)} bytes, over the {self.max_value_bytes}-byte limit"
            )

    @staticmethod
    def read_avro(fo: BytesIO, end: int, writer: Any, reader: Any) -> dict[str, Any]:
        """One Avro record that must fill the body exactly (trailing bytes mean a wrong schema)."""
        try:
            record = _read(fo, writer, reader)
        except EOFError:
            raise BadInput(
                AVRO_DECODE_ERROR, "the Avro body ended early (truncated, or written with another schema)"
            ) from None
        except Exception as exc:  # noqa: BLE001 - fastavro raises many types for malformed input
            raise BadInput(AVRO_DECODE_ERROR, f"{type(exc).__name__}: {str(exc)[:200]}") from None
        left = end - fo.tell()
        if left:
            raise BadInput(
                AVRO_DECODE_ERROR, f"{left} bytes left after the record (written with another schema?)"
            )
        if type(record) is not dict:
            raise BadInput(AVRO_DECODE_ERROR, "the Avro body is not a record")
        return record

    @staticmethod
    def event_time(ce_time: str | None, timestamp_ms: int | None) -> tuple[str, int]:
        """``(time as sent, microseconds)``; the broker timestamp stands in for a missing ce_time."""
        if ce_time:
            try:
                return ce_time, iso_to_us(ce_time)
            except ValueError:
                raise BadInput(BAD_HEADER, f"time {ce_time[:64]!r} is not ISO 8601") from None
        if timestamp_ms is not None and timestamp_ms >= 0:
            return ms_to_iso(timestamp_ms), timestamp_ms * 1000
        raise BadInput(BAD_HEADER, "no event time: neither a time header nor a message timestamp")

    @staticmethod
    def build_event(
        r: _Reader,
        record: dict[str, Any],
        event_id: str,
        time: str,
        time_us: int,
        source: str,
        origin: str,
    ) -> LearnerEvent:
        path = r.user_path
        if path is None:
            raise BadInput(NO_USER_DATA, f"{r.event_type} carries no UserData")
        user: Any = record
        try:
            for step in path:
                user = user[step]
            uid = user["id"]
        except (KeyError, TypeError):
            raise BadInput(NO_USER_DATA, f"no UserData at {'.'.join(path)}") from None
        if type(uid) is not int:
            raise BadInput(NO_USER_DATA, f"UserData at {'.'.join(path)} has no integer id")
        pii = user.get("pii")
        if pii:
            learner = Learner(uid, pii.get("username") or "", pii.get("email") or "", pii.get("name") or "")
        else:
            learner = Learner(uid)
        single = r.single
        payload = record[single] if single is not None else record
        return LearnerEvent(r.event_type, event_id, time, time_us, source, learner, payload, origin)

    def decode_record(
        self,
        event_type: str | bytes | None,
        avro_body: bytes | None,
        *,
        event_id: str,
        time: str | None,
        source: str = "",
        origin: str = "",
        timestamp_ms: int | None = None,
    ) -> LearnerEvent:
        """A plain (unframed) Avro body written with the reader schema, as on Redis Streams."""
        r = self.reader_for(event_type)
        self.check_size(avro_body)
        assert avro_body is not None
        ts, ts_us = self.event_time(time, timestamp_ms)
        record = self.read_avro(BytesIO(avro_body), len(avro_body), r.parsed, None)
        return self.build_event(r, record, event_id, ts, ts_us, source, origin)


class KafkaDecoder(RecordDecoder):
    """Decoder for edx-event-bus-kafka messages (ce_* headers, Confluent-framed Avro value).

    Without a registry the body is read with the committed reader schema (the writer id is
    ignored). With one, the writer schema is looked up by id and resolved against the reader
    schema, so a producer on a newer openedx-events minor version still decodes.
    """

    def __init__(
        self,
        catalog: Catalog,
        registry: SchemaRegistry | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        *,
        skip_own_output: bool = True,
    ) -> None:
        super().__init__(catalog, max_value_bytes=max_value_bytes, skip_own_output=skip_own_output)
        self.registry = registry
        self._writers: dict[int, Any] = {}  # writer id -> schema dict from the registry
        self._unknown: dict[int, tuple[float, str]] = {}  # writer id -> (expiry, why)
        self._resolved: dict[tuple[int, str], tuple[Any, Any]] = {}  # -> (writer, reader|None)

    # -- registry ------------------------------------------------------------------------------
    def schema_ids_to_fetch(self, values: Iterable[bytes | None]) -> set[int]:
        """Writer ids in these message values that must be fetched before ``decode``."""
        if self.registry is None:
            return set()
        ids: set[int] = set()
        writers, unknown = self._writers, self._unknown
        now = None
        for value in values:
            if value and len(value) >= HEADER_SIZE and value[0] == 0:
                sid = _unpack_header(value)[1]
                if sid in writers or sid in ids:
                    continue
                if sid in unknown:
                    now = now or _time.monotonic()
                    if unknown[sid][0] > now:
                        continue
                ids.add(sid)
        return ids

    @property
    def needs_prefetch(self) -> bool:
        return self.registry is not None

    async def prefetch(self, items: Iterable[int | bytes | None]) -> None:
        """Fetch writer schemas concurrently: these ids, or the new ids in these message values.

        An id the registry does not know is remembered (``decode`` then raises
        unknown_schema_id). If the registry cannot be reached, RegistryUnavailable propagates
        after the ids that did answer are stored: the caller should back off and retry the batch
        rather than dead-letter events that are only waiting for the registry.
        """
        if self.registry is None:
            return
        ids: list[int] = []
        values: list[bytes | None] = []
        for item in items:
            if isinstance(item, int):
                ids.append(item)
            else:
                values.append(item)
        wanted = [i for i in dict.fromkeys(ids) if i not in self._writers]
        wanted += sorted(self.schema_ids_to_fetch(values) - set(wanted))
        if not wanted:
            return
        results = await asyncio.gather(*(self.registry.get_schema(i) for i in wanted), return_exceptions=True)
        failure: BaseException | None = None
        for sid, res in zip(wanted, results):
            if isinstance(res, dict):
                self._writers[sid] = res
                self._unknown.pop(sid, None)
            elif isinstance(res, (UnknownSchemaId, UnusableSchema)):
                self._unknown[sid] = (_time.monotonic() + UNKNOWN_ID_TTL_S, str(res))
            elif isinstance(res, BaseException):
                failure = failure or res
        if failure is not None:
            raise failure

    def _resolve(self, sid: int, r: _Reader) -> tuple[Any, Any]:
        raw = self._writers.get(sid)
        if raw is None:
            gone = self._unknown.get(sid)
            if gone is not None:
                raise BadInput(UNKNOWN_SCHEMA_ID, gone[1])
            raise BadInput(
                SCHEMA_REGISTRY_UNAVAILABLE, f"writer schema {sid} was not fetched from the registry"
            )
        if raw == r.spec.schema:
            pair: tuple[Any, Any] = (r.parsed, None)  # same schema: no resolution needed
        elif raw.get("namespace", r.event_type) != r.event_type:
            # Avro resolution only compares the unqualified name (CloudEvent); the namespace
            # is the event type, so a mismatch means ce_type and the body disagree.
            raise BadInput(
                AVRO_DECODE_ERROR,
                f"writer schema {sid} is for {str(raw.get('namespace'))[:200]}, not {r.event_type}",
            )
        else:
            try:
                writer = fastavro.parse_schema(raw)
            except Exception as exc:  # noqa: BLE001 - fastavro raises many types for an invalid schema
                raise BadInput(AVRO_DECODE_ERROR, f"writer schema {sid} is not valid Avro: {str(exc)[:200]}") from None
            pair = (writer, r.parsed)
        self._resolved[(sid, r.event_type)] = pair
        return pair

    # -- the hot path --------------------------------------------------------------------------
    def decode(
        self,
        headers: Sequence[tuple[str, bytes]] | None,
        value: bytes | None,
        origin: str,
        timestamp_ms: int | None,
    ) -> LearnerEvent:
        """One Kafka message to a LearnerEvent; raises BadInput (or OwnOutput). Never does I/O."""
        try:
            h: dict[str, Any] = dict(headers) if headers else {}
        except (TypeError, ValueError):
            raise BadInput(BAD_HEADER, "headers are not (name, value) pairs") from None
        if headers and len(h) != len(headers):
            _check_duplicates(headers)
        r = self.reader_for(h.get("ce_type"))

        if not value:
            raise BadInput(EMPTY_VALUE, "the message has no value")
        size = len(value)
        if size > self.max_value_bytes:
            raise BadInput(VALUE_TOO_LARGE, f"{size} bytes, over the {self.max_value_bytes}-byte limit")
        if value[0] != 0:
            raise BadInput(BAD_MAGIC_BYTE, f"first byte is 0x{value[0]:02x}, expected 0x00 (Confluent framing)")
        if size < HEADER_SIZE:
            raise BadInput(TRUNCATED_FRAME, f"{size} bytes, shorter than the 5-byte Confluent header")

        raw_id = h.get("ce_id")
        if raw_id is None:
            raise BadInput(BAD_HEADER, "no ce_id header")
        event_id = text_field(raw_id, "ce_id")
        raw_time = h.get("ce_time")
        ts, ts_us = self.event_time(text_field(raw_time, "ce_time") if raw_time is not None else None, timestamp_ms)
        raw_source = h.get("ce_source")
        source = text_field(raw_source, "ce_source") if raw_source is not None else ""

        if self.registry is None:
            writer, reader = r.parsed, None
        else:
            sid = _unpack_header(value)[1]
            pair = self._resolved.get((sid, r.event_type))
            writer, reader = pair if pair is not None else self._resolve(sid, r)

        fo = BytesIO(value)
        fo.seek(HEADER_SIZE)
        record = self.read_avro(fo, size, writer, reader)
        return self.build_event(r, record, event_id, ts, ts_us, source, origin)


def _check_duplicates(headers: Sequence[tuple[str, bytes]]) -> None:
    """edx-event-bus-kafka refuses a message with a repeated CloudEvents header; so do we."""
    seen: set[str] = set()
    for key, _ in headers:
        if key in _CE_HEADERS:
            if key in seen:
                raise BadInput(BAD_HEADER, f"header {key} appears more than once")
            seen.add(key)


__all__ = ["KafkaDecoder", "RecordDecoder", "RegistryUnavailable", "UNKNOWN_ID_TTL_S"]
